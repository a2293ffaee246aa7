"""Regeneration checks: is the scaffolding what the template generates?

``check-scaffolding`` renders every ``.copier-answers*.yml`` at its recorded
template version, in memory, and compares the result with the working tree,
which it never writes. ``sync-registry`` rewrites the registry.json index
from the plugins' plugin.json declarations. (``update-scaffolding`` is ``updating``'s.)

What it reads stays inside the repository, or inside the exported template
(``paths``); it renders only the template source that the host's answers file
names (``answers``); and a difference is reported only once Copier's own
render confirms it (``rendering``).

A little over 300 lines on purpose: the check's findings, each with its fix,
read best side by side. Only these commands need Copier's stack (Copier itself, PyYAML, pathspec,
jinja2-ansible-filters); the other plugin commands never import this module.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .answers import HOST_ANSWERS, AnswersFile, load_answers_files, read_answers_files, trusted_source, untrusted
from .conflicts import CONFLICT_PROBLEM, conflict_fix, holds_conflict_markers
from .errors import PluginMigrationError
from .fetching import TemplateUnusable, TemplateVersion, TemplateVersions
from .paths import OutsidePath, confine, read_bytes_inside
from .declarations import read_declarations, read_installed, render_index
from .registry import PROJECT_ROOT, REGISTRY_PATH
from .rendering import Files, TemplateRenderer, copier_render
from .settings import PLUGINS_DIR

#: Larger generated files than this are not read to be compared (none comes near it).
_MAX_FILE_BYTES = 16 << 20


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


def expected_registry(answers_files: list[AnswersFile], root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """registry.json as the plugins present declare them: in plugin.json (in PLUGINS_DIR or an installed
    package's), else (older scaffolds) in their answers files."""
    plugins: dict[str, dict[str, Any]] = {
        a.plugin: _entry(a.answers.get("tables", []), a.answers.get("depends_on", []), a.answers.get("schema", ""),
                         a.answers.get("bind") or None)
        for a in answers_files
        if a.plugin and (root / PLUGINS_DIR / a.plugin).is_dir()
    }
    for name, declared in {**read_declarations(root / PLUGINS_DIR), **read_installed()}.items():
        plugins[name] = _entry(declared.tables, declared.depends_on, declared.schema, declared.bind)
    return {"plugins": dict(sorted(plugins.items()))}


def _entry(tables: Any, depends_on: Any, schema: Any, bind: Any) -> dict[str, Any]:
    """One index entry; "schema" and "bind" only where a plugin has them, so older entries read as before."""
    entry: dict[str, Any] = {"tables": list(tables), "depends_on": list(depends_on)}
    return {**entry, **({"schema": schema} if schema else {}), **({"bind": bind} if bind else {})}


def _unified(expected: str, actual: str, expected_label: str, actual_label: str) -> str:
    return "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True), actual.splitlines(keepends=True), expected_label, actual_label
        )
    )


def _recopy(answers_file: AnswersFile) -> str:
    return f"copier recopy --defaults --overwrite --vcs-ref=:current: -a {answers_file.name}"


class _Scaffold:
    """One answers file's scaffold at its recorded version: the fast render, and Copier's made on demand."""

    def __init__(self, root: Path, answers_file: AnswersFile, version: TemplateVersion, renderer: TemplateRenderer) -> None:
        self.root = root
        self.answers_file = answers_file
        self.version = version
        self._copier_files: Files | None = None
        try:
            self.files, self.skipped = renderer.render(answers_file.answers)
        except Exception:  # what only Copier renders (a Jinja extension's tag, say): Copier decides
            self.skipped = renderer.skip_matcher(answers_file.answers)
            self.files = {target: data for target, data in self.copier_files().items() if target != answers_file.name}

    def copier_files(self) -> Files:
        """What Copier itself renders for this scaffold (made once, only when asked)."""
        if self._copier_files is None:
            # Named like the repository: a template may render _folder_name.
            destination = Path(tempfile.mkdtemp(dir=self.version.export.parent, prefix="copier-")) / self.root.resolve().name
            # Only the host's template source gets here (see _check_scaffold), so it may run its Jinja extensions.
            self._copier_files = copier_render(self.version, self.answers_file.answers, destination, trusted=True)
        return self._copier_files


def _leaves_the_repository(target: str) -> bool:
    return os.path.isabs(target) or os.path.normpath(target).startswith("..")


def _check_files(root: Path, scaffold: _Scaffold) -> Iterator[Finding]:
    answers_file = scaffold.answers_file
    leaving = [target for target in scaffold.files if _leaves_the_repository(target)]
    if leaving:
        yield Finding(
            answers_file.name,
            f"its answers put generated files outside the repository ({', '.join(leaving)}); nothing there was read",
            f"correct the path answers in {answers_file.name} (plugins_dir is a folder inside the repository), "
            f"or restore it with `git checkout -- {answers_file.name}`",
        )
    for target in scaffold.files:
        if target in leaving:
            continue
        if (root / f"{target}.rej").exists():
            yield Finding(
                f"{target}.rej",
                f"rejected update hunks of {answers_file.label}",
                f"apply what {target}.rej holds to {target} by hand, then delete {target}.rej",
            )
        if not scaffold.skipped(target):  # else written once, then the user's: models, revisions, registry
            yield from _compare(root.resolve(), scaffold, target)


def _compare(base: Path, scaffold: _Scaffold, target: str) -> Iterator[Finding]:
    """The working tree's ``target`` against the template's, confirmed by Copier's render before it is reported."""
    answers_file, version = scaffold.answers_file, scaffold.answers_file.source[1]
    try:
        path = confine(base, target)
    except OutsidePath:
        yield Finding(
            target,
            "is a symbolic link that leads outside the repository; it was not read",
            f"replace it with the generated file: `rm {target}`, then `{_recopy(answers_file)}`",
        )
        return
    actual = read_bytes_inside(base, target, _MAX_FILE_BYTES) if path.is_file() else None
    if actual == scaffold.files[target]:
        return
    expected = scaffold.copier_files().get(target)
    if expected is None or actual == expected:
        return  # the fast render was wrong, and Copier's own agrees with the working tree
    if actual is None:
        yield Finding(target, f"deleted, but {answers_file.label}'s template generates it", _recopy(answers_file))
        return
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


def _check_scaffold(root: Path, answers_file: AnswersFile, trusted: str | None, versions: TemplateVersions,
                    renderers: dict[Path, TemplateRenderer]) -> Iterator[Finding]:
    src, commit = answers_file.source
    if not src or not commit:
        yield Finding(
            answers_file.name,
            "records no template source and commit, so it cannot be checked",
            f"scaffold from a git checkout or URL of the template and commit; then `{_recopy(answers_file)}`",
        )
        return
    distrust = untrusted(answers_file, trusted)
    if distrust:
        yield Finding(
            answers_file.name,
            f"{distrust}: not rendered here, and update-scaffolding refuses it, as `copier update --trust` runs "
            f"a template's tasks as you",
            f"if you did not mean to change it, set `_src_path: {trusted}` in {answers_file.name} again and commit "
            f"(`git log -p {answers_file.name}` shows the change); to move to another template, change the host's first"
            if trusted else f"scaffold the host from the template's git URL, so that {HOST_ANSWERS} records its source",
        )
        return
    if answers_file.plugin and not (root / PLUGINS_DIR / answers_file.plugin).is_dir():
        yield Finding(
            answers_file.name,
            f"answers file without its plugin folder {PLUGINS_DIR}/{answers_file.plugin}",
            f"`git rm {answers_file.name}` if the plugin is gone, or restore its folder with `{_recopy(answers_file)}`",
        )
        return
    try:
        version = versions.version(src, commit)
        if version.export not in renderers:
            renderers[version.export] = TemplateRenderer(version.export)
        yield from _check_files(root, _Scaffold(root, answers_file, version, renderers[version.export]))
    except TemplateUnusable as error:
        yield Finding(answers_file.name, str(error), error.fix)


def check_scaffolding(root: Path = PROJECT_ROOT, latest: bool = False) -> Report:
    """Compare the working tree with what every answers file's template version generates."""
    answers_files, refused = load_answers_files(root)
    report = Report([Finding(name, problem.removeprefix(f"{name}: "), f"restore {name} from git, or correct it")
                     for name, problem in refused.items()])
    trusted = trusted_source(answers_files)
    with tempfile.TemporaryDirectory(prefix="check-scaffolding-") as workdir:
        versions = TemplateVersions(Path(workdir))
        renderers: dict[Path, TemplateRenderer] = {}
        for answers_file in answers_files:
            report.findings.extend(_check_scaffold(root, answers_file, trusted, versions, renderers))
            if latest and answers_file.source[0] == trusted:
                report.findings.extend(_behind(answers_file, versions))
    report.findings.extend(_check_registry(root, answers_files))
    report.findings.extend(_check_orphan_plugins(root, answers_files))
    return report


def _behind(answers_file: AnswersFile, versions: TemplateVersions) -> Iterator[Finding]:
    src, commit = answers_file.source
    try:
        newest = versions.newer_tag(src, commit)
    except TemplateUnusable:
        return  # already reported: the source cannot be fetched
    if newest:
        yield Finding(
            answers_file.name,
            f"{answers_file.label} is at template {commit}, the newest is {newest}",
            f"copier update --defaults -a {answers_file.name}",
            only_behind=True,
        )


def _registry_path(root: Path) -> tuple[Path, str]:
    """registry.json under ``root``, confined to it, and its path relative to it."""
    relative = REGISTRY_PATH.relative_to(PROJECT_ROOT).as_posix()
    return confine(root.resolve(), relative), relative


def _check_registry(root: Path, answers_files: list[AnswersFile]) -> Iterator[Finding]:
    fix = f"python -m {__package__} sync-registry"
    try:
        path, relative = _registry_path(root)
        actual = json.loads(read_bytes_inside(root.resolve(), relative, _MAX_FILE_BYTES))
    except OutsidePath as error:
        yield Finding(
            error.relative, "is a symbolic link that leads outside the repository; it was not read", f"`rm {error.relative}`, then {fix}"
        )
        return
    except (OSError, json.JSONDecodeError) as error:
        yield Finding(REGISTRY_PATH.relative_to(PROJECT_ROOT).as_posix(), f"unreadable ({error})", fix)
        return
    expected = expected_registry(answers_files, root)
    if actual != expected:
        yield Finding(
            relative,
            "is out of date: the plugins' plugin.json files say otherwise",
            f"{fix} (or `copier update` the plugin with the answers you meant)",
            _unified(render_index(expected), render_index(actual), "plugin.json files", f"working tree: {relative}"),
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
                f"record its answers with `copier copy --defaults --overwrite -d plugin_name={name} -d 'tables=[...]' TEMPLATE .` "
                f"(then `git diff` and restore what you had changed), or remove the folder",
            )


def sync_registry(root: Path = PROJECT_ROOT) -> bool:
    """Rewrite the registry.json index from the plugins' declarations; True when it changed."""
    try:
        path, _ = _registry_path(root)
    except OutsidePath as error:
        raise PluginMigrationError(f"{error}: sync-registry does not write through it; replace the link with a file") from None
    text = render_index(expected_registry(read_answers_files(root), root))
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True

