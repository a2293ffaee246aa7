"""What the database records: each plugin's rows in its version table, and which tables exist."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, literal, select, union_all
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import column as sql_column
from sqlalchemy.sql.expression import table as sql_table

from .chains import Chains
from .outcomes import PluginStatus
from .registry import PluginEntry, Registry
from .schemas import effective_schema, table_names

#: Version tables read by one UNION query; SQLite allows at most 500 terms in one compound SELECT.
SELECTS_PER_QUERY = 100


@dataclass(frozen=True)
class DatabaseState:
    """The tables a database holds, and the rows of each plugin's version table (none when not installed)."""

    tables: frozenset[str]
    recorded: dict[str, tuple[str, ...]]


def read_state(connection: Connection, registry: Registry, names: Iterable[str]) -> DatabaseState:
    """Every plugin's version rows with one UNION query per hundred plugins, and the table names.

    The rows Alembic's MigrationContext reads, but with a query per hundred
    plugins instead of two queries per plugin, which with hundreds of plugins
    made most of the cost of an upgrade with nothing to do.
    """
    tables = frozenset(table_names(connection, registry.schemas))
    recorded: dict[str, list[str]] = {name: [] for name in names}
    selects = [
        select(literal(name).label("plugin"), sql_column("version_num", String())).select_from(
            sql_table(entry.version_table, schema=effective_schema(entry.schema, connection.dialect.name))
        )
        for name in recorded
        if (entry := registry.entry(name)).version_table in tables
    ]
    for start in range(0, len(selects), SELECTS_PER_QUERY):
        for name, version in connection.execute(union_all(*selects[start : start + SELECTS_PER_QUERY])):
            recorded[name].append(version)
    return DatabaseState(tables, {name: tuple(versions) for name, versions in recorded.items()})


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
