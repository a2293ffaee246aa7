"""Downgrades: one plugin at a time, refused while other tables point into it, confirmed before data goes.

Data goes with a dropped table, and with a dropped column where a row holds a value in it.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable, Iterable

from alembic import command
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import column as sql_column
from sqlalchemy import inspect, literal, select
from sqlalchemy import table as sql_table
from sqlalchemy.engine import Connection, Transaction
from sqlalchemy.exc import SQLAlchemyError

from .chains import Chains
from .errors import LOCK_NOT_AVAILABLE, PluginMigrationError, error_summary, sqlstate
from .outcomes import Outcome, Status
from .registry import Registry
from .schemas import drop_plugin_schema, drop_version_table_sql, effective_schema, has_schemas, table_names
from .versions import current_revision, read_state

#: SQLSTATE of "cannot drop ... because other objects depend on it".
DEPENDENT_OBJECTS_STILL_EXIST = "2BP01"

#: Asked before data is dropped: (plugin, what) -> yes? ``what`` names tables, and columns as "table.column".
Confirm = Callable[[str, list[str]], bool]


def downgrade(chains: Chains, name: str, revision: str, confirm: Confirm | None = None) -> Outcome:
    """Downgrade one plugin to ``revision`` in one transaction.

    Refused when it would drop a table that other tables' foreign keys still
    point into. When it would drop tables, or columns of the plugin's tables
    where a row holds a value, ``confirm(name, what)`` decides; without a yes
    the transaction is rolled back and nothing changes. The outcome's
    ``dropped`` names the tables and every column it dropped.
    """
    with chains.database.migration_session() as session, session.step() as transaction:
        return downgrade_in(session.connection, transaction, chains, name, revision, confirm)


def downgrade_in(
    connection: Connection, transaction: Transaction, chains: Chains, name: str, revision: str, confirm: Confirm | None
) -> Outcome:
    """``downgrade`` inside a transaction the caller holds (``remove`` adds its own step after it)."""
    registry, entry = chains.registry, chains.registry.entry(name)
    before = current_revision(connection, entry)
    _refuse_needed(chains, connection, name, before, revision)
    schema = effective_schema(entry.schema, connection.dialect.name)
    incoming = foreign_keys_into(connection, set(entry.tables), registry.schemas)
    tables_before = table_names(connection, registry.schemas)
    columns_before = _columns(connection, entry.tables, schema)
    # A trial run first: which columns go is known only after it, and whether they hold data only before it.
    with connection.begin_nested() as trial:
        _run(chains, name, revision, connection, incoming)
        dropped = sorted(tables_before - table_names(connection, registry.schemas))
        columns_after = _columns(connection, entry.tables, schema)
        blocking = {table: incoming[table] for table in dropped if table in incoming}
        if blocking:
            raise _refuse_referenced(registry, name, revision, blocking)
        lost = sorted(
            f"{table}.{column}" for table in set(columns_before) & set(columns_after)
            for column in columns_before[table] if column not in columns_after[table]
        )
        if lost:
            trial.rollback()  # back to before, to look at the data; the downgrade runs again below
    at_risk = dropped + [column for column in lost if _holds_data(connection, schema, *column.split(".", 1))]
    if at_risk and not (confirm is not None and confirm(name, at_risk)):
        transaction.rollback()
        return Outcome(name, Status.ABORTED, before, before, dropped=tuple(at_risk))
    if lost:
        _run(chains, name, revision, connection, incoming)
    after = current_revision(connection, entry)
    if after is None and schema and drop_plugin_schema(connection, schema, entry.version_table):
        dropped.append(f"schema {schema}")
    return Outcome(name, Status.DOWNGRADED, before, after, dropped=tuple(dropped + lost))


def _run(chains: Chains, name: str, revision: str, connection: Connection, incoming: dict[str, list[str]]) -> None:
    try:
        command.downgrade(chains.config(name, connection), revision)
    except CommandError as error:
        raise PluginMigrationError(f'plugin "{name}": {error}') from None
    except SQLAlchemyError as error:
        if sqlstate(error) == DEPENDENT_OBJECTS_STILL_EXIST and incoming:
            raise _refuse_referenced(chains.registry, name, revision, incoming) from None
        if sqlstate(error) == LOCK_NOT_AVAILABLE:
            raise chains.database.table_lock_timeout_error() from None
        raise PluginMigrationError(
            f'plugin "{name}": downgrade to {revision} failed, nothing was changed: {error_summary(error)}'
        ) from None


def _columns(connection: Connection, tables: Iterable[str], schema: str | None) -> dict[str, list[str]]:
    """Each of ``tables`` that exists (in ``schema``) -> its column names."""
    inspector = inspect(connection)
    present = set(inspector.get_table_names(schema=schema))
    return {t: [c["name"] for c in inspector.get_columns(t, schema=schema)] for t in tables if t in present}


def _holds_data(connection: Connection, schema: str | None, table: str, column: str) -> bool:
    """Does any row of table hold a value (not NULL) in column?"""
    query = select(literal(1)).select_from(sql_table(table, schema=schema)).where(sql_column(column).is_not(None)).limit(1)
    return connection.execute(query).first() is not None


def downgrade_sql(chains: Chains, name: str, revision: str) -> str:
    """The SQL that ``downgrade(name, revision)`` would run, without running it."""
    entry = chains.registry.entry(name)
    with chains.database.connect() as connection:
        current = current_revision(connection, entry)
        if current is None:
            raise PluginMigrationError(f'plugin "{name}" is not installed in this database: nothing to downgrade')
        _refuse_needed(chains, connection, name, current, revision)
        dialect = connection.dialect
    buffer = io.StringIO()
    try:
        command.downgrade(chains.config(name, sql_buffer=buffer), f"{current}:{revision}", sql=True)
    except CommandError as error:
        raise PluginMigrationError(f'plugin "{name}": {error}') from None
    script = buffer.getvalue()
    if revision == "base" and (schema := effective_schema(entry.schema, chains.database.backend)):
        # In the same transaction as the downgrade, as the run does it.
        before, commit, after = script.rpartition("COMMIT;")
        dropped = drop_version_table_sql(dialect, entry.version_table, schema)
        script = f"{before}{dropped}{commit}{after}" if commit else script + dropped
    return f"-- plugin {name}: {current} -> {revision}\n{script}"


def _refuse_needed(chains: Chains, connection: Connection, name: str, current: str | None, revision: str) -> None:
    """Refuse a downgrade that would take away a revision on which another plugin's applied revision depends.

    The dependant goes down first: a revision's own downgrade may still need
    the other plugin's tables as that revision left them.
    """
    if current is None:
        return
    try:
        revisions = chains.script(name).revision_map.iterate_revisions(current, revision, select_for_downgrade=True)
        going = {script.revision for script in revisions}
    except RevisionError:
        return  # a target Alembic cannot read: its downgrade says so
    registry = chains.registry
    dependants = [other for other in registry.order if name in registry.closure(other)]
    recorded = read_state(connection, registry, dependants).recorded
    for other in dependants:
        if len(recorded[other]) != 1 or not (links := chains.links(other)):
            continue
        try:
            applied = set(chains.span(other, recorded[other][0], None))
        except CommandError:
            continue  # a revision its chain does not know: `status` reports it
        for link in links:
            if link.on_plugin == name and link.on_revision in going and link.revision in applied:
                down = chains.script(other).get_revision(link.revision).down_revision
                then = f" (`downgrade {other} {down or 'base'}`)" if not isinstance(down, tuple) else ""
                raise PluginMigrationError(
                    f'refusing to downgrade "{name}" to {revision}, nothing was changed: revision {link.revision} of '
                    f'plugin "{other}", applied in this database, depends on {link.on}; downgrade "{other}" '
                    f"below {link.revision} first{then}"
                )


def foreign_keys_into(connection: Connection, tables: set[str], schemas: Iterable[str] = ()) -> dict[str, list[str]]:
    """For each of ``tables``, the other tables (of the default schema and plugins' schemas) pointing into it."""
    inspector = inspect(connection)
    incoming: dict[str, list[str]] = defaultdict(list)
    present = set(inspector.get_schema_names()) if has_schemas(connection.dialect.name) else set()
    in_schemas = [(s, t) for s in sorted(set(schemas) & present) for t in inspector.get_table_names(schema=s)]
    for schema, table in [(None, t) for t in inspector.get_table_names()] + in_schemas:
        if table in tables:
            continue
        for foreign_key in inspector.get_foreign_keys(table, schema=schema):
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
