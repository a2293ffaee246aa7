"""Downgrades: one plugin at a time, refused while other tables point into it, confirmed before data goes."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable

from alembic import command
from alembic.util import CommandError
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from .chains import Chains
from .errors import LOCK_NOT_AVAILABLE, PluginMigrationError, error_summary, sqlstate
from .outcomes import Outcome, Status
from .registry import Registry
from .versions import current_revision

#: SQLSTATE of "cannot drop ... because other objects depend on it".
DEPENDENT_OBJECTS_STILL_EXIST = "2BP01"

#: Asked before tables and their data are dropped: (plugin, tables) -> yes?
Confirm = Callable[[str, list[str]], bool]


def downgrade(chains: Chains, name: str, revision: str, confirm: Confirm | None = None) -> Outcome:
    """Downgrade one plugin to ``revision`` in one transaction.

    Refused when it would drop a table that other tables' foreign keys still
    point into. When it would drop tables, ``confirm(name, tables)`` decides;
    without a yes the transaction is rolled back and nothing changes.
    """
    registry, entry = chains.registry, chains.registry.entry(name)
    with chains.database.migration_session() as session, session.step() as transaction:
        connection = session.connection
        before = current_revision(connection, entry)
        incoming = foreign_keys_into(connection, set(entry.tables))
        tables_before = set(inspect(connection).get_table_names())
        try:
            command.downgrade(chains.config(name, connection), revision)
        except CommandError as error:
            raise PluginMigrationError(f'plugin "{name}": {error}') from None
        except SQLAlchemyError as error:
            if sqlstate(error) == DEPENDENT_OBJECTS_STILL_EXIST and incoming:
                raise _refuse_referenced(registry, name, revision, incoming) from None
            if sqlstate(error) == LOCK_NOT_AVAILABLE:
                raise chains.database.table_lock_timeout_error() from None
            raise PluginMigrationError(
                f'plugin "{name}": downgrade to {revision} failed, nothing was changed: {error_summary(error)}'
            ) from None
        dropped = sorted(tables_before - set(inspect(connection).get_table_names()))
        blocking = {table: incoming[table] for table in dropped if table in incoming}
        if blocking:
            raise _refuse_referenced(registry, name, revision, blocking)
        if dropped and not (confirm is not None and confirm(name, dropped)):
            transaction.rollback()
            return Outcome(name, Status.ABORTED, before, before, dropped=tuple(dropped))
        after = current_revision(connection, entry)
    return Outcome(name, Status.DOWNGRADED, before, after, dropped=tuple(dropped))


def downgrade_sql(chains: Chains, name: str, revision: str) -> str:
    """The SQL that ``downgrade(name, revision)`` would run, without running it."""
    entry = chains.registry.entry(name)
    with chains.database.connect() as connection:
        current = current_revision(connection, entry)
    if current is None:
        raise PluginMigrationError(f'plugin "{name}" is not installed in this database: nothing to downgrade')
    buffer = io.StringIO()
    try:
        command.downgrade(chains.config(name, sql_buffer=buffer), f"{current}:{revision}", sql=True)
    except CommandError as error:
        raise PluginMigrationError(f'plugin "{name}": {error}') from None
    return f"-- plugin {name}: {current} -> {revision}\n{buffer.getvalue()}"


def foreign_keys_into(connection: Connection, tables: set[str]) -> dict[str, list[str]]:
    """For each of ``tables``, the other tables whose foreign keys point into it."""
    inspector = inspect(connection)
    incoming: dict[str, list[str]] = defaultdict(list)
    for table in inspector.get_table_names():
        if table in tables:
            continue
        for foreign_key in inspector.get_foreign_keys(table):
            if foreign_key["referred_table"] in tables:
                incoming[foreign_key["referred_table"]].append(table)
    return incoming


def _refuse_referenced(registry: Registry, name: str, revision: str, incoming: dict[str, list[str]]) -> PluginMigrationError:
    def owner_label(table: str) -> str:
        owner = registry.owner_of(table)
        return "the core app" if owner is None else f"plugin {owner}"

    described = "; ".join(
        f"table {table} is referenced by "
        + ", ".join(f"table {referrer} ({owner_label(referrer)})" for referrer in sorted(referrers))
        for table, referrers in sorted(incoming.items())
    )
    return PluginMigrationError(
        f'refusing to downgrade "{name}" to {revision}, nothing was changed: {described}; '
        f"downgrade the plugins that own those tables first"
    )
