"""Constraint names: every constraint of a plugin's tables has one, the name PostgreSQL itself would give it.

A revision can only drop or change a constraint it can name, and SQLite's
batch mode needs the name too. Unnamed constraints get PostgreSQL's own
default names (``items_pkey``, ``items_sku_key``, ``orders_item_id_fkey``,
``orders_qty_check``, cut to 63 bytes as PostgreSQL cuts them), so:

- a PostgreSQL database built before this convention, by ``create_all()`` or
  an older baseline, already holds exactly these names;
- a SQLite database that holds unnamed constraints gets them named the same
  way when batch mode reflects a table (Alembic names reflected constraints
  by the target metadata's convention), so a revision's
  ``drop_constraint("orders_item_id_fkey")`` works on both;
- a name is the same on every backend.

The application's ``MetaData`` belongs to the application: where its
``naming_convention`` sets a kind of constraint (``"fk"``, ``"uq"``, ...),
that rule wins. For the kinds it leaves unset, ``apply_naming_convention``
adds this module's rules to it (so constraints attached later, batch mode's
reflected tables and a revision's ``op.create_foreign_key(None, ...)`` get
them) and names the plugin tables' constraints that are already unnamed.
Indexes keep SQLAlchemy's default, ``ix_<table>_<column>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import CheckConstraint, Constraint, ForeignKeyConstraint, MetaData, PrimaryKeyConstraint, Table
from sqlalchemy import UniqueConstraint, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.sql.naming import conv

#: PostgreSQL's longest identifier, in bytes (NAMEDATALEN - 1).
MAX_NAME_BYTES = 63


def pg_object_name(table: str, columns: str | None, label: str) -> str:
    """PostgreSQL's ``makeObjectName``: ``table_columns_label``, the longer of table and columns cut first to fit."""
    overhead = len(label) + 1 + (1 if columns else 0)
    first, second = table.encode(), (columns or "").encode()
    while len(first) + len(second) > MAX_NAME_BYTES - overhead:
        if len(first) > len(second):
            first = first[:-1]
        else:
            second = second[:-1]
    parts = [first.decode(errors="ignore"), second.decode(errors="ignore")] if columns else [first.decode(errors="ignore")]
    return "_".join([*parts, label])


def _numbered(table: Table, constraint: Any, columns: str | None, label: str) -> str:
    """The name, or PostgreSQL's next free ``label1``, ``label2``, ... when another constraint of table holds it."""
    taken = {c.name for c in table.constraints if c is not constraint and isinstance(c.name, str)}
    name, number = pg_object_name(table.name, columns, label), 0
    while name in taken:
        number += 1
        name = pg_object_name(table.name, columns, f"{label}{number}")
    return name


def _column_names(constraint: Any) -> list[str]:
    if isinstance(constraint, ForeignKeyConstraint):
        return [element.parent.name for element in constraint.elements]
    return [column.name for column in constraint.columns]


def primary_key_name(constraint: Any, table: Table) -> str:
    return pg_object_name(table.name, None, "pkey")


def unique_name(constraint: Any, table: Table) -> str:
    return _numbered(table, constraint, "_".join(_column_names(constraint)), "key")


def foreign_key_name(constraint: Any, table: Table) -> str:
    return _numbered(table, constraint, "_".join(_column_names(constraint)), "fkey")


def check_name(constraint: Any, table: Table) -> str:
    """``table_column_check`` when the check refers to one column, else ``table_check``, as PostgreSQL names it.

    A check written as SQL text (and one reflected from a database) has no
    column objects: the table's columns that its text mentions count.
    """
    columns = _column_names(constraint)
    if not columns:
        words = re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", str(getattr(constraint, "sqltext", "")))
        columns = [word for word in words if word in table.columns]
    distinct = set(columns)
    return _numbered(table, constraint, columns[0] if len(distinct) == 1 else None, "check")


#: SQLAlchemy naming convention keys -> the PostgreSQL-style name of an unnamed constraint of that kind.
_RULES: dict[str, Callable[[Any, Table], str]] = {
    "pk": primary_key_name,
    "uq": unique_name,
    "fk": foreign_key_name,
    "ck": check_name,
}
_KINDS: dict[type[Constraint], str] = {
    PrimaryKeyConstraint: "pk",
    UniqueConstraint: "uq",
    ForeignKeyConstraint: "fk",
    CheckConstraint: "ck",
}

#: The naming convention this runtime gives a MetaData for each kind it leaves unset.
NAMING_CONVENTION: dict[str, Any] = {
    "ix": "ix_%(column_0_label)s",  # SQLAlchemy's own default for indexes
    **{kind: f"%(plugin_migrations_{kind})s" for kind in _RULES},
    **{f"plugin_migrations_{kind}": rule for kind, rule in _RULES.items()},
}


def _kind(constraint: Constraint) -> str | None:
    return next((kind for cls, kind in _KINDS.items() if isinstance(constraint, cls)), None)


def _sets(convention: Any, kind: str) -> bool:
    """Does the application's convention set this kind, by its key or by a constraint class?"""
    return kind in convention or any(cls in convention for cls, key in _KINDS.items() if key == kind)


def apply_naming_convention(metadata: MetaData, tables: Iterable[Table]) -> None:
    """Add the rules for the kinds metadata's convention leaves unset; name tables' unnamed constraints by them."""
    own: dict[Any, Any] = dict(metadata.naming_convention)
    unset = [kind for kind in _RULES if not _sets(own, kind)]
    if unset:
        tokens = {key: rule for key, rule in NAMING_CONVENTION.items() if callable(rule)}
        metadata.naming_convention = {**tokens, **{kind: NAMING_CONVENTION[kind] for kind in unset}, **own}
    ours = {kind for kind in _RULES if metadata.naming_convention.get(kind) == NAMING_CONVENTION[kind]}
    for table in tables:
        for constraint in sorted(table.constraints, key=lambda c: getattr(c, "_creation_order", 0)):
            kind = _kind(constraint)
            unnamed = constraint.name is None and not (kind == "pk" and not table.primary_key.columns)
            if unnamed and kind in ours:
                constraint.name = conv(_RULES[kind](constraint, table))


def unnamed_uniques(connection: Connection) -> Callable[[str], set[tuple[str, ...]]]:
    """table -> the column lists of its unnamed unique constraints (SQLite keeps them so), read once per table."""
    inspector, found = inspect(connection), dict[str, set[tuple[str, ...]]]()

    def unnamed(table: str) -> set[tuple[str, ...]]:
        if table not in found:
            found[table] = {
                tuple(uq["column_names"]) for uq in inspector.get_unique_constraints(table) if not uq["name"]
            } if inspector.has_table(table) else set()
        return found[table]

    return unnamed
