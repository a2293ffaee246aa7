"""What the database records: each plugin's rows in its version table, and which tables exist."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from .chains import Chains
from .errors import LOCK_NOT_AVAILABLE, sqlstate
from .outcomes import PluginStatus
from .registry import PluginEntry, Registry
from .schemas import effective_schema, table_names

#: Version tables read by one UNION query; SQLite allows at most 500 terms in one compound SELECT.
SELECTS_PER_QUERY = 100


@dataclass(frozen=True)
class DatabaseState:
    """The rows of each plugin's version table (none when not installed), and the tables the database holds.

    ``tables`` is None when every plugin read has a version row: only a
    plugin without one is decided by its tables (install or adopt).
    """

    tables: frozenset[str] | None
    recorded: dict[str, tuple[str, ...]]


def read_state(connection: Connection, registry: Registry, names: Iterable[str]) -> DatabaseState:
    """Every plugin's version rows with one UNION query per hundred plugins, and the table names if needed.

    The rows Alembic's MigrationContext reads, but with a query per hundred
    plugins instead of two queries per plugin, which with hundreds of plugins
    made most of the cost of an upgrade with nothing to do. The usual case,
    every plugin installed, is read first without listing the tables (a
    catalog query and SQLAlchemy's reflection, a third of the read on
    PostgreSQL); a version table missing or empty falls back to the full read.
    """
    names = list(names)
    recorded = _rows_if_all_installed(connection, registry, names)
    if recorded is not None:
        return DatabaseState(None, recorded)
    tables = frozenset(table_names(connection, registry.schemas))
    rows = _rows(connection, registry, [name for name in names if registry.entry(name).version_table in tables])
    return DatabaseState(tables, {name: rows.get(name, ()) for name in names})


def _rows_if_all_installed(connection: Connection, registry: Registry, names: list[str]) -> dict[str, tuple[str, ...]] | None:
    """Every plugin's rows, or None when a version table is missing (the savepoint keeps the transaction) or empty."""
    if not names:
        return None
    try:
        with connection.begin_nested():
            rows = _rows(connection, registry, names)
    except DBAPIError as error:
        if sqlstate(error) == LOCK_NOT_AVAILABLE:
            raise  # the full read would wait as long again
        return None
    return rows if len(rows) == len(names) else None


def _rows(connection: Connection, registry: Registry, names: list[str]) -> dict[str, tuple[str, ...]]:
    """The rows of the version tables of ``names`` (which must exist), by plugin; a plugin without rows is absent.

    The query is written as text, each table name quoted by the dialect:
    SQLAlchemy's compiler took 25 to 35 ms for 200 SELECTs, a tenth of a run
    with nothing to do.
    """
    recorded: dict[str, list[str]] = {}
    for start in range(0, len(names), SELECTS_PER_QUERY):
        chunk = names[start : start + SELECTS_PER_QUERY]
        query = " UNION ALL ".join(
            f"SELECT {index} AS plugin, version_num FROM {_version_table(connection, registry.entry(name))}"
            for index, name in enumerate(chunk)
        )
        for index, version in connection.exec_driver_sql(query):
            recorded.setdefault(chunk[index], []).append(version)
    return {name: tuple(versions) for name, versions in recorded.items()}


def _version_table(connection: Connection, entry: PluginEntry) -> str:
    """The plugin's version table as SQL, quoted by the dialect and qualified by its schema where it has one."""
    preparer = connection.dialect.identifier_preparer
    schema = effective_schema(entry.schema, connection.dialect.name)
    table = preparer.quote(entry.version_table)
    return f"{preparer.quote_schema(schema)}.{table}" if schema else table


def current_revision(connection: Connection, entry: PluginEntry) -> str | None:
    """The plugin's revision recorded in the database (None when not installed), as Alembic reads it."""
    from alembic.runtime.migration import MigrationContext  # not at the top: see upgrade's docstring

    schema = effective_schema(entry.schema, connection.dialect.name)
    opts = {"version_table": entry.version_table, "version_table_schema": schema}
    return MigrationContext.configure(connection, opts=opts).get_current_revision()


def several_rows(entry: PluginEntry, rows: tuple[str, ...]) -> str:
    """What is wrong with a version table that holds more than one revision, and the fix."""
    return (
        f"its version table {entry.version_table} holds {len(rows)} revisions ({', '.join(sorted(rows))}), "
        f"nothing was changed; keep the right one with `stamp {entry.name} REVISION`"
    )


def plugin_statuses(connection: Connection, chains: Chains, names: Iterable[str] | None = None) -> list[PluginStatus]:
    """Every plugin's current revision, head and pending revisions, in dependency order, and which of its
    revisions depend on other plugins' revisions ("0002_comments depends on blog@0002_blog").

    Every version table is read with ``read_state``'s few queries; a version
    table with several rows is reported as the plugin's problem.
    """
    names = list(chains.registry.order if names is None else names)
    state = read_state(connection, chains.registry, names)
    statuses = []
    for name in names:
        rows, head = state.recorded[name], chains.head(name)
        if len(rows) > 1:
            statuses.append(PluginStatus(name, None, head, problem=several_rows(chains.registry.entry(name), rows)))
            continue
        current = rows[0] if rows else None
        links = [str(link) for link in chains.links(name)]
        statuses.append(PluginStatus(name, current, head, chains.pending(name, current), revision_dependencies=links))
    chains.save_cache()
    return statuses


def history(connection: Connection, chains: Chains, name: str) -> list[dict[str, Any]]:
    """The plugin's revisions, newest first, with which is head, which is current, and which other plugins'
    revisions each depends on ("blog@0002_blog")."""
    current = current_revision(connection, chains.registry.entry(name))
    links = chains.links(name)
    return [
        {
            "revision": script.revision,
            "down_revision": script.down_revision,
            "message": script.doc,
            "head": script.is_head,
            "current": script.revision == current,
            "depends_on": [link.on for link in links if link.revision == script.revision],
        }
        for script in chains.script(name).walk_revisions()
    ]
