"""Regeneration checks and updates: is the scaffolding what the template generates?

``check-scaffolding`` renders every ``.copier-answers*.yml`` at its recorded
template version, in memory, and compares the result with the working tree,
which it never writes. ``sync-registry`` rewrites registry.json from the
answers files. ``update-scaffolding`` runs ``copier update`` for the host and
then every plugin, one commit each.

Only these commands need Copier's stack (Copier itself, PyYAML, pathspec,
jinja2-ansible-filters); the other plugin commands never import this module.

Why not call Copier to render: a Copier render starts a dozen git processes
and takes a fifth of a second, per answers file. Here each recorded template
version is fetched once (one ``git clone`` per template source, one ``git
archive`` per version) and rendered with Jinja set up the way Copier sets it
up. The host's generated tests prove the two agree: a freshly scaffolded host
passes this check.
"""

from __future__ import annotations

import difflib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .registry import PLUGINS_DIR, PROJECT_ROOT, REGISTRY_PATH, PluginMigrationError

ANSWERS_GLOB = ".copier-answers*.yml"
HOST_ANSWERS = ".copier-answers.host.yml"
CONFLICT_MARKERS = ("<<<<<<< ", ">>>>>>> ")
# What Copier leaves out of a render by default (copier._template.DEFAULT_EXCLUDE).
_EXCLUDED_NAMES = re.compile(r"^(~.*|.*\.py[co]|__pycache__|\.git|\.DS_Store|\.svn)$")
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
        data = _load_yaml(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise PluginMigrationError(f"{path.name}: not a Copier answers file (expected a mapping)")
        files.append(AnswersFile(path, data))
    return files


def _git(*args: str, cwd: Path | None = None, stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, check=False)


class TemplateVersions:
    """Each template source cloned once, each recorded version exported once."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._clones: dict[str, Path] = {}
        self._exports: dict[tuple[str, str], Path] = {}
        self._renderers: dict[Path, TemplateRenderer] = {}

    def _clone(self, src: str) -> Path:
        if src not in self._clones:
            target = self.workdir / f"source-{len(self._clones)}"
            result = _git("clone", "--quiet", "--no-checkout", src, str(target))
            if result.returncode:
                raise PluginMigrationError(
                    f"cannot fetch the template from {src}: {result.stderr.decode().strip().splitlines()[-1:]}"
                )
            self._clones[src] = target
        return self._clones[src]

    def export(self, src: str, commit: str) -> Path:
        """The template's files at ``commit``, as a plain folder."""
        if (src, commit) not in self._exports:
            clone = self._clone(src)
            archive = _git("archive", "--format=tar", commit, cwd=clone)
            if archive.returncode:
                raise PluginMigrationError(f"template {src} has no version {commit}: {archive.stderr.decode().strip()}")
            target = self.workdir / f"version-{len(self._exports)}"
            with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                tar.extractall(target, filter="data")
            self._exports[(src, commit)] = target
        return self._exports[(src, commit)]

    def renderer(self, src: str, commit: str) -> TemplateRenderer:
        """The renderer of the template at ``commit`` (made once per version)."""
        export = self.export(src, commit)
        if export not in self._renderers:
            self._renderers[export] = TemplateRenderer(export)
        return self._renderers[export]

    def newest_tag(self, src: str) -> str | None:
        from packaging.version import InvalidVersion, Version

        tags = _git("tag", "--list", cwd=self._clone(src)).stdout.decode().split()
        versions = []
        for tag in tags:
            try:
                versions.append((Version(tag), tag))
            except InvalidVersion:
                continue
        return max(versions)[1] if versions else None


def _load_yaml(text: str) -> Any:
    import yaml

    # libyaml's loader when PyYAML has it: the pure-Python one dominated a check of many plugins.
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


class TemplateRenderer:
    """One template version, set up once to render any answers the way Copier does.

    copier.yml is parsed once, the Jinja environment made once, and every
    template string (file names, defaults, file bodies) compiled once, so
    the check costs little more per plugin than rendering its few files.
    """

    def __init__(self, template_root: Path) -> None:
        from jinja2 import FileSystemLoader
        from jinja2.sandbox import SandboxedEnvironment

        self.config: dict[str, Any] = _load_yaml((template_root / "copier.yml").read_text(encoding="utf-8"))
        self.subdirectory = template_root / self.config.get("_subdirectory", "")
        self.suffix: str = self.config.get("_templates_suffix", ".jinja")
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(str(self.subdirectory)),
            extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"],
            keep_trailing_newline=True,
            **self.config.get("_envops", {}),
        )
        self._compiled: dict[str, Any] = {}
        self.sources = [
            source.relative_to(self.subdirectory)
            for source in sorted(self.subdirectory.rglob("*"))
            if not source.is_dir()
            and not any(_EXCLUDED_NAMES.match(part) for part in source.relative_to(self.subdirectory).parts)
        ]

    def _render(self, text: str, context: dict[str, Any]) -> str:
        if text not in self._compiled:
            self._compiled[text] = self.env.from_string(text)
        return self._compiled[text].render(context)

    def render(self, answers: dict[str, Any]) -> tuple[dict[str, bytes], Callable[[str], bool]]:
        """What Copier renders for these answers: {path: bytes}, and a matcher for _skip_if_exists paths.

        Leaves out the answers file itself. Mirrors Copier's rules: files ending
        in the templates suffix lose it and are rendered, others are copied as
        they are, and a path part that renders empty drops the file.
        """
        import pathspec

        context: dict[str, Any] = {key: value for key, value in answers.items() if not key.startswith("_")}
        for key, question in self.config.items():
            # Computed values: questions never asked, whose default derives from the answers.
            if not key.startswith("_") and isinstance(question, dict) and question.get("when") is False:
                default = question.get("default")
                context[key] = self._render(default, context) if isinstance(default, str) else default
        answers_file = self._render(self.config.get("_answers_file", ".copier-answers.yml"), context).strip()
        context["_copier_conf"] = {"answers_file": answers_file}
        skip = pathspec.PathSpec.from_lines(
            "gitwildmatch", [self._render(pattern, context) for pattern in self.config.get("_skip_if_exists", [])]
        )

        files: dict[str, bytes] = {}
        for relative in self.sources:
            templated = relative.name.endswith(self.suffix)
            # Copier drops the suffix before rendering a name, so a conditional
            # file name (an if-block around "models.py", then ".jinja") can render empty.
            name = relative.name[: -len(self.suffix)] if templated else relative.name
            parts = [self._render(part, context) for part in [*relative.parts[:-1], name]]
            if not all(parts):
                continue
            target = "/".join(parts)
            if target == answers_file:
                continue
            files[target] = (
                self.env.get_template(relative.as_posix()).render(context).encode()
                if templated
                else (self.subdirectory / relative).read_bytes()
            )
        return files, skip.match_file


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
        if any(line.startswith(CONFLICT_MARKERS) for line in text.splitlines()):
            yield Finding(
                target,
                "holds conflict markers from an update",
                f"resolve the <<<<<<< ... >>>>>>> blocks in {target} and commit",
                diff,
            )
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
                if newest[src] and _older(recorded, newest[src]):
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
    unmerged = _git("diff", "--name-only", "--diff-filter=U", cwd=root).stdout.decode().split()
    status = _git("status", "--porcelain", "--untracked-files=all", cwd=root).stdout.decode().splitlines()
    rejected = [line[3:] for line in status if line.endswith(".rej")]
    marked = []
    for line in status:
        candidate = root / line[3:]
        if candidate.is_file() and candidate.suffix != ".rej":
            text = candidate.read_text(encoding="utf-8", errors="replace")
            if any(marker_line.startswith(CONFLICT_MARKERS) for marker_line in text.splitlines()):
                marked.append(line[3:])
    return sorted(set(unmerged) | set(rejected) | set(marked))


def update_scaffolding(root: Path = PROJECT_ROOT, vcs_ref: str | None = None, echo: Callable[[str], None] = print) -> int:
    """``copier update`` the host and then every plugin, committing each update on its own.

    Stops at the first conflict, naming the files to resolve; run it again
    after committing the resolution to update the rest. Returns how many
    scaffolds changed.
    """
    if _git("status", "--porcelain", cwd=root).stdout.strip():
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
        if _git("status", "--porcelain", cwd=root).stdout.strip():
            updated = next(a for a in read_answers_files(root) if a.name == answers_file.name)
            recorded = updated.source[1]
            _git("add", "--all", cwd=root)
            commit = _git("commit", "--quiet", "-m", f"Update {answers_file.label} scaffolding to template {recorded}", cwd=root)
            if commit.returncode:
                raise PluginMigrationError(f"git commit failed: {commit.stderr.decode().strip()}")
            changed += 1
    return changed
