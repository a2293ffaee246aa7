"""The template, fetched and rendered in memory the way Copier renders it, for ``check-scaffolding``.

Why not call Copier to render: a Copier render starts a dozen git processes
and takes a fifth of a second, per answers file. Here each recorded template
version is fetched once (one ``git clone`` per template source, one ``git
archive`` per version) and rendered with Jinja set up the way Copier sets it
up. The host's generated tests prove the two agree: a freshly scaffolded host
passes the check.

Only the scaffolding commands import this module, and it imports Copier's
stack (Jinja, PyYAML, pathspec, jinja2-ansible-filters) only when it renders.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import PluginMigrationError

# What Copier leaves out of a render by default (copier._template.DEFAULT_EXCLUDE).
_EXCLUDED_NAMES = re.compile(r"^(~.*|.*\.py[co]|__pycache__|\.git|\.DS_Store|\.svn)$")


def git(*args: str, cwd: Path | None = None, stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[bytes]:
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
            result = git("clone", "--quiet", "--no-checkout", src, str(target))
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
            archive = git("archive", "--format=tar", commit, cwd=clone)
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

        tags = git("tag", "--list", cwd=self._clone(src)).stdout.decode().split()
        versions = []
        for tag in tags:
            try:
                versions.append((Version(tag), tag))
            except InvalidVersion:
                continue
        return max(versions)[1] if versions else None


def load_yaml(text: str) -> Any:
    # types-PyYAML may or may not be installed where the host runs mypy.
    import yaml  # type: ignore[import-untyped, unused-ignore]

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

        self.config: dict[str, Any] = load_yaml((template_root / "copier.yml").read_text(encoding="utf-8"))
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
        return str(self._compiled[text].render(context))

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
