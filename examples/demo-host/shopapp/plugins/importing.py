"""``import-history``: one plugin's branch of a shared Alembic history becomes the plugin's own chain.

Apps whose plugins keep their histories as branches of one Alembic
environment (Alembic's "multiple bases": a plugin's first revision carries
``branch_labels = ("NAME",)``, one ``alembic_version`` table holds a row per
branch head) come in here, one plugin at a time.

Plan, then act: ``plan_import`` reads the old environment and the plugin's
folder and decides everything (which files, what changes in them, which
references leave the chain); ``import_history`` then decides the database's
part inside its transaction (``shared_versions``), writes the files, and
moves the row, or with ``sql`` prints that SQL and changes nothing. The
revision files are copied, never deleted from the old place unless asked.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace
from pathlib import Path

from .branches import CAME_AFTER, as_tuple, find_branch, load_history, parents_in, rewrite
from .chains import Chains
from .database import Database
from .errors import PluginMigrationError
from .registry import PluginEntry, Registry
from .shared_versions import ImportedChain, RowMove, move_statements, plan_move, render_sql

@dataclass(frozen=True)
class ImportedFile:
    source: Path
    target: Path
    text: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportPlan:
    """The files part of an import: what to write (nothing when already imported) and the chain it makes."""

    chain: ImportedChain
    files: tuple[ImportedFile, ...] = ()
    baseline: Path | None = None  # the untouched scaffold baseline the import replaces
    sources: tuple[Path, ...] = ()  # the branch's files in the old place


@dataclass(frozen=True)
class ImportReport:
    plan: ImportPlan
    move: RowMove
    sql: str | None = None
    deleted: tuple[Path, ...] = field(default=())


def scaffold_baseline(entry: PluginEntry) -> Path | None:
    """The plugin's scaffold baseline if it is exactly as generated (by structure), else None."""
    path = entry.migrations_dir / "versions" / "0001_baseline.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    body = [node for node in tree.body if not isinstance(node, (ast.Expr, ast.Import, ast.ImportFrom))]
    expected = ast.parse(
        f"revision = '0001_baseline_{entry.name}'\ndown_revision = None\nbranch_labels = None\ndepends_on = None\n"
        f"def upgrade():\n    create_plugin_tables({entry.name!r})\n"
        f"def downgrade():\n    drop_plugin_tables({entry.name!r})\n"
    ).body
    return path if ast.dump(ast.Module(body, [])) == ast.dump(ast.Module(expected, [])) else None


def plan_import(chains: Chains, name: str, source: Path, label: str) -> tuple[ImportPlan, dict[str, tuple[str, ...]]]:
    """What importing branch ``label`` of ``source`` into plugin ``name`` writes; and the old history's parents."""
    entry = chains.registry.entry(name)
    history, scripts = load_history(source)
    parents = parents_in(history, scripts)
    versions = entry.migrations_dir / "versions"
    present = sorted(path.name for path in versions.glob("*.py") if not path.name.startswith("__")) if versions.is_dir() else []
    baseline = scaffold_baseline(entry)
    labelled = any(label in as_tuple(getattr(script.module, "branch_labels", None)) for script in scripts.values())
    if not labelled and present and baseline is None and not chains.starts_at_scaffold_baseline(name):
        return _already_imported(chains, name), parents  # its files left the old place after an earlier import
    branch_scripts = find_branch(label, scripts, parents, source)
    branch = {script.revision for script in branch_scripts}
    files: list[ImportedFile] = []
    came_after: list[str] = []
    for script in branch_scripts:
        text, notes, left = rewrite(script, branch, parents)
        files.append(ImportedFile(Path(script.path), versions / Path(script.path).name, text, tuple(notes)))
        came_after.extend(rev for rev in left if rev not in came_after)
    if len({file.target.name for file in files}) < len(files):
        raise PluginMigrationError(f'--from {source}: two revisions of branch "{label}" share a file name; rename one')
    chain = ImportedChain(frozenset(branch), branch_scripts[-1].revision, tuple(came_after))
    sources = tuple(file.source for file in files)
    if all(file.target.is_file() and file.target.read_text(encoding="utf-8") == file.text for file in files):
        # Imported before; its chain may have grown since, and every revision of it is the plugin's.
        return replace(_already_imported(chains, name), sources=sources), parents
    if present and present != ["0001_baseline.py"]:
        raise PluginMigrationError(
            f"{versions} already holds {', '.join(present)}, nothing was changed; the import makes the chain of a "
            f"plugin whose chain is only its scaffold baseline"
        )
    if present and baseline is None:
        raise PluginMigrationError(
            f"{versions / '0001_baseline.py'} was edited, nothing was changed; the imported chain brings its own "
            f"first revision, so the import replaces only an untouched scaffold baseline: restore it from git or "
            f"delete it"
        )
    return ImportPlan(chain, tuple(files), baseline, sources), parents


def _already_imported(chains: Chains, name: str) -> ImportPlan:
    script = chains.script(name)
    head = chains.head(name)
    if head is None:
        raise PluginMigrationError(f'plugin "{name}" has no revisions')
    came_after = sorted({rev for rev_script in script.walk_revisions()
                         for rev in as_tuple(getattr(rev_script.module, CAME_AFTER, None))})
    return ImportPlan(ImportedChain(frozenset(s.revision for s in script.walk_revisions()), head, tuple(came_after)))


def import_history(
    registry: Registry, database: Database, name: str, source: Path, label: str | None = None,
    shared_table: str = "alembic_version", sql: bool = False, move_files: bool = False,
) -> ImportReport:
    """Copy branch ``label`` (default: ``name``) of the old history into plugin ``name`` and move its version row.

    Everything is decided before anything is written; the row moves in one
    transaction (with the migrator lock held). With ``sql`` nothing is
    written: the report holds the SQL the move would run.
    """
    if not shared_table.isidentifier() or shared_table == registry.entry(name).version_table:
        raise PluginMigrationError(f'--version-table "{shared_table}": name the shared version table (an identifier)')
    chains = Chains(registry, database)
    plan, parents = plan_import(chains, name, source, label or name)
    entry = registry.entry(name)
    if sql:
        with database.read_only() as connection:
            move = plan_move(connection, entry, plan.chain, shared_table, parents.get)
            return ImportReport(plan, move, render_sql(move_statements(move), connection.dialect))
    with database.migration_session() as session, session.step():
        move = plan_move(session.connection, entry, plan.chain, shared_table, parents.get)
        for file in plan.files:
            file.target.parent.mkdir(parents=True, exist_ok=True)
            file.target.write_text(file.text, encoding="utf-8")
        if plan.baseline is not None:
            plan.baseline.unlink()
        for statement in move_statements(move):
            session.connection.execute(statement)
    chains.forget(name)
    deleted = tuple(path for path in plan.sources if move_files and path.exists())
    for path in deleted:
        path.unlink()
    return ImportReport(plan, move, deleted=deleted)


def describe(report: ImportReport, name: str, root: Path) -> list[str]:
    """What the import did (with --sql: would do), one line each."""
    def shown(path: Path) -> str:
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

    would = report.sql is not None
    plan, move = report.plan, report.move
    lines = []
    if plan.files:
        folder = shown(plan.files[0].target.parent)
        names = ", ".join(file.target.name for file in plan.files)
        lines.append(f"{name}: {'would copy' if would else 'copied'} {len(plan.files)} revision(s) into {folder}: {names}")
    else:
        lines.append(f"{name}: its revision files are already imported")
    lines.extend(f"note: {note}" for file in plan.files for note in file.notes)
    if plan.baseline is not None:
        lines.append(f"{name}: {'would remove' if would else 'removed'} the scaffold baseline {plan.baseline.name}: "
                     f"the chain starts at the branch's first revision")
    if move.moved is not None:
        kept = f"; {move.shared_table} gets {', '.join(move.restored)} back, which that row stood for" if move.restored else ""
        lines.append(f"{name}: {'would move' if would else 'moved'} {move.moved} from {move.shared_table} to "
                     f"{move.version_table}{kept}")
    elif move.already is not None:
        lines.append(f"{name}: {move.version_table} already records {move.already}; nothing to move")
    else:
        lines.append(f"{name}: {move.shared_table} holds no revision of the branch (a fresh database?); nothing to move")
    if report.deleted:
        lines.append(f"{name}: deleted {len(report.deleted)} file(s) from the old place: "
                     f"{', '.join(shown(path) for path in report.deleted)}")
    elif plan.sources and not would:
        lines.append(f"next: delete {', '.join(shown(path) for path in plan.sources)} from the old environment (or run "
                     f"again with --move-files), or its `alembic upgrade heads` installs the branch again")
    return [f"-- {line}" for line in lines] if would else lines
