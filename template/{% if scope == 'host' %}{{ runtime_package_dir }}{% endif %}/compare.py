"""How a plugin's tables in a database differ from its models (Alembic's ``compare_metadata``)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from .alembic_template import configure_options
from .registry import Registry


def differences(connection: Connection, registry: Registry, name: str) -> list[str]:
    """One line per difference between the plugin's tables in the database and its models; empty when equal."""
    options = configure_options(registry, name, connection.dialect.name, connection)
    migration_context = MigrationContext.configure(connection, opts=options)
    return [describe_difference(diff) for diff in compare_metadata(migration_context, options["target_metadata"])]


def column_changes(connection: Connection, registry: Registry, name: str) -> set[tuple[str, str, str]]:
    """(table, column, "type" or "server_default") for each column whose type or default the models change."""
    options = configure_options(registry, name, connection.dialect.name, connection)
    migration_context = MigrationContext.configure(connection, opts=options)
    kinds = {"modify_type": "type", "modify_default": "server_default"}

    def flat(diffs: list[Any]) -> list[Any]:
        return [item for diff in diffs for item in (flat(diff) if isinstance(diff, list) else [diff])]

    return {
        (diff[2], diff[3], kinds[diff[0]])
        for diff in flat(compare_metadata(migration_context, options["target_metadata"]))
        if diff[0] in kinds
    }


def describe_difference(diff: Any) -> str:
    """One line for one of Alembic's compare_metadata() differences."""
    if isinstance(diff, list):
        return "; ".join(describe_difference(item) for item in diff)
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        return f"{kind.replace('_', ' ')} {diff[1].name}"
    if kind in ("add_column", "remove_column"):
        return f"{kind.replace('_', ' ')} {diff[2]}.{diff[3].name}"
    if kind in ("add_index", "remove_index"):
        return f"{kind.replace('_', ' ')} {diff[1].name} on {diff[1].table.name}"
    if kind.startswith("modify_"):
        return f"{kind.replace('_', ' ')} of {diff[2]}.{diff[3]}: {diff[5]!r} in the database, {diff[6]!r} in the models"
    if kind in ("add_fk", "remove_fk", "add_constraint", "remove_constraint"):
        constraint = diff[1]
        return f"{kind.replace('_', ' ')} on {constraint.table.name} ({', '.join(c.name for c in constraint.columns)})"
    return repr(diff)
