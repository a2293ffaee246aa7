"""The template rendered the way Copier renders it, for ``check-scaffolding``: fast, then confirmed.

Why not always call Copier: a Copier render starts a dozen git processes and
takes a fifth of a second or more, per answers file. ``TemplateRenderer``
renders each exported version (see ``fetching``) with Jinja set up the way
Copier sets it up, and so decides quickly that a file is what the template
generates. It does not emulate everything Copier does (Jinja extensions,
every ``_copier_conf`` value), so a difference it finds is only a suspicion:
``copier_render`` renders that scaffold with Copier itself, and only what
Copier's render confirms is reported.

Only the scaffolding commands import this module, and it imports Copier's
stack (Jinja, PyYAML, pathspec, jinja2-ansible-filters, Copier) only when it
renders.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .answers import MAX_YAML_BYTES, load_yaml
from .errors import PluginMigrationError, error_summary
from .fetching import TemplateUnusable, TemplateVersion
from .paths import confine, read_bytes_inside

# What Copier leaves out of a render when copier.yml sets no _exclude and no
# _subdirectory (copier._template.DEFAULT_EXCLUDE).
_DEFAULT_EXCLUDE = ["copier.yaml", "copier.yml", "~*", "*.py[co]", "__pycache__", ".git", ".DS_Store", ".svn"]
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_UNDEFINED = {"jinja2.Undefined", "jinja2.StrictUndefined"}

#: The files a render generates: {path relative to the destination: bytes}.
Files = dict[str, bytes]


class TemplateRenderer:
    """One template version, set up once to render any answers the way Copier does.

    copier.yml is parsed once, the Jinja environment made once, and every
    template string (file names, defaults, file bodies) compiled once, so
    the check costs little more per plugin than rendering its few files.
    """

    def __init__(self, template_root: Path) -> None:
        import jinja2
        from jinja2 import FileSystemLoader
        from jinja2.sandbox import SandboxedEnvironment

        root = template_root.resolve()
        where = "the template"
        try:
            self.config: dict[str, Any] = load_yaml(read_bytes_inside(root, "copier.yml", MAX_YAML_BYTES, where).decode(), "copier.yml")
            if not isinstance(self.config, dict):
                raise PluginMigrationError("copier.yml is not a mapping")
            subdirectory = str(self.config.get("_subdirectory", ""))
            self.subdirectory = confine(root, subdirectory, f"the template (copier.yml's _subdirectory: {subdirectory!r})")
            self.sources: list[Path] = []
            for source in sorted(self.subdirectory.rglob("*")):
                if not source.is_dir():
                    confine(root, source.relative_to(root), where)  # a symbolic link out of the export is refused
                    self.sources.append(source.relative_to(self.subdirectory))
            self.suffix: str = self.config.get("_templates_suffix", ".jinja")
            envops = dict(self.config.get("_envops", {}))
            if envops.get("undefined") in _UNDEFINED:  # as Copier reads it
                envops["undefined"] = getattr(jinja2, envops["undefined"].rpartition(".")[2])
            self.env = SandboxedEnvironment(
                loader=FileSystemLoader(str(self.subdirectory)),
                extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"],
                keep_trailing_newline=True,
                **envops,
            )
        except Exception as error:  # OutsidePath, a YAML refusal, a bad _envops: one line each
            raise TemplateUnusable(
                f"this template version cannot be read: {error_summary(error)}; nothing outside it was read",
                "record another version of the template (`copier update --defaults --vcs-ref=TAG -a FILE`)",
            ) from None
        self.exclude = self.config.get("_exclude", [] if subdirectory else _DEFAULT_EXCLUDE)
        self._compiled: dict[str, Any] = {}

    def _render(self, text: str, context: dict[str, Any]) -> str:
        if text not in self._compiled:
            self._compiled[text] = self.env.from_string(text)
        return str(self._compiled[text].render(context))

    def _matcher(self, patterns: list[str], context: dict[str, Any]) -> Callable[[str], bool]:
        import pathspec

        lines = [line for pattern in patterns for line in _LINE_BREAK.split(self._render(pattern, context))]
        return pathspec.PathSpec.from_lines("gitwildmatch", lines).match_file

    def _context(self, answers: dict[str, Any]) -> dict[str, Any]:
        context: dict[str, Any] = {key: value for key, value in answers.items() if not key.startswith("_")}
        for key, question in self.config.items():
            # Computed values: questions never asked, whose default derives from the answers.
            if not key.startswith("_") and isinstance(question, dict) and question.get("when") is False:
                default = question.get("default")
                context[key] = self._render(default, context) if isinstance(default, str) else default
        answers_file = self._render(self.config.get("_answers_file", ".copier-answers.yml"), context).strip()
        context["_copier_conf"] = {"answers_file": answers_file, "sep": os.sep}
        return context

    def skip_matcher(self, answers: dict[str, Any]) -> Callable[[str], bool]:
        """Whether a generated path is one of _skip_if_exists (written once, then the user's)."""
        try:
            return self._matcher(self.config.get("_skip_if_exists", []), self._context(answers))
        except Exception as error:  # Jinja's errors, mostly: one line
            raise TemplateUnusable(f"cannot render its _skip_if_exists: {error_summary(error)}", "fix the template") from None

    def render(self, answers: dict[str, Any]) -> tuple[Files, Callable[[str], bool]]:
        """What Copier renders for these answers: {path: bytes}, and a matcher for _skip_if_exists paths.

        Leaves out the answers file itself. Mirrors Copier's rules: files ending
        in the templates suffix lose it and are rendered, others are copied as
        they are (unless a templated sibling exists), a path part that renders
        empty drops the file, and _exclude patterns drop what they match.
        Raises Jinja's errors for what it cannot render (an extension's tag,
        say); Copier's own render then decides.
        """
        context = self._context(answers)
        answers_file = context["_copier_conf"]["answers_file"]
        skipped = self._matcher(self.config.get("_skip_if_exists", []), context)
        excluded = self._matcher(self.exclude, {**context, "_copier_operation": "copy"})

        files: Files = {}
        for relative in self.sources:
            templated = relative.name.endswith(self.suffix)
            # Copier drops the suffix before rendering a name, so a conditional
            # file name (an if-block around "models.py", then ".jinja") can render empty.
            name = relative.name[: -len(self.suffix)] if templated else relative.name
            if not templated and (self.subdirectory / relative).with_name(name + self.suffix).exists():
                continue  # Copier renders the templated sibling instead
            parts = [self._render(part, context) for part in [*relative.parts[:-1], name]]
            if not all(parts):
                continue
            target = "/".join(parts)
            if target == answers_file or excluded(target):
                continue
            files[target] = (
                self.env.get_template(relative.as_posix()).render(context).encode()
                if templated
                else (self.subdirectory / relative).read_bytes()
            )
        return files, skipped


def copier_render(version: TemplateVersion, answers: dict[str, Any], destination: Path, trusted: bool) -> Files:
    """Copier's own render of one scaffold at ``version``, with its recorded answers, into ``destination``.

    As ``copier update`` renders the old version of a project: into an empty
    folder (so ``_external_data`` files are absent), with the recorded answers
    as data and no tasks run. Only the trusted template source may run its
    Jinja extensions (``unsafe``). Returns every regular file it wrote.
    """
    from copier import Settings, run_copy

    data = {key: value for key, value in answers.items() if not key.startswith("_")}
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            run_copy(
                str(version.clone), destination, data=data, vcs_ref=version.sha, settings=Settings(), defaults=True,
                overwrite=True, quiet=True, skip_tasks=True, unsafe=trusted,
            )
    except Exception as error:  # Copier's errors, its validators' ValueError, Jinja's, git's: one line each
        raise TemplateUnusable(
            f"Copier cannot render it at {version.sha[:12]} to confirm a difference: {error_summary(error)}",
            "fix the answers file or the template, then run check-scaffolding again",
        ) from None
    base = destination.resolve()
    return {
        path.relative_to(base).as_posix(): path.read_bytes()
        for path in sorted(base.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }
