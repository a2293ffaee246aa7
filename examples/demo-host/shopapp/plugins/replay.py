"""Replaying chains in the context they run in, in a database that is left as it was found.

A revision runs in production against more than its own tables: the core
tables its foreign keys point into (Alembic's batch mode on SQLite reflects
them when it copies a table) and the tables of the plugins it depends on. So
``check`` and the host's generated tests build that context before they
replay a chain: the core tables (every table of the application's metadata
that no plugin owns), then every plugin the chain depends on, at its head.

A replay is one migration session that is rolled back at its end
(``Database.migration_session(commit=False)``), each step a savepoint: the
database is left as it was, so one scratch database serves any number of
replays, on SQLite or PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import Table, inspect, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from .chains import Chains
from .database import Database, MigrationSession
from .errors import PluginMigrationError, describe_user_error, error_summary
from .metadata import load_metadata
from .outcomes import Outcome
from .registry import Registry
from .schemas import effective_schema, table_names
from .upgrade import apply_in
from .versions import current_revision

#: Prefix of every plugin's version table (``alembic_version_NAME``).
PLUGIN_VERSION_TABLE = "alembic_version_"


def core_tables(registry: Registry) -> list[Table]:
    """Every table of the application's metadata that no plugin owns (nor Alembic's), in foreign-key order."""
    return [
        table
        for table in load_metadata(registry).sorted_tables
        if table.name not in registry.owners and not table.name.startswith("alembic_version")
    ]


def plugin_objects(registry: Registry, tables: set[str]) -> list[str]:
    """Which of ``tables`` are plugins' own: their tables and their version tables."""
    return sorted(table for table in tables if table in registry.owners or table.startswith(PLUGIN_VERSION_TABLE))


class Replay:
    """Chains replayed, step by step, in a migration session that is rolled back at its end."""

    def __init__(self, chains: Chains, session: MigrationSession) -> None:
        self.chains = chains
        self.registry = chains.registry
        self.session = session
        #: Tables there before the replayed chain ran (its context); set by ``prepare``.
        self.context: frozenset[str] = frozenset()

    @property
    def connection(self) -> Connection:
        return self.session.connection

    def tables(self) -> set[str]:
        """Every table in the database now."""
        return table_names(self.connection, self.registry.schemas)

    def create_core_tables(self) -> None:
        """Create the core tables that are missing, as the application's own migrations would have."""
        with self.session.step():
            load_metadata(self.registry).create_all(self.connection, tables=core_tables(self.registry), checkfirst=True)

    def upgrade_all(self, names: Sequence[str]) -> dict[str, Outcome]:
        """Upgrade ``names`` to their heads, dependencies first, exactly as ``upgrade-all`` does."""
        return apply_in(self.chains, self.session, names, {})

    def prepare(self, name: str | None = None) -> None:
        """Build the context of ``name``'s chain: the core tables, and every plugin it depends on at its head.

        Without a name, the context every chain shares: the core tables.
        """
        self.create_core_tables()
        dependencies = self.registry.dependencies(name) if name is not None else []
        failed = [
            f'"{plugin}" {outcome.status}: {outcome.error}'
            for plugin, outcome in self.upgrade_all(dependencies).items()
            if not outcome.succeeded
        ]
        if failed:
            raise PluginMigrationError(f'plugin "{name}": the plugins it depends on fail: {"; ".join(failed)}')
        self.context = frozenset(self.tables())

    def revisions(self, name: str) -> list[str]:
        """The chain's revisions, oldest first."""
        return self.chains.pending(name, None)

    def current(self, name: str) -> str | None:
        return current_revision(self.connection, self.registry.entry(name))

    def upgrade(self, name: str, revision: str = "head") -> None:
        """Upgrade the chain to ``revision``; a failure names the plugin, both revisions and the cause."""
        self._step(name, "upgrade", command.upgrade, revision)

    def downgrade(self, name: str, revision: str) -> None:
        """Downgrade the chain to ``revision`` ("base" removes it)."""
        self._step(name, "downgrade", command.downgrade, revision)

    def _step(self, name: str, verb: str, run: Callable[[Config, str], None], revision: str) -> None:
        start = self.current(name) or "base"
        try:
            with self.session.step():
                run(self.chains.config(name, self.connection), revision)
        except PluginMigrationError:
            raise
        except CommandError as error:
            cause = str(error)
        except SQLAlchemyError as error:
            cause = error_summary(error)
        except Exception as error:  # noqa: BLE001  (the user's revision code, named by file and line)
            cause = describe_user_error(error, self.registry.root)
        else:
            return
        raise PluginMigrationError(f'plugin "{name}": {verb} from {start} to {revision} failed: {cause}')

    def chain_tables(self) -> set[str]:
        """The tables the replayed chain has made: those not in its context, version tables aside."""
        return {table for table in self.tables() - self.context if not table.startswith("alembic_version")}

    def schema(self, tables: set[str]) -> dict[str, dict[str, list[tuple[str, ...]]]]:
        """What a revision can change in ``tables``, in an order-free form two points of a replay can compare."""
        inspector = inspect(self.connection)
        dialect = self.connection.dialect.name

        def strings(*values: Any) -> tuple[str, ...]:
            return tuple(str(value) for value in values)

        def shape(table: str) -> dict[str, list[tuple[str, ...]]]:
            owner = self.registry.owner_of(table)
            schema = effective_schema(self.registry.entry(owner).schema, dialect) if owner else None
            return {
                "columns": sorted(
                    strings(c["name"], c["type"], c["nullable"], c.get("default"))
                    for c in inspector.get_columns(table, schema)
                ),
                "primary_key": [strings(*inspector.get_pk_constraint(table, schema)["constrained_columns"])],
                "foreign_keys": sorted(
                    strings(fk["constrained_columns"], fk["referred_table"], fk["referred_columns"])
                    for fk in inspector.get_foreign_keys(table, schema)
                ),
                "unique": sorted(strings(*u["column_names"]) for u in inspector.get_unique_constraints(table, schema)),
                "indexes": sorted(
                    strings(i["name"], i["column_names"], i["unique"]) for i in inspector.get_indexes(table, schema)
                ),
            }

        return {table: shape(table) for table in sorted(tables)}


@contextmanager
def scratch(registry: Registry, url: str) -> Iterator[Replay]:
    """A Replay on the database at ``url``, in one transaction that is rolled back at the end.

    The database must hold no plugin's table or version table: every chain
    is replayed from its start. Core tables may be there already; the
    missing ones are made by ``Replay.prepare`` (and go with the rollback).
    """
    database = Database(url, schemas=registry.schemas)
    try:
        with database.migration_session(commit=False) as session:
            replay = Replay(Chains(registry, database), session)
            found = plugin_objects(registry, replay.tables())
            if found:
                raise PluginMigrationError(
                    f"the database {make_url(url).render_as_string(hide_password=True)} already holds plugin tables "
                    f"({', '.join(found)}): a replay starts every chain from its start; name a database without them "
                    f"(an empty one, or one with only the core tables)"
                )
            yield replay
    finally:
        database.dispose()
