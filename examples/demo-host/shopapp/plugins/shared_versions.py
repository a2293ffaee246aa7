"""The version row of an imported history: from the shared ``alembic_version`` table to the plugin's own.

In a shared table, Alembic keeps one row per branch head, and a row also
stands for everything it descends from: a plugin branch whose first revision
came after core revision C (``down_revision`` or ``depends_on``) may be the
only row that says the core is at C. Taking that row away would tell the
core's Alembic that C never ran, so ``plan_move`` writes C back into the
shared table whenever no other row there still descends from it.

``plan_move`` reads the database and decides; ``move_statements`` is the SQL
of that decision, run in one transaction or printed by ``--sql``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, inspect, select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.expression import Executable

from .errors import PluginMigrationError
from .registry import PluginEntry

#: A revision id -> the revisions it comes after (down revisions and dependencies); None when unknown.
Parents = Callable[[str], Sequence[str] | None]


@dataclass(frozen=True)
class ImportedChain:
    """A plugin's history as it leaves the shared table: its revisions, its head, and the core revisions it came after."""

    revisions: frozenset[str]
    head: str
    came_after: tuple[str, ...]


@dataclass(frozen=True)
class RowMove:
    """What moving one plugin's row does: which row goes, which core rows come back, whether to create the table."""

    shared_table: str
    version_table: str
    moved: str | None  # None: the shared table holds no row of this branch (a fresh database)
    restored: tuple[str, ...] = ()
    create_version_table: bool = True
    already: str | None = None  # the plugin's own table already records this revision of the chain


def _version_table(name: str) -> Table:
    # Alembic's own shape for a version table, so that its MigrationContext reads and updates it as its own.
    return Table(
        name, MetaData(), Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name=f"{name}_pkc"),
    )


def _rows(connection: Connection, table: str, tables: Iterable[str]) -> list[str]:
    if table not in tables:
        return []
    version_num = _version_table(table).c.version_num
    return [str(row) for row in connection.scalars(select(version_num))]


def plan_move(
    connection: Connection, entry: PluginEntry, chain: ImportedChain, shared_table: str, parents: Parents
) -> RowMove:
    """Decide the move from what ``connection`` sees; a database it cannot be done on raises, naming the row.

    ``parents`` walks the old history (the core's), to find which core rows
    the moved row stood for.
    """
    tables = set(inspect(connection).get_table_names())
    shared = _rows(connection, shared_table, tables)
    own = _rows(connection, entry.version_table, tables)
    branch_rows = [row for row in shared if row in chain.revisions]
    if len(branch_rows) > 1:
        raise PluginMigrationError(
            f"{shared_table} holds {len(branch_rows)} revisions of the branch ({', '.join(sorted(branch_rows))}), "
            f"nothing was changed; a branch has one head: fix the rows with the old environment's `alembic stamp`"
        )
    moved = branch_rows[0] if branch_rows else None
    if own and (moved is not None or own[0] not in chain.revisions or len(own) > 1):
        raise PluginMigrationError(
            f"{entry.version_table} already records {', '.join(own)}, nothing was changed; "
            + (f"{own[0]} is not in the imported chain: " if own[0] not in chain.revisions else "")
            + f"if that row came from `upgrade-all` or `stamp` before the import, clear it with "
            f"`stamp {entry.name} base` and import again"
        )
    if moved is None:
        return RowMove(shared_table, entry.version_table, None, already=own[0] if own else None)
    others = [row for row in shared if row != moved]
    return RowMove(
        shared_table, entry.version_table, moved, _restored(chain, others, parents, shared_table),
        create_version_table=entry.version_table not in tables,
    )


def _restored(chain: ImportedChain, others: Sequence[str], parents: Parents, shared_table: str) -> tuple[str, ...]:
    """The core revisions the moved row stood for that no remaining row descends from, newest only."""
    if not chain.came_after:
        return ()
    covered = _ancestors(others, parents, shared_table)
    missing = [revision for revision in chain.came_after if revision not in covered]
    for revision in missing:
        if parents(revision) is None:
            raise PluginMigrationError(
                f"the branch came after revision {revision}, which the old history does not have, nothing was "
                f"changed; point --from at the alembic.ini of the environment that holds it"
            )
    implied = _ancestors(missing, parents, shared_table) - set(missing)
    return tuple(sorted(revision for revision in set(missing) if revision not in implied))


def _ancestors(revisions: Iterable[str], parents: Parents, shared_table: str) -> set[str]:
    """``revisions`` and every revision they come after (through down revisions and dependencies)."""
    seen: set[str] = set()
    stack = list(revisions)
    while stack:
        revision = stack.pop()
        if revision in seen:
            continue
        seen.add(revision)
        before = parents(revision)
        if before is None:
            raise PluginMigrationError(
                f"{shared_table} holds {revision}, which the old history does not have, nothing was changed; "
                f"point --from at the alembic.ini of the environment that holds it"
            )
        stack.extend(before)
    return seen


def move_statements(move: RowMove) -> list[Executable]:
    """The move as SQL: delete the branch's row, write back the core rows it stood for, record it in the plugin's table."""
    if move.moved is None:
        return []
    shared, own = _version_table(move.shared_table), _version_table(move.version_table)
    statements: list[Executable] = [shared.delete().where(shared.c.version_num == move.moved)]
    statements.extend(shared.insert().values(version_num=revision) for revision in move.restored)
    if move.create_version_table:
        statements.append(CreateTable(own))
    statements.append(own.insert().values(version_num=move.moved))
    return statements


def render_sql(statements: Sequence[Executable], dialect: Dialect) -> str:
    """The statements as one transaction of literal SQL, as ``--sql`` prints it."""
    lines = ["BEGIN;"]
    for statement in statements:
        compiled = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})  # type: ignore[attr-defined]
        lines.append(f"{str(compiled).strip()};")
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"
