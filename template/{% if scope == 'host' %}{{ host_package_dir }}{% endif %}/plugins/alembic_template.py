"""Shared Alembic environment and helpers for every plugin's migration chain.

Each plugin's ``migrations/env.py`` is a shim that calls
``run_plugin_migrations(PLUGIN_NAME)``; everything else lives here, once:

- the version table is ``alembic_version_NAME``, so chains never collide;
- the target metadata is the application's, but ``include_name`` and
  ``include_object`` let a plugin see only the tables that registry.json
  gives it: never core tables, other plugins' tables or ``alembic_version*``;
- a connection handed in through ``config.attributes["connection"]`` is used
  as is (and its transaction is the caller's), so the CLI, PluginManager and
  tests share one transaction per plugin;
- ``create_plugin_tables`` / ``drop_plugin_tables`` emit DDL from the models
  themselves (SQLAlchemy ``CreateTable``), so baselines never copy column
  definitions.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from logging.config import fileConfig
from pathlib import Path
from typing import Any

from alembic import context, op
from alembic.autogenerate import render_python_code
from alembic.operations import ops
from alembic.util import CommandError
from sqlalchemy import Boolean, Column, MetaData, Table, create_engine, event, false, inspect, pool, true
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import CreateIndex, CreateTable, DefaultClause, DropTable, sort_tables
from sqlalchemy.sql.elements import False_, True_

from .registry import (
    MODEL_BASE,
    PluginMigrationError,
    load_metadata,
    load_registry,
    version_table,
)

__all__ = [
    "PLUGIN_TABLE_OWNERS",
    "core_include_name",
    "core_include_object",
    "create_plugin_tables",
    "drop_plugin_tables",
    "get_plugin_metadata",
    "make_engine",
    "run_plugin_migrations",
]

#: plugin name -> the tables it owns, exactly as registry.json says.
PLUGIN_TABLE_OWNERS: dict[str, tuple[str, ...]] = {
    name: entry.tables for name, entry in load_registry().items()
}


def _owned(plugin_name: str) -> tuple[str, ...]:
    try:
        return PLUGIN_TABLE_OWNERS[plugin_name]
    except KeyError:
        raise PluginMigrationError(
            f'plugin "{plugin_name}" is not in registry.json; scaffold it with '
            f"`copier copy --trust -d plugin_name={plugin_name} ...`"
        ) from None


def plugin_tables(plugin_name: str, metadata: MetaData | None = None) -> list[Table]:
    """The plugin's Table objects from the shared metadata, in foreign-key order."""
    metadata = metadata if metadata is not None else load_metadata()
    owned = _owned(plugin_name)
    missing = [name for name in owned if name not in metadata.tables]
    if missing:
        raise PluginMigrationError(
            f'plugin "{plugin_name}": registered tables {", ".join(missing)} are not defined by any model; '
            f"declare them in the plugin's models.py or remove them from its tables answer"
        )
    tables = [metadata.tables[name] for name in owned]
    for table in tables:
        for foreign_key in table.foreign_keys:
            referred = foreign_key.target_fullname.rpartition(".")[0]
            if referred not in metadata.tables:
                raise PluginMigrationError(
                    f'plugin "{plugin_name}": table "{table.name}" has a foreign key to "{referred}", which no '
                    f"imported model defines; the module of model_base ({MODEL_BASE}) must import every core "
                    f"model that plugin tables refer to"
                )
    return sort_tables(tables)


def get_plugin_metadata(plugin_name: str) -> MetaData:
    """A new MetaData holding copies of exactly the plugin's tables.

    For inspection and tests; migrations use the shared metadata filtered by
    ``include_object`` so that foreign keys into other plugins still resolve.
    """
    filtered = MetaData()
    for table in plugin_tables(plugin_name):
        table.to_metadata(filtered)
    return filtered


def include_name_for(plugin_name: str) -> Callable[..., bool]:
    """Alembic ``include_name`` hook: reflect only the plugin's own tables."""
    owned = frozenset(_owned(plugin_name))

    def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
        if type_ == "table":
            return name in owned
        return True

    return include_name


def include_object_for(plugin_name: str) -> Callable[..., bool]:
    """Alembic ``include_object`` hook: compare only the plugin's own tables."""
    owned = frozenset(_owned(plugin_name))

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table":
            return name in owned
        table = getattr(obj, "table", None)
        if table is not None and type_ in ("column", "index", "unique_constraint", "foreign_key_constraint"):
            return table.name in owned
        return True

    return include_object


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


#: Seconds a migrator waits for another one to finish before giving up.
DEFAULT_LOCK_TIMEOUT = 300.0


def make_engine(url: str, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Engine:
    """An engine for migrations: no pooling, and transactional DDL on SQLite too."""
    is_sqlite = url.split(":", 1)[0].split("+", 1)[0] == "sqlite"
    engine = create_engine(url, poolclass=pool.NullPool, connect_args={"timeout": lock_timeout} if is_sqlite else {})
    if is_sqlite:
        _enable_sqlite_transactional_ddl(engine)
    return engine


def database_url(config: Any = None) -> str:
    """The database to migrate: DATABASE_URL, else sqlalchemy.url from alembic.ini."""
    url = config.attributes.get("database_url") if config is not None else None
    url = url or os.environ.get("DATABASE_URL")
    if not url and config is not None:
        url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise PluginMigrationError("no database configured: set DATABASE_URL (for example sqlite:///app.db)")
    return url


def _configure_options(plugin_name: str, dialect_name: str) -> dict[str, Any]:
    return {
        "target_metadata": load_metadata(),
        "version_table": version_table(plugin_name),
        "include_name": include_name_for(plugin_name),
        "include_object": include_object_for(plugin_name),
        "compare_type": True,
        "compare_server_default": True,
        # SQLite cannot ALTER most things in place; batch mode copies the table.
        "render_as_batch": dialect_name == "sqlite",
    }


def run_plugin_migrations(plugin_name: str) -> None:
    """The body of every plugin's env.py: run Alembic online or offline for plugin_name."""
    try:
        _run_plugin_migrations(plugin_name)
    except PluginMigrationError as error:
        # Plain `alembic` prints a CommandError as one "FAILED: ..." line, not a traceback.
        raise CommandError(str(error)) from None


def _run_plugin_migrations(plugin_name: str) -> None:
    config = context.config
    if config.config_file_name is not None and "connection" not in config.attributes:
        # Plain `alembic -c .../alembic.ini`: honour the ini's logging setup.
        fileConfig(config.config_file_name, disable_existing_loggers=False)

    if context.is_offline_mode():
        url = database_url(config)
        dialect_name = url.split(":", 1)[0].split("+", 1)[0]
        context.configure(
            url=url,
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
            **_configure_options(plugin_name, dialect_name),
        )
        with context.begin_transaction():
            context.run_migrations()
        return

    def run(connection: Connection) -> None:
        context.configure(connection=connection, **_configure_options(plugin_name, connection.dialect.name))
        with context.begin_transaction():
            context.run_migrations()

    connectable = config.attributes.get("connection")
    if isinstance(connectable, Connection):
        run(connectable)  # the caller's transaction (PluginManager, the CLI, tests)
        return
    engine = connectable if isinstance(connectable, Engine) else make_engine(database_url(config))  # an Engine: pytest-alembic
    try:
        with engine.connect() as connection:
            run(connection)
            connection.commit()
    finally:
        if engine is not connectable:
            engine.dispose()


#: File beside a plugin's versions/ folder holding its frozen baseline.
FROZEN_BASELINE = "baseline_schema.py"


def frozen_baseline_path(plugin_name: str) -> Path:
    """Where plugin_name's frozen baseline lives (it may not exist)."""
    return load_registry()[plugin_name].migrations_dir / FROZEN_BASELINE


def load_frozen_baseline(plugin_name: str) -> dict[str, Callable[[], None]] | None:
    """table -> function that creates it as the baseline did, in foreign-key order; None if not frozen."""
    path = frozen_baseline_path(plugin_name)
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"_frozen_baseline_{plugin_name}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return dict(module.CREATE_TABLES)


def create_plugin_tables(plugin_name: str) -> None:
    """Create the plugin's tables and their indexes, in foreign-key order.

    While the chain is only its baseline, the tables come from the models
    (SQLAlchemy ``CreateTable``), in lockstep with them. Once the chain has
    grown, from its frozen baseline (``migrations/baseline_schema.py``), so the
    baseline keeps building what it built before the next revisions.
    Online, only missing tables are created; offline (``--sql``) all are.
    """
    existing = set() if context.is_offline_mode() else set(inspect(op.get_bind()).get_table_names())
    frozen = load_frozen_baseline(plugin_name)
    if frozen is not None:
        owned = set(_owned(plugin_name))
        for table_name, create in frozen.items():
            if table_name in owned and table_name not in existing:
                create()
        return
    for table in plugin_tables(plugin_name):
        if table.name in existing:
            continue
        op.execute(CreateTable(table))
        for index in sorted(table.indexes, key=lambda index: index.name or ""):
            op.execute(CreateIndex(index))


def drop_plugin_tables(plugin_name: str) -> None:
    """Drop the plugin's tables, dependents first; online, only those that exist."""
    offline = context.is_offline_mode()
    existing = set() if offline else set(inspect(op.get_bind()).get_table_names())
    frozen = load_frozen_baseline(plugin_name)
    if frozen is not None:
        owned = set(_owned(plugin_name))
        for table_name in reversed(list(frozen)):
            if table_name in owned and (offline or table_name in existing):
                op.drop_table(table_name)
        return
    for table in reversed(plugin_tables(plugin_name)):
        if offline or table.name in existing:
            op.execute(DropTable(table))


def _portable_server_default(column: Column) -> None:
    """Make a reflected server default one every backend accepts, as the models would emit it."""
    default = column.server_default
    text_value = getattr(getattr(default, "arg", None), "text", getattr(default, "arg", None))
    if not isinstance(text_value, str):
        return
    value = text_value.strip().strip("'").lower()
    if value.startswith("nextval("):
        column.server_default = None  # PostgreSQL's SERIAL sequence: implied by an integer primary key
    elif isinstance(column.type, Boolean) and value in ("1", "true", "0", "false"):
        column.server_default = DefaultClause(true() if value in ("1", "true") else false())


def _render_boolean_default(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    if type_ == "server_default" and isinstance(getattr(obj, "arg", None), (True_, False_)):
        return "sa.true()" if isinstance(obj.arg, True_) else "sa.false()"
    return False


def render_frozen_baseline(plugin_name: str, connection: Connection, baseline_revision: str) -> str:
    """The frozen baseline file: the plugin's tables as the database at its baseline holds them.

    Types become their generic SQLAlchemy forms and defaults portable ones,
    so a baseline frozen on one backend builds the same schema on another.
    """
    inspector = inspect(connection)
    present = set(inspector.get_table_names())
    missing = [name for name in _owned(plugin_name) if name not in present]
    if missing:
        raise PluginMigrationError(
            f'plugin "{plugin_name}": cannot freeze its baseline, tables {", ".join(missing)} are not in the database'
        )
    reflected = MetaData()
    tables = [Table(name, reflected, autoload_with=connection) for name in _owned(plugin_name)]
    functions, entries = [], []
    for table in sort_tables(tables):
        for column in table.columns:
            try:
                column.type = column.type.as_generic()
            except NotImplementedError:
                pass
            _portable_server_default(column)
        operations = ops.UpgradeOps(
            ops=[
                ops.CreateTableOp.from_table(table),
                *(ops.CreateIndexOp.from_index(index) for index in sorted(table.indexes, key=lambda i: i.name or "")),
            ]
        )
        code = render_python_code(operations, render_item=_render_boolean_default)
        body = "\n".join(line for line in code.splitlines() if not line.strip().startswith("# ###"))
        functions.append(f"def create_{table.name}() -> None:\n{body}\n")
        entries.append(f'    "{table.name}": create_{table.name},')
    header = (
        f'"""Frozen baseline of the "{plugin_name}" plugin: the schema {baseline_revision} built.\n\n'
        "Written when the chain grew past its baseline. create_plugin_tables() builds from\n"
        "this file from then on, so the baseline keeps building what it built before the\n"
        "later revisions; today's models are reached through those revisions. Do not edit.\n"
        '"""\n\n'
        "import sqlalchemy as sa\n"
        "from alembic import op\n"
    )
    return (
        header
        + "".join(f"\n\n{function}" for function in functions)
        + "\n\n#: owned table -> how the baseline creates it, in foreign-key order.\n"
        + "CREATE_TABLES = {\n"
        + "\n".join(entries)
        + "\n}\n"
    )


# -- helpers for the core application's own migrations -----------------------


def _is_plugin_table(name: str | None) -> bool:
    return name is not None and (
        name.startswith("alembic_version_") or any(name in tables for tables in PLUGIN_TABLE_OWNERS.values())
    )


def core_include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """``include_name`` for the core app's env.py: skip every plugin table and plugin version table."""
    return not (type_ == "table" and _is_plugin_table(name))


def core_include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """``include_object`` for the core app's env.py (Alembic or Flask-Migrate): core tables only."""
    if type_ == "table":
        return not _is_plugin_table(name)
    table = getattr(obj, "table", None)
    return not (table is not None and _is_plugin_table(table.name))
