"""A branch of an old shared Alembic history: reading that history, finding the branch, rewriting its files.

In Alembic's "multiple bases" layout a plugin's branch starts at the
revision that declares its label (``branch_labels = ("NAME",)``) and holds
every revision after it. A branch that other revisions merge with or depend
on cannot leave; references out of the branch (a ``down_revision`` or
``depends_on`` naming a core revision) are taken out of the copied file and
recorded in it as ``shared_history_parents``, which ``shared_versions``
needs to keep the core's row right.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

from alembic.config import Config
from alembic.script import Script, ScriptDirectory

from .errors import PluginMigrationError, describe_user_error

#: Module variable written into an imported revision that came after core revisions in the shared history.
CAME_AFTER = "shared_history_parents"


def load_history(source: Path) -> tuple[ScriptDirectory, dict[str, Script]]:
    """The old environment (its alembic.ini, or one versions folder) and every revision in it, by id."""
    try:
        if source.is_file():
            history = ScriptDirectory.from_config(Config(str(source)))
        elif source.is_dir():
            history = ScriptDirectory(str(source), version_locations=[str(source)])
        else:
            raise PluginMigrationError(f"--from {source}: no such file or folder; name the old alembic.ini or versions folder")
        return history, {script.revision: script for script in history.walk_revisions()}
    except PluginMigrationError:
        raise
    except Exception as error:  # noqa: BLE001  (the old revisions are the user's code, imported here)
        raise PluginMigrationError(f"--from {source}: cannot read its revisions: {describe_user_error(error, source.parent)}") from None


def as_tuple(value: object) -> tuple[str, ...]:
    """A revision file's ``down_revision``, ``depends_on`` or ``branch_labels`` as a tuple, as Alembic reads them."""
    if value is None:
        return ()
    return tuple(str(item) for item in value) if isinstance(value, (list, tuple, set, frozenset)) else (str(value),)


def parents_in(history: ScriptDirectory, scripts: dict[str, Script]) -> dict[str, tuple[str, ...]]:
    """Each revision -> the revisions it comes after: down revisions and (resolved) dependencies."""
    def resolve(dependency: str) -> str:
        try:
            script = history.get_revision(dependency)
        except Exception:  # noqa: BLE001  (a label with several heads: keep the name as written)
            return dependency
        return script.revision if script is not None else dependency

    return {
        revision: as_tuple(script.down_revision) + tuple(resolve(dep) for dep in as_tuple(script.dependencies))
        for revision, script in scripts.items()
    }


def find_branch(label: str, scripts: dict[str, Script], parents: dict[str, tuple[str, ...]], source: Path) -> list[Script]:
    """The revision that declares ``label`` and every revision after it, oldest first; refused if tied to the rest."""
    roots = [script for script in scripts.values() if label in as_tuple(getattr(script.module, "branch_labels", None))]
    if not roots:
        labels = sorted({lab for script in scripts.values() for lab in as_tuple(getattr(script.module, "branch_labels", None))})
        raise PluginMigrationError(
            f'--from {source}: no revision carries the branch label "{label}" (labels there: '
            f"{', '.join(labels) or 'none'}); name the plugin's label with --branch"
        )
    children: dict[str, list[str]] = {}
    for revision, script in scripts.items():
        for down in as_tuple(script.down_revision):
            children.setdefault(down, []).append(revision)
    order, stack = [], [roots[0].revision]
    while stack:
        revision = stack.pop()
        if revision not in order:
            order.append(revision)
            stack.extend(children.get(revision, []))
    branch = set(order)
    for revision in order[1:]:
        if outside := [down for down in as_tuple(scripts[revision].down_revision) if down not in branch]:
            raise PluginMigrationError(
                f"{scripts[revision].path}: merges branch \"{label}\" with {', '.join(outside)} outside it, nothing "
                f"was changed; a plugin's chain cannot hold a merge with the core"
            )
    for revision, before in parents.items():
        if revision not in branch and (inside := [rev for rev in before if rev in branch]):
            raise PluginMigrationError(
                f"{scripts[revision].path}: revision {revision} depends on {', '.join(inside)} of branch "
                f'"{label}", nothing was changed; the branch cannot leave while other revisions need it'
            )
    heads = [revision for revision in order if not children.get(revision)]
    if len(heads) > 1:
        raise PluginMigrationError(
            f'--from {source}: branch "{label}" has {len(heads)} heads ({", ".join(sorted(heads))}), nothing was '
            f"changed; merge them with the old environment's `alembic merge` first"
        )
    return [scripts[revision] for revision in _oldest_first(order, parents)]


def _oldest_first(order: Sequence[str], parents: dict[str, tuple[str, ...]]) -> list[str]:
    done: list[str] = []
    pending = list(order)
    while pending:
        ready = [rev for rev in pending if all(p in done or p not in order for p in parents[rev])]
        done.extend(ready)
        pending = [rev for rev in pending if rev not in ready]
    return done


def rewrite(script: Script, branch: set[str], parents: dict[str, tuple[str, ...]]) -> tuple[str, list[str], tuple[str, ...]]:
    """The file's text with every reference out of the branch taken away, a note per reference, and those references."""
    path = Path(script.path)
    text = path.read_text(encoding="utf-8")
    downs, written = as_tuple(script.down_revision), as_tuple(script.dependencies)
    resolved = parents[script.revision][len(downs):]
    changes: dict[str, object] = {}
    notes = []
    if downs and not set(downs) <= branch:
        changes["down_revision"] = None
        notes.append(f"{path.name}: down_revision {', '.join(downs)} is not in the branch; the chain starts here")
    kept = tuple(dep for dep, target in zip(written, resolved, strict=True) if target in branch)
    if len(kept) < len(written):
        changes["depends_on"] = None if not kept else kept[0] if len(kept) == 1 else kept
        dropped = [dep for dep, target in zip(written, resolved, strict=True) if target not in branch]
        notes.append(f"{path.name}: dropped depends_on {', '.join(dropped)} (not in the branch)")
    if not changes:
        return text, [], ()
    left = tuple(revision for revision in parents[script.revision] if revision not in branch)
    return _replace_assignments(path, text, changes, left), notes, left


def _replace_assignments(path: Path, text: str, changes: dict[str, object], left: tuple[str, ...]) -> str:
    lines = text.splitlines(keepends=True)
    found: dict[str, ast.Assign | ast.AnnAssign] = {}
    for node in ast.parse(text, str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target = node.target
        else:
            continue
        if isinstance(target, ast.Name) and target.id in changes:
            found[target.id] = node
    if missing := [key for key in changes if key not in found]:
        raise PluginMigrationError(
            f"{path}: no plain `{missing[0]} = ...` line to rewrite, nothing was changed; write it as one assignment"
        )
    for key, node in sorted(found.items(), key=lambda item: -item[1].lineno):
        value = node.value
        assert value is not None and value.end_lineno is not None and value.end_col_offset is not None
        first, last = lines[value.lineno - 1].encode(), lines[value.end_lineno - 1].encode()
        replaced = first[: value.col_offset] + repr(changes[key]).encode() + last[value.end_col_offset :]
        lines[value.lineno - 1 : value.end_lineno] = [replaced.decode()]
    top = min(node.lineno for node in found.values()) - 1
    lines[top:top] = [
        "# Imported by `import-history`: in the shared history this revision also came after the revisions\n",
        "# below, which are not in this plugin's chain (plugin chains run once the core's tables exist).\n",
        f"{CAME_AFTER} = {left!r}\n",
    ]
    return "".join(lines)
