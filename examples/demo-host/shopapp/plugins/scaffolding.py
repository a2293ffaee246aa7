"""Regeneration checks and updates: is the scaffolding what the template generates?

``check-scaffolding`` renders every ``.copier-answers*.yml`` at its recorded
template version, in memory, and compares the result with the working tree,
which it never writes. ``sync-registry`` rewrites registry.json from the
answers files. ``update-scaffolding`` runs ``copier update`` for the host and
then every plugin, one commit each.

Only these commands need Copier's stack (Copier itself, PyYAML, pathspec,
jinja2-ansible-filters); the other plugin commands never import this module.
How the template is fetched and rendered is ``rendering``'s business.
"""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .conflicts import CONFLICT_PROBLEM, conflict_fix, holds_conflict_markers
from .errors import PluginMigrationError
from .registry import PROJECT_ROOT, REGISTRY_PATH
from .rendering import TemplateVersions, git, load_yaml
from .settings import PLUGINS_DIR

ANSWERS_GLOB = ".copier-answers*.yml"
HOST_ANSWERS = ".copier-answers.host.yml"
_DESCRIBE = re.compile(r"^(?P<tag>.+?)(-\d+-g[0-9a-f]+)?$")


@dataclass
class AnswersFile:
    """One .copier-answers*.yml: the answers that a scaffold was rendered from."""

    path: Path
    answers: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def plugin(self) -> str | None:
        return self.answers.get("plugin_name") if self.answers.get("scope") == "plugin" else None

    @property
    def label(self) -> str:
        return f'plugin "{self.plugin}"' if self.plugin else "the host"

    @property
    def source(self) -> tuple[str, str]:
        return str(self.answers.get("_src_path", "")), str(self.answers.get("_commit", ""))


@dataclass
class Finding:
    """One way the working tree differs from what the template generates, and its fix."""

    path: str
    problem: str
    fix: str
    diff: str = ""
    only_behind: bool = False

    def render(self) -> str:
        lines = [f"{self.path}: {self.problem}"]
        if self.diff:
            lines.append(self.diff.rstrip("\n"))
        lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if not self.findings:
            return 0
        return 2 if all(finding.only_behind for finding in self.findings) else 1


def read_answers_files(root: Path = PROJECT_ROOT) -> list[AnswersFile]:
    """Every answers file at the repository root, the host's first."""
    files = []
    for path in sorted(root.glob(ANSWERS_GLOB), key=lambda p: (p.name != HOST_ANSWERS, p.name)):
        data = load_yaml(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise PluginMigrationError(f"{path.name}: not a Copier answers file (expected a mapping)")
        files.append(AnswersFile(path, data))
    return files


def expected_registry(answers_files: list[AnswersFile], root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """registry.json as the answers files of the plugins present define it."""
    return {
        "plugins": {
            a.plugin: {"tables": list(a.answers.get("tables", [])), "depends_on": list(a.answers.get("depends_on", []))}
            for a in answers_files
            if a.plugin and (root / PLUGINS_DIR / a.plugin).is_dir()
        }
    }


def render_registry(registry: dict[str, Any]) -> str:
    """The registry file's text; the same format the template's registry hook writes."""
    return json.dumps(registry, indent=2, sort_keys=True) + "\n"


def _unified(expected: str, actual: str, expected_label: str, actual_label: str) -> str:
    return "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True), actual.splitlines(keepends=True), expected_label, actual_label
        )
    )


def _recopy(answers_file: AnswersFile) -> str:
    return f"copier recopy --trust --defaults --overwrite --vcs-ref=:current: -a {answers_file.name}"


def _check_files(root: Path, answers_file: AnswersFile, files: dict[str, bytes], skipped: Callable[[str], bool]) -> Iterator[Finding]:
    version = answers_file.source[1]
    for target, expected in files.items():
        path = root / target
        if path.with_name(path.name + ".rej").exists():
            yield Finding(
                f"{target}.rej",
                f"rejected update hunks of {answers_file.label}",
                f"apply what {target}.rej holds to {target} by hand, then delete {target}.rej",
            )
        if skipped(target):
            continue  # written once, then the user's: models, revisions, registry
        if not path.is_file():
            yield Finding(target, f"deleted, but {answers_file.label}'s template generates it", _recopy(answers_file))
            continue
        actual = path.read_bytes()
        if actual == expected:
            continue
        text = actual.decode("utf-8", errors="replace")
        diff = _unified(expected.decode("utf-8", errors="replace"), text, f"template {version}: {target}", f"working tree: {target}")
        if holds_conflict_markers(text):
            yield Finding(target, CONFLICT_PROBLEM, conflict_fix(target), diff)
        else:
            yield Finding(
                target,
                f"edited, but it is generated by {answers_file.label}'s template at {version}",
                f"{_recopy(answers_file)} (discards the edit), or change the template",
                diff,
            )


def check_scaffolding(root: Path = PROJECT_ROOT, latest: bool = False) -> Report:
    """Compare the working tree with what every answers file's template version generates."""
    report = Report()
    answers_files = read_answers_files(root)
    with tempfile.TemporaryDirectory(prefix="check-scaffolding-") as workdir:
        versions = TemplateVersions(Path(workdir))
        newest: dict[str, str | None] = {}
        for answers_file in answers_files:
            src, commit = answers_file.source
            if not src or not commit:
                report.findings.append(Finding(
                    answers_file.name,
                    "records no template source and commit, so it cannot be checked",
                    f"scaffold from a git checkout or URL of the template and commit; then `{_recopy(answers_file)}`",
                ))
                continue
            if answers_file.plugin and not (root / PLUGINS_DIR / answers_file.plugin).is_dir():
                report.findings.append(Finding(
                    answers_file.name,
                    f"answers file without its plugin folder {PLUGINS_DIR}/{answers_file.plugin}",
                    f"`git rm {answers_file.name}` if the plugin is gone, or restore its folder with `{_recopy(answers_file)}`",
                ))
                continue
            try:
                files, skipped = versions.renderer(src, commit).render(answers_file.answers)
            except PluginMigrationError as error:
                report.findings.append(Finding(answers_file.name, str(error), "make the template source reachable from here"))
                continue
            report.findings.extend(_check_files(root, answers_file, files, skipped))
            if latest:
                if src not in newest:
                    newest[src] = versions.newest_tag(src)
                match = _DESCRIBE.match(commit)
                recorded = match.group("tag") if match else commit
                newest_tag = newest[src]
                if newest_tag and _older(recorded, newest_tag):
                    report.findings.append(Finding(
                        answers_file.name,
                        f"{answers_file.label} is at template {commit}, the newest is {newest[src]}",
                        f"copier update --trust --defaults -a {answers_file.name}",
                        only_behind=True,
                    ))
    report.findings.extend(_check_registry(root, answers_files))
    report.findings.extend(_check_orphan_plugins(root, answers_files))
    return report


def _older(recorded: str, newest: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(recorded) < Version(newest)
    except InvalidVersion:
        return False


def _check_registry(root: Path, answers_files: list[AnswersFile]) -> Iterator[Finding]:
    path = root / REGISTRY_PATH.relative_to(PROJECT_ROOT)
    relative = path.relative_to(root).as_posix()
    try:
        actual = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError) as error:
        yield Finding(relative, f"unreadable ({error})", f"python -m {__package__} sync-registry")
        return
    expected = expected_registry(answers_files, root)
    if actual != expected:
        yield Finding(
            relative,
            "differs from what the plugins' answers files say",
            f"python -m {__package__} sync-registry (or `copier update` the plugin with the answers you meant)",
            _unified(render_registry(expected), render_registry(actual), "answers files", f"working tree: {relative}"),
        )


def _check_orphan_plugins(root: Path, answers_files: list[AnswersFile]) -> Iterator[Finding]:
    recorded = {a.plugin for a in answers_files if a.plugin}
    plugins_root = root / PLUGINS_DIR
    for alembic_ini in sorted(plugins_root.glob("*/migrations/alembic.ini")):
        name = alembic_ini.parent.parent.name
        if name not in recorded:
            yield Finding(
                f"{PLUGINS_DIR}/{name}",
                f"plugin folder without an answers file (.copier-answers.plugin-{name}.yml)",
                f"record its answers with `copier copy --trust --defaults -d plugin_name={name} -d 'tables=[...]' TEMPLATE .` "
                f"(keep your files when asked), or remove the folder",
            )


def sync_registry(root: Path = PROJECT_ROOT) -> bool:
    """Rewrite registry.json from the answers files; True when it changed."""
    path = root / REGISTRY_PATH.relative_to(PROJECT_ROOT)
    text = render_registry(expected_registry(read_answers_files(root), root))
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def _unmerged_or_rejected(root: Path) -> list[str]:
    unmerged = git("diff", "--name-only", "--diff-filter=U", cwd=root).stdout.decode().split()
    status = git("status", "--porcelain", "--untracked-files=all", cwd=root).stdout.decode().splitlines()
    rejected = [line[3:] for line in status if line.endswith(".rej")]
    marked = []
    for line in status:
        candidate = root / line[3:]
        if candidate.is_file() and candidate.suffix != ".rej":
            if holds_conflict_markers(candidate.read_text(encoding="utf-8", errors="replace")):
                marked.append(line[3:])
    return sorted(set(unmerged) | set(rejected) | set(marked))


def update_scaffolding(root: Path = PROJECT_ROOT, vcs_ref: str | None = None, echo: Callable[[str], None] = print) -> int:
    """``copier update`` the host and then every plugin, committing each update on its own.

    Stops at the first conflict, naming the files to resolve; run it again
    after committing the resolution to update the rest. Returns how many
    scaffolds changed.
    """
    if git("status", "--porcelain", cwd=root).stdout.strip():
        raise PluginMigrationError("the working tree has uncommitted changes; commit or stash them first (copier update needs a clean tree)")
    changed = 0
    for answers_file in read_answers_files(root):
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
            updated = next(a for a in read_answers_files(root) if a.name == answers_file.name)
            recorded = updated.source[1]
            git("add", "--all", cwd=root)
            commit = git("commit", "--quiet", "-m", f"Update {answers_file.label} scaffolding to template {recorded}", cwd=root)
            if commit.returncode:
                raise PluginMigrationError(f"git commit failed: {commit.stderr.decode().strip()}")
            changed += 1
    return changed
