"""The template rendered in memory the way Copier renders it, for ``check-scaffolding``.

Why not call Copier to render: a Copier render starts a dozen git processes
and takes a fifth of a second, per answers file. Here each recorded template
version, exported once (see ``fetching``), is rendered with Jinja set up the
way Copier sets it up. The host's generated tests prove the two agree: a
freshly scaffolded host passes the check.

Only the scaffolding commands import this module, and it imports Copier's
stack (Jinja, PyYAML, pathspec, jinja2-ansible-filters) only when it renders.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .answers import MAX_YAML_BYTES, load_yaml
from .errors import PluginMigrationError, error_summary
from .fetching import TemplateUnusable
from .paths import confine, read_bytes_inside

# What Copier leaves out of a render by default (copier._template.DEFAULT_EXCLUDE).
_EXCLUDED_NAMES = re.compile(r"^(~.*|.*\.py[co]|__pycache__|\.git|\.DS_Store|\.svn)$")

#: The files a render generates: {path relative to the destination: bytes}.
Files = dict[str, bytes]


class TemplateRenderer:
    """One template version, set up once to render any answers the way Copier does.

    copier.yml is parsed once, the Jinja environment made once, and every
    template string (file names, defaults, file bodies) compiled once, so
    the check costs little more per plugin than rendering its few files.
    """

    def __init__(self, template_root: Path) -> None:
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
                relative = source.relative_to(self.subdirectory)
                if not source.is_dir() and not any(_EXCLUDED_NAMES.match(part) for part in relative.parts):
                    confine(root, source.relative_to(root), where)  # a symbolic link out of the export is refused
                    self.sources.append(relative)
            self.suffix: str = self.config.get("_templates_suffix", ".jinja")
            self.env = SandboxedEnvironment(
                loader=FileSystemLoader(str(self.subdirectory)),
                extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"],
                keep_trailing_newline=True,
                **self.config.get("_envops", {}),
            )
        except Exception as error:  # OutsidePath, a YAML refusal, a bad _envops: one line each
            raise TemplateUnusable(
                f"this template version cannot be read: {error_summary(error)}; nothing outside it was read",
                "record another version of the template (`copier update --trust --defaults --vcs-ref=TAG -a FILE`)",
            ) from None
        self._compiled: dict[str, Any] = {}

    def _render(self, text: str, context: dict[str, Any]) -> str:
        if text not in self._compiled:
            self._compiled[text] = self.env.from_string(text)
        return str(self._compiled[text].render(context))

    def render(self, answers: dict[str, Any]) -> tuple[Files, Callable[[str], bool]]:
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

        files: Files = {}
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
