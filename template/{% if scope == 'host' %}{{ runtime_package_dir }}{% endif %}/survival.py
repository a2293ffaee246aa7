"""Data survival: rows put in before each revision of a chain must come through every later step that keeps them.

``walk`` replays a chain from its start to its head and back, one revision at
a time (in a ``replay.Replay``). Before each step it inserts rows into every
table the chain has made so far (``rows.RowMaker``); after it, it reads every
row inserted so far and names what the step lost: a row, a changed value, the
values of a column dropped while another column was added to its table (a
rename that autogenerate writes as ``drop_column`` + ``add_column``), or the
rows of a table dropped while another table was created. A column or table
that a step drops without adding another is data the step means to drop: it
is no longer followed.

A plugin may shape the rows, and declare losses it means, in
``PLUGINS_DIR/NAME/migrations/fixture_rows.py`` (the README shows one):
``fixture_rows(revision, table)`` returns the rows for ``table`` while the
chain is at ``revision`` (dicts of column values; columns left out are
generated), or None for a generated row; ``NOT_KEPT`` maps a revision to the
``"table"`` and ``"table.column"`` names whose data it changes or drops on
purpose, both ways.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import MetaData, Table

from .errors import PluginMigrationError
from .registry import PluginEntry
from .replay import Replay
from .rows import RowMaker

#: The optional hook beside a plugin's versions/ folder.
FIXTURE_ROWS = "fixture_rows.py"

Row = dict[str, Any]
RowsFor = Callable[[str, str], "list[Row] | None"]


@dataclass(frozen=True)
class FixtureHook:
    """What a plugin's fixture_rows.py says: its rows, and what each revision does not keep on purpose."""

    rows: RowsFor = field(default=lambda revision, table: None)
    not_kept: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, entry: PluginEntry) -> FixtureHook:
        path = entry.migrations_dir / FIXTURE_ROWS
        if not path.is_file():
            return cls()
        spec = importlib.util.spec_from_file_location(f"_fixture_rows_{entry.name}", path)
        if spec is None or spec.loader is None:
            raise PluginMigrationError(f'plugin "{entry.name}": cannot load {path}')
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        rows = getattr(module, "fixture_rows", None)
        not_kept = getattr(module, "NOT_KEPT", {})
        if (rows is not None and not callable(rows)) or not isinstance(not_kept, Mapping):
            raise PluginMigrationError(
                f"{path}: fixture_rows must be a function (revision, table) -> rows or None, "
                f'and NOT_KEPT a dict of revision -> ["table", "table.column", ...]'
            )
        return cls(rows or cls().rows, {revision: frozenset(names) for revision, names in not_kept.items()})

    def keeps(self, revision: str, table: str, column: str | None = None) -> bool:
        declared = self.not_kept.get(revision, frozenset())
        return table not in declared and (column is None or f"{table}.{column}" not in declared)


def walk(replay: Replay, name: str) -> list[str]:
    """Replay ``name``'s chain up to its head and back, a revision at a time, with rows; what was lost.

    ``replay`` must be prepared for the chain (``Replay.prepare``) and the
    chain not installed yet.
    """
    survival = Survival(replay, FixtureHook.load(replay.registry.entry(name)))
    revisions = replay.revisions(name)
    steps = [(revision, below, True) for revision, below in zip(revisions, ["base", *revisions[:-1]], strict=True)]
    steps += [(revision, below, False) for revision, below, _ in reversed(steps)]
    problems: list[str] = []
    for revision, below, up in steps:
        survival.insert(below if up else revision)
        try:
            if up:
                replay.upgrade(name, revision)
            else:
                replay.downgrade(name, below)
        except PluginMigrationError as error:
            return [*problems, f"{error} (its tables held rows: a revision must work on tables that are not empty)"]
        problems += survival.verify(revision, f"{'upgrade to' if up else 'downgrade of'} {revision}")
    return problems


class Survival:
    """The rows inserted so far into a chain's tables, as they should read now."""

    def __init__(self, replay: Replay, hook: FixtureHook) -> None:
        self.replay = replay
        self.hook = hook
        self.maker = RowMaker(replay.session)
        self.tracked: dict[str, list[Row]] = {}  # table -> rows, keyed by the columns still followed
        self.columns_before: dict[str, set[str]] = {}  # each chain table's columns before the step

    def _reflect(self) -> dict[str, Table]:
        metadata = MetaData()
        names = sorted(self.replay.chain_tables())
        metadata.reflect(self.replay.connection, only=names)
        return {name: metadata.tables[name] for name in names}

    def insert(self, revision: str) -> None:
        """Rows into every table the chain has made, at ``revision``: the hook's, or one generated row each."""
        tables = self._reflect()
        self.columns_before = {name: set(table.columns.keys()) for name, table in tables.items()}
        for table in self.maker.in_dependency_order(tables.values()):
            given = self.hook.rows(revision, table.name)
            for row in [{}] if given is None else given:
                self.tracked.setdefault(table.name, []).append(self.maker.insert(table, row, revision))

    def verify(self, revision: str, step: str) -> list[str]:
        """What ``step`` lost of the rows followed; the rows are then followed as they read now."""
        tables = self._reflect()
        created = sorted(set(tables) - set(self.columns_before))
        problems = []
        for name in sorted(self.tracked):
            rows = self.tracked.pop(name)
            if name in tables:
                problems += self._compare(revision, step, tables[name], rows)
                continue
            if not created or not self.hook.keeps(revision, name):
                continue  # dropped, nothing made in its place: the step means to drop it
            moved = next((other for other in created if _holds(self.maker.read(tables[other]), rows)), None)
            if moved is not None:
                self.tracked[moved] = rows
                continue
            problems.append(
                f"{step}: table {name} was dropped and {', '.join(created)} created, and {name}'s rows are not "
                f"there: a rename written as drop_table + create_table loses them; rename it with op.rename_table, "
                f'or, if the loss is meant, list "{name}" in NOT_KEPT["{revision}"] of {FIXTURE_ROWS}'
            )
        return problems

    def _compare(self, revision: str, step: str, table: Table, rows: list[Row]) -> list[str]:
        name, now = table.name, set(table.columns.keys())
        followed: set[str] = set().union(*rows)
        added = sorted(now - self.columns_before.get(name, now))
        key = [column.name for column in table.primary_key.columns]
        if not key or not set(key) <= followed:
            key = sorted(followed & now)  # no primary key to follow rows by: all the columns they keep
        index = {_key(row, key): row for row in self.maker.read(table)}
        problems, kept = [], []
        for row in rows:
            found = index.get(_key(row, key)) if key else None
            if found is None:
                if key and self.hook.keeps(revision, name):
                    problems.append(f"{step}: a row of {name} is gone: {_shown(row, key)}")
                continue
            problems += [
                f"{step}: {name}.{column} of the row {_shown(row, key)} went from {row[column]!r} to {found[column]!r}"
                for column in sorted(set(row) & now)
                if not _same(row[column], found[column]) and self.hook.keeps(revision, name, column)
            ]
            kept.append((row, found))
        for column in sorted(followed - now):
            moved = any(all(_same(row.get(column), found[new]) for row, found in kept) for new in added)
            if added and not moved and self.hook.keeps(revision, name, column):
                problems.append(
                    f"{step}: {name}.{column} was dropped and {', '.join(f'{name}.{new}' for new in added)} added, "
                    f"and the values of {column} are not there: a rename written as drop_column + add_column (as "
                    f"autogenerate writes it) loses them; rename it with alter_column(..., new_column_name=...), "
                    f'or, if the loss is meant, list "{name}.{column}" in NOT_KEPT["{revision}"] of {FIXTURE_ROWS}'
                )
        self.tracked[name] = [found for _, found in kept]  # followed from now on as they read now
        return problems


def _normal(value: Any) -> Any:
    """A value as two reads of one database can compare it (5, 5.0 and Decimal("5.00") are one number)."""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return float(value)
    return value if value is None or isinstance(value, (bool, str)) else str(value)


def _same(before: Any, after: Any) -> bool:
    return bool(_normal(before) == _normal(after))


def _key(row: Mapping[str, Any], columns: Collection[str]) -> tuple[Any, ...]:
    return tuple(_normal(row.get(column)) for column in columns)


def _shown(row: Mapping[str, Any], key: Collection[str]) -> str:
    return ", ".join(f"{column}={row.get(column)!r}" for column in key)


def _holds(current: list[Row], rows: list[Row]) -> bool:
    """Whether ``current`` has every one of ``rows`` (on the columns both have)."""
    if not rows:
        return True
    common = set(rows[0]) & (set(current[0]) if current else set())
    found = {_key(row, sorted(common)) for row in current}
    return bool(common) and all(_key(row, sorted(common)) in found for row in rows)

