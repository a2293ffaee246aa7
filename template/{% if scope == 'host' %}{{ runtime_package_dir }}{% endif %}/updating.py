"""``update-scaffolding``: ``copier update`` the host and then every plugin, one commit each.

``copier update --trust`` runs the template's tasks, migrations and Jinja
extensions as the user, so only the template source that the host's answers
file names is updated; an answers file that names another is refused before
anything runs.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .answers import AnswersFile, read_answers_files, trusted_source, untrusted
from .conflicts import holds_conflict_markers
from .errors import PluginMigrationError
from .fetching import git
from .paths import OutsidePath, confine
from .registry import PROJECT_ROOT


def _unmerged_or_rejected(root: Path) -> list[str]:
    unmerged = git("diff", "--name-only", "--diff-filter=U", cwd=root).stdout.decode().split()
    status = git("status", "--porcelain", "--untracked-files=all", cwd=root).stdout.decode().splitlines()
    rejected = [line[3:] for line in status if line.endswith(".rej")]
    marked = []
    base = root.resolve()
    for line in status:
        try:
            candidate = confine(base, line[3:])
        except OutsidePath:
            continue  # a symbolic link out of the repository: not read
        if candidate.is_file() and candidate.suffix != ".rej":
            if holds_conflict_markers(candidate.read_text(encoding="utf-8", errors="replace")):
                marked.append(line[3:])
    return sorted(set(unmerged) | set(rejected) | set(marked))


def _read_again(root: Path, answers_file: AnswersFile) -> AnswersFile:
    for current in read_answers_files(root):
        if current.name == answers_file.name:
            return current
    raise PluginMigrationError(f"{answers_file.name} disappeared during the update; restore it from git")


def _require_trusted(answers_file: AnswersFile, trusted: str | None) -> None:
    distrust = untrusted(answers_file, trusted)
    if distrust:
        raise PluginMigrationError(
            f"{answers_file.name} {distrust}: refusing to update it, as `copier update --trust` would run that "
            f"template's tasks as you; set its _src_path back to the host's and commit, then run update-scaffolding again"
        )


def update_scaffolding(root: Path = PROJECT_ROOT, vcs_ref: str | None = None, echo: Callable[[str], None] = print) -> int:
    """``copier update`` the host and then every plugin, committing each update on its own.

    Refuses before updating anything when an answers file names a template
    source other than the host's. Stops at the first conflict, naming the
    files to resolve; run it again after committing the resolution to update
    the rest. Returns how many scaffolds changed.
    """
    if git("status", "--porcelain", cwd=root).stdout.strip():
        raise PluginMigrationError("the working tree has uncommitted changes; commit or stash them first (copier update needs a clean tree)")
    answers_files = read_answers_files(root)
    trusted = trusted_source(answers_files)
    for answers_file in answers_files:
        _require_trusted(answers_file, trusted)
    changed = 0
    for answers_file in answers_files:
        _require_trusted(_read_again(root, answers_file), trusted)  # an earlier update may have changed it
        command = [sys.executable, "-m", "copier", "update", "--trust", "--defaults", "-a", answers_file.name]
        if vcs_ref:
            command += ["--vcs-ref", vcs_ref]
        echo(f"updating {answers_file.label} ({answers_file.name})")
        result = subprocess.run(command, cwd=root, capture_output=True, text=True)
        if result.returncode:
            last = (result.stderr.strip().splitlines() or ["copier failed"])[-1]
            raise PluginMigrationError(
                f"`{' '.join(command[1:])}` failed: {last}; fix it, commit, and run update-scaffolding again"
            )
        conflicts = _unmerged_or_rejected(root)
        if conflicts:
            raise PluginMigrationError(
                f"updating {answers_file.label} left conflicts in {', '.join(conflicts)}: resolve the <<<<<<< markers "
                f"(and apply then delete any .rej files), commit, then run `python -m {__package__} update-scaffolding` "
                f"again to update the rest"
            )
        if git("status", "--porcelain", cwd=root).stdout.strip():
            recorded = _read_again(root, answers_file).source[1]
            git("add", "--all", cwd=root)
            commit = git("commit", "--quiet", "-m", f"Update {answers_file.label} scaffolding to template {recorded}", cwd=root)
            if commit.returncode:
                raise PluginMigrationError(f"git commit failed: {commit.stderr.decode().strip()}")
            changed += 1
    return changed
