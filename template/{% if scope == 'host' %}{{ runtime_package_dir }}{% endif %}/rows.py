"""Rows for a table as a migration test needs them: generated from its columns, parents first.

``RowMaker.insert`` fills in what a caller leaves out. Each column gets a
simple value of its type, different from row to row (so unique constraints
hold) and within the column's length; a foreign key gets the key of a row in
the table it points into (an existing row, else one made there first, and so
on up); a column with a server default, a computed or an identity column is
left to the database. The row comes back as the database stored it.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, ForeignKeyConstraint, Table, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import sort_tables

from .database import MigrationSession
from .errors import PluginMigrationError, error_summary

#: Generated integer primary keys start here, clear of rows a revision seeds itself.
FIRST_GENERATED_KEY = 10_000

_START = datetime(2000, 1, 1)
_HOOK_HINT = "give its rows with fixture_rows() in the plugin's migrations/fixture_rows.py"


def generated_value(column: Column[Any], number: int) -> Any:
    """A simple value of the column's type for row ``number``; None when there is no obvious one."""
    type_ = column.type
    choices = getattr(type_, "enums", None)
    if choices:
        return choices[number % len(choices)]
    try:
        python_type: type | None = type_.python_type
    except NotImplementedError:
        python_type = None
    if python_type is bool:
        return number % 2 == 0
    if python_type is int:
        return number + FIRST_GENERATED_KEY if column.primary_key else number
    if python_type is float:
        return number + 0.5
    if python_type is Decimal:
        precision, scale = getattr(type_, "precision", None), getattr(type_, "scale", None) or 0
        return Decimal(number % 10 ** max(precision - scale, 1) if precision else number)
    if python_type is str:
        length, text = getattr(type_, "length", None), f"{column.name}-{number}"
        return text if length is None or len(text) <= length else str(number)[-length:]
    return _other_value(type_, python_type, number)


def _other_value(type_: Any, python_type: type | None, number: int) -> Any:
    if python_type is datetime:
        zone = timezone.utc if getattr(type_, "timezone", False) else None
        return (_START + timedelta(minutes=number)).replace(tzinfo=zone)
    values: dict[type, Any] = {
        date: _START.date() + timedelta(days=number),
        time: time(number % 24, number % 60),
        timedelta: timedelta(seconds=number),
        bytes: str(number).encode(),
        dict: {"n": number},
        list: [number],
        uuid.UUID: uuid.UUID(int=number),
    }
    return values.get(python_type) if python_type is not None else None


def _left_to_database(column: Column[Any]) -> bool:
    return column.server_default is not None or column.computed is not None or column.identity is not None


class RowMaker:
    """Inserts rows in one migration session, each in a savepoint, numbering the generated values."""

    def __init__(self, session: MigrationSession) -> None:
        self.session = session
        self._numbers = itertools.count(1)

    @staticmethod
    def in_dependency_order(tables: Iterable[Table]) -> list[Table]:
        return sort_tables(tables)

    def read(self, table: Table) -> list[dict[str, Any]]:
        """Every row of ``table``."""
        return [dict(row) for row in self.session.connection.execute(select(table)).mappings()]

    def insert(
        self, table: Table, given: Mapping[str, Any], revision: str, making: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """Insert ``given`` completed into ``table`` (at the chain's ``revision``); the row as stored."""
        number, values = next(self._numbers), dict(given)
        for constraint in table.foreign_key_constraints:
            if not any(column.name in values for column in constraint.columns):
                values.update(self._parent_key(table, constraint, revision, making | {table.name}))
        for column in table.columns:
            if column.name in values or _left_to_database(column):
                continue
            value = generated_value(column, number)
            if value is None and not column.nullable:
                raise PluginMigrationError(
                    f"no value to generate for {table.name}.{column.name} ({column.type}) at {revision}; {_HOOK_HINT}"
                )
            values[column.name] = value
        try:
            with self.session.step():
                stored = self.session.connection.execute(table.insert().values(values).returning(*table.columns))
                return dict(stored.mappings().one())
        except SQLAlchemyError as error:
            raise PluginMigrationError(
                f"cannot insert a row into {table.name} at {revision}: {error_summary(error)}; {_HOOK_HINT}"
            ) from None

    def _parent_key(
        self, table: Table, constraint: ForeignKeyConstraint, revision: str, making: frozenset[str]
    ) -> dict[str, Any]:
        """Values for one foreign key of ``table``: the key of a row in the table it points into."""
        pairs = [(element.parent.name, element.column) for element in constraint.elements]
        parent = constraint.referred_table
        if parent.name in making:  # a row pointing into its own table, or a cycle
            if all(table.c[name].nullable for name, _ in pairs):
                return {name: None for name, _ in pairs}
            raise PluginMigrationError(
                f"cannot make a row for {table.name}: its foreign key into {parent.name} cannot be empty; {_HOOK_HINT}"
            )
        existing = self.session.connection.execute(select(*(column for _, column in pairs)).limit(1)).first()
        if existing is not None:
            return {name: value for (name, _), value in zip(pairs, existing, strict=True)}
        made = self.insert(parent, {}, revision, making)
        return {name: made[column.name] for name, column in pairs}
