"""A written revision, reviewed: the operations it holds and what they may lose, each named.

``revision --autogenerate`` prints both. A warning does not stop anything: it
points the reader at the lines of the revision to look at before it runs on a
database that holds data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic.operations import ops
from sqlalchemy import BigInteger, Column, DateTime, Enum, Float, Integer, Numeric, SmallInteger, String
from sqlalchemy.types import NullType

from .autogen import CreateEnumTypeOp


@dataclass(frozen=True)
class Review:
    """A revision file, its operations in words, and its data-loss warnings."""

    path: Path
    operations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def table_operations(upgrade_ops: ops.UpgradeOps) -> Iterator[tuple[str | None, ops.MigrateOperation]]:
    """Every operation with the table it belongs to, flattening the per-table groups."""
    for operation in upgrade_ops.ops:
        if isinstance(operation, ops.ModifyTableOps):
            for change in operation.ops:
                yield operation.table_name, change
        else:
            yield getattr(operation, "table_name", None), operation


#: How an operation reads: {op} is the operation, {table} the table whose batch block holds it.
_WORDS: dict[type[ops.MigrateOperation], str] = {
    CreateEnumTypeOp: "create enum type {op.enum.name} if missing",
    ops.CreateTableOp: "create table {op.table_name}",
    ops.DropTableOp: "drop table {op.table_name}",
    ops.AddColumnOp: "add column {table}.{op.column.name}",
    ops.DropColumnOp: "drop column {table}.{op.column_name}",
    ops.CreateIndexOp: "create index {op.index_name} on {op.table_name}",
    ops.DropIndexOp: "drop index {op.index_name} on {op.table_name}",
    ops.DropConstraintOp: "drop constraint {op.constraint_name} on {table}",
}


def describe(operation: ops.MigrateOperation, table: str | None) -> str:
    """One operation in words: "add column items.sku", "create foreign key orders_item_id_fkey on orders", ..."""
    if isinstance(operation, ops.AlterColumnOp):
        changes = [
            f"{what} {old} -> {new}"
            for what, old, new, changed in (
                ("type", operation.existing_type, operation.modify_type, operation.modify_type is not None),
                ("nullable", operation.existing_nullable, operation.modify_nullable, operation.modify_nullable is not None),
                ("server default", _default(operation.existing_server_default),
                 _default(operation.modify_server_default), operation.modify_server_default is not False),
                ("name", operation.column_name, operation.modify_name, operation.modify_name is not None),
            )
            if changed
        ]
        return f"alter column {table}.{operation.column_name} ({', '.join(changes)})"
    if isinstance(operation, ops.AddConstraintOp):
        kind = operation.constraint_type.replace("foreignkey", "foreign key").replace("unique", "unique constraint")
        return f"create {kind} {getattr(operation, 'constraint_name', None)} on {table}"
    for operation_type, words in _WORDS.items():
        if isinstance(operation, operation_type):
            return words.format(op=operation, table=table)
    name = type(operation).__name__.removesuffix("Op")
    return "".join(f" {c.lower()}" if c.isupper() else c for c in name).strip() + (f" on {table}" if table else "")


def _default(default: Any) -> str:
    if default is None or default is False:
        return "none"
    return str(getattr(default, "arg", default))


def warnings(upgrade_ops: ops.UpgradeOps) -> list[str]:
    """What the upgrade may lose or fail on, naming the tables and columns."""
    found: list[str] = []
    dropped: dict[str, list[Column[Any]]] = {}
    added: dict[str, list[Column[Any]]] = {}
    for table, operation in table_operations(upgrade_ops):
        if isinstance(operation, ops.DropTableOp):
            found.append(f"drops table {operation.table_name} and every row in it")
        elif isinstance(operation, ops.DropColumnOp) and table:
            found.append(f"drops column {table}.{operation.column_name} and the data it holds")
            dropped.setdefault(table, []).append(operation.to_column())
        elif isinstance(operation, ops.AddColumnOp) and table:
            added.setdefault(table, []).append(operation.column)
            column = operation.column
            if not column.nullable and column.server_default is None:
                found.append(
                    f"adds NOT NULL column {table}.{column.name} without a server default: it fails on a table "
                    f"that has rows; give it server_default=..., or add it nullable, fill it, then make it NOT NULL"
                )
        elif isinstance(operation, ops.AlterColumnOp) and table:
            found.extend(_alter_warnings(table, operation))
    for table, columns in dropped.items():
        for old in columns:
            for new in added.get(table, []):
                if _same_kind(old.type, new.type):
                    found.append(
                        f"drops {table}.{old.name} and adds {table}.{new.name}: if that is a rename, write "
                        f"batch_op.alter_column({old.name!r}, new_column_name={new.name!r}) instead, which keeps the data"
                    )
    return found


def _same_kind(old: Any, new: Any) -> bool:
    """Could a column of type old have become one of type new by a rename (text and text, number and number)?"""
    if isinstance(old, NullType) or isinstance(new, NullType):
        return True
    return bool(old._type_affinity is new._type_affinity)


def _alter_warnings(table: str, operation: ops.AlterColumnOp) -> list[str]:
    found = []
    column = f"{table}.{operation.column_name}"
    if operation.modify_type is not None and operation.existing_type is not None:
        reason = narrowing(operation.existing_type, operation.modify_type)
        if reason:
            found.append(f"narrows {column} from {operation.existing_type} to {operation.modify_type}: {reason}")
    if operation.modify_nullable is False and operation.existing_nullable is not False:
        found.append(f"makes {column} NOT NULL: it fails while rows hold NULL there")
    return found


def _integer_rank(type_: Any) -> int | None:
    for rank, kind in enumerate((SmallInteger, Integer, BigInteger)):
        if isinstance(type_, kind) and not (kind is Integer and isinstance(type_, (SmallInteger, BigInteger))):
            return rank
    return None


def narrowing(old: Any, new: Any) -> str | None:
    """Why a change from type ``old`` to type ``new`` may lose or refuse existing values; None if it widens."""
    if isinstance(new, Enum) and not isinstance(old, Enum):
        return f"only the values {', '.join(map(repr, new.enums))} stay valid"
    if isinstance(old, String) and isinstance(new, String):
        if new.length is not None and (old.length is None or new.length < old.length):
            return "longer values are cut or refused"
        return None
    if isinstance(old, String):
        return "text values that do not convert are refused"
    old_rank, new_rank = _integer_rank(old), _integer_rank(new)
    if old_rank is not None and new_rank is not None:
        return "larger numbers are refused" if new_rank < old_rank else None
    if isinstance(old, Numeric) and new_rank is not None:
        return "fractions are cut"
    if isinstance(old, Numeric) and isinstance(new, Numeric) and not isinstance(old, Float) and not isinstance(new, Float):
        fewer = [
            what for what, before, after in (("precision", old.precision, new.precision), ("scale", old.scale, new.scale))
            if before is not None and after is not None and after < before
        ]
        return f"less {' and '.join(fewer)}: values are rounded or refused" if fewer else None
    if isinstance(old, DateTime) and isinstance(new, DateTime) and old.timezone and not new.timezone:
        return "the time zone of each value is lost"
    return None
