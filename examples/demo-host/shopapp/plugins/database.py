"""The database the plugins migrate: where it is, how to connect, and who may migrate it.

This module alone reads ``DATABASE_URL``. It resolves the URL (a command's
option, the environment, the Flask app's configuration, ``alembic.ini``),
makes engines (no pooling; transactional DDL on SQLite), and owns the
migrator lock and its timeout (``Database.migration_session``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, make_url, pool, text
from sqlalchemy.engine import Connection, Engine, RootTransaction, Transaction
from sqlalchemy.exc import SQLAlchemyError

from .errors import LockTimeout, PluginMigrationError
from .schemas import translate_map

#: Seconds a migrator waits for another one to finish before giving up.
DEFAULT_LOCK_TIMEOUT = 300.0

#: PostgreSQL advisory lock key ("plugmigr") held by whoever migrates plugins.
MIGRATION_LOCK_KEY = int.from_bytes(b"plugmigr", "big")

NO_DATABASE = "no database configured: set DATABASE_URL (for example sqlite:///app.db)"


def resolve_url(explicit: str | None = None, *, app: Any = None, ini_url: str | None = None) -> str:
    """The database to migrate, first found: ``explicit``, ``DATABASE_URL``, the Flask ``app``'s, ``ini_url``.

    A Flask app's URL is its Flask-SQLAlchemy engine's (which resolves a
    relative SQLite path the way the app does), else ``SQLALCHEMY_DATABASE_URI``.
    """
    url = explicit or os.environ.get("DATABASE_URL") or (_flask_url(app) if app is not None else None) or ini_url
    if not url:
        raise PluginMigrationError(NO_DATABASE)
    return url


def bind_url(bind: str, *, app: Any = None) -> str:
    """The database of bind key ``bind``: the Flask app's ``SQLALCHEMY_BINDS[bind]``, else ``DATABASE_URL_<BIND>``.

    The app's comes first, as its default database does for ``flask plugin``;
    a bind's entry may be a URL or a dict of engine options with "url".
    """
    url = (_flask_bind_url(app, bind) if app is not None else None) or os.environ.get(bind_variable(bind))
    if not url:
        raise PluginMigrationError(
            f'bind "{bind}" has no database: set {bind_variable(bind)}, or give the Flask app '
            f'SQLALCHEMY_BINDS["{bind}"]; nothing was changed'
        )
    return url


def bind_variable(bind: str) -> str:
    """The environment variable naming bind ``bind``'s database."""
    return f"DATABASE_URL_{bind.upper()}"


def _flask_bind_url(app: Any, bind: str) -> str | None:
    extension = app.extensions.get("sqlalchemy")
    if extension is not None and bind in app.config.get("SQLALCHEMY_BINDS", {}):
        with app.app_context():  # its engine's URL resolves a relative SQLite path the way the app does
            return str(extension.engines[bind].url.render_as_string(hide_password=False))
    value = app.config.get("SQLALCHEMY_BINDS", {}).get(bind)
    value = value.get("url") if isinstance(value, dict) else value
    return str(value) if value else None


def _flask_url(app: Any) -> str | None:
    extension = app.extensions.get("sqlalchemy")
    if extension is not None:
        with app.app_context():
            return str(extension.engine.url.render_as_string(hide_password=False))
    uri = app.config.get("SQLALCHEMY_DATABASE_URI")
    return str(uri) if uri else None


def backend_name(url: str) -> str:
    """"sqlite", "postgresql", ... from a URL, without importing its driver."""
    return make_url(url).get_backend_name()


def make_engine(url: str, lock_timeout: float = DEFAULT_LOCK_TIMEOUT, schemas: Iterable[str] = ()) -> Engine:
    """An engine for migrations: no pooling, transactional DDL on SQLite too, plugin schemas mapped away there."""
    is_sqlite = backend_name(url) == "sqlite"
    engine = create_engine(url, poolclass=pool.NullPool, connect_args={"timeout": lock_timeout} if is_sqlite else {})
    if is_sqlite:
        _enable_sqlite_transactional_ddl(engine)
        if mapping := translate_map(schemas, "sqlite"):
            return engine.execution_options(schema_translate_map=mapping)
    return engine


def _enable_sqlite_transactional_ddl(engine: Engine) -> None:
    # pysqlite only opens a transaction before INSERT/UPDATE/DELETE, so CREATE
    # and DROP would autocommit one by one. Let SQLAlchemy emit BEGIN itself so
    # a plugin's migration commits or rolls back as a whole (SQLAlchemy's
    # documented recipe for SQLite transactional DDL). IMMEDIATE takes the
    # write lock at once: a second migrator waits (up to the connect timeout)
    # and then sees the first one's committed version row instead of racing it.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class MigrationSession:
    """The migrating connection of a run; ``step()`` is one plugin's transaction on it."""

    def __init__(self, connection: Connection, nested: bool) -> None:
        self.connection = connection
        self._nested = nested

    def step(self) -> Transaction:
        """A transaction for one plugin (a savepoint on SQLite); rolled back if the block raises."""
        return self.connection.begin_nested() if self._nested else self.connection.begin()


class Database:
    """One database to migrate: its URL (resolved on first use), its engine, and its migrator lock."""

    def __init__(
        self, url: str | None = None, lock_timeout: float | None = None, app: Any = None, schemas: Iterable[str] = ()
    ) -> None:
        self._explicit_url = url
        self.schemas = tuple(schemas)
        self._app = app
        self._url: str | None = None
        self.lock_timeout = DEFAULT_LOCK_TIMEOUT if lock_timeout is None else lock_timeout
        self._engine: Engine | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = resolve_url(self._explicit_url, app=self._app)
        return self._url

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.url, self.lock_timeout, self.schemas)
        return self._engine

    @property
    def shown_url(self) -> str:
        """The URL without its password, to name the database in messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def backend(self) -> str:
        return backend_name(self.url)

    def dispose(self) -> None:
        """Close the connections (the engine is made again on next use)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def connect(self) -> Connection:
        return self.engine.connect()

    def begin(self, connection: Connection) -> RootTransaction:
        """Begin a migration transaction; on SQLite this waits for the write lock (BEGIN IMMEDIATE)."""
        try:
            return connection.begin()
        except SQLAlchemyError as error:
            if self.backend == "sqlite" and "database is locked" in str(getattr(error, "orig", error)):
                raise self.lock_timeout_error() from None
            raise

    def lock_timeout_error(self) -> LockTimeout:
        return LockTimeout(
            f"another migrator has held this database's migration lock for {self.lock_timeout:g} s, "
            f"nothing was changed; let it finish, or wait longer with --lock-timeout"
        )

    def table_lock_timeout_error(self) -> LockTimeout:
        return LockTimeout(
            f"waited {self.lock_timeout:g} s for a table lock that another session holds, nothing was changed; "
            f"let it finish (pg_stat_activity shows it), or wait longer with --lock-timeout"
        )

    @contextmanager
    def migration_session(self, commit: bool = True) -> Iterator[MigrationSession]:
        """One connection that is this database's only migrator from the start of a run to its end.

        Every read and every plugin's step of the run happens on it, so what
        the run decides from cannot change under it, and the lock cannot
        outlive the work it guards:

        - PostgreSQL: a session-level advisory lock on the migrating
          connection itself, polled until lock_timeout. A killed migrator's
          lock goes only when its server process ends, together with the
          transaction it was running. ``lock_timeout`` bounds every wait for
          a table lock too.
        - SQLite: one ``BEGIN IMMEDIATE`` transaction for the whole run (the
          database's write lock, waited for up to lock_timeout), each plugin's
          step a savepoint in it; a failed step rolls back to its savepoint.

        ``commit=False`` makes the whole run one transaction that is rolled
        back at the end, each step a savepoint in it, so the database is left
        as it was found: a replay in a scratch database (``replay``). That
        needs transactional DDL, so only PostgreSQL and SQLite have it.
        """
        if not commit and self.backend not in ("sqlite", "postgresql"):
            raise PluginMigrationError(
                f"cannot replay migrations on {self.backend} and leave the database as it was (its DDL is not "
                f"transactional); use a PostgreSQL or SQLite database"
            )
        with self.connect() as connection:
            if self.backend == "postgresql":
                self._lock_postgresql(connection)
            try:
                if self.backend == "sqlite" or not commit:
                    outer = self.begin(connection)
                    try:
                        yield MigrationSession(connection, nested=True)
                    except BaseException:
                        outer.rollback()
                        raise
                    if commit:
                        outer.commit()
                    else:
                        outer.rollback()
                else:
                    yield MigrationSession(connection, nested=False)
            finally:
                if self.backend == "postgresql":
                    self._unlock_postgresql(connection)

    @contextmanager
    def read_only(self) -> Iterator[Connection]:
        """A connection that cannot change the database: for looking at a deployed one.

        SQLite opens the file read-only (and never creates it), without the
        write lock the migrating engine takes; PostgreSQL runs read-only
        transactions. Other backends get a plain connection whose
        transaction is rolled back.
        """
        url = make_url(self.url)
        if url.get_backend_name() == "sqlite":
            if self.missing_sqlite_file() or not url.database or url.database == ":memory:":
                raise PluginMigrationError(f"no SQLite database at {url.database or ':memory:'}: name an existing file")
            uri = Path(url.database).resolve().as_uri()  # percent-encoded, as SQLite's URI filenames want
            url = url.set(database=uri, query={**url.query, "mode": "ro", "uri": "true"})
        engine = create_engine(url, poolclass=pool.NullPool)
        if mapping := translate_map(self.schemas, url.get_backend_name()):
            engine = engine.execution_options(schema_translate_map=mapping)
        try:
            with engine.connect() as connection:
                if url.get_backend_name() == "postgresql":
                    connection = connection.execution_options(postgresql_readonly=True)
                try:
                    yield connection
                finally:
                    connection.rollback()
        finally:
            engine.dispose()

    def _lock_postgresql(self, connection: Connection) -> None:
        # PostgreSQL reads lock_timeout = 0 as "wait for ever": keep at least 1 ms.
        connection.execute(text(f"SET lock_timeout = {max(1, round(self.lock_timeout * 1000))}"))
        connection.commit()  # a SET inside a transaction that is rolled back (the polling below) is undone
        deadline = time.monotonic() + self.lock_timeout
        acquire = text("SELECT pg_try_advisory_lock(:key)")
        while not connection.scalar(acquire, {"key": MIGRATION_LOCK_KEY}):
            connection.rollback()
            if time.monotonic() >= deadline:
                raise self.lock_timeout_error()
            time.sleep(0.1)
        connection.commit()

    def _unlock_postgresql(self, connection: Connection) -> None:
        try:
            if connection.in_transaction():
                connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
        except SQLAlchemyError:
            pass  # the connection is gone, and the lock with its server process

    def missing_sqlite_file(self) -> bool:
        """A SQLite file that does not exist yet (connecting would create it)."""
        url = make_url(self.url)
        return (
            url.get_backend_name() == "sqlite"
            and bool(url.database)
            and url.database != ":memory:"
            and not Path(str(url.database)).exists()
        )
