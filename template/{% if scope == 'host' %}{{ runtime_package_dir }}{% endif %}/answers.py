"""The answers files at the repository's root: read with bounds, and which template source they may name.

Each scaffold records its template source (``_src_path``) and version
(``_commit``) in its answers file, and ``copier update --trust`` runs that
source's tasks, migrations and Jinja extensions as the user. The host's file,
``.copier-answers.host.yml``, names the one source the repository trusts: a
plugin whose answers file names another is neither rendered by
check-scaffolding nor updated by update-scaffolding.

YAML here is read with bounds (file size, nesting, nodes counted through
aliases), so a hostile file is refused in one line instead of exhausting
memory ("billion laughs") or the C stack (deep nesting).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PluginMigrationError
from .paths import OutsidePath, read_bytes_inside
from .registry import PROJECT_ROOT, is_plugin_name

ANSWERS_GLOB = ".copier-answers*.yml"
HOST_ANSWERS = ".copier-answers.host.yml"

#: Bounds far above any real answers file or copier.yml (a few hundred bytes, a few hundred nodes).
MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64


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
        """The plugin's name (already checked to be one), or None for the host."""
        return self.answers.get("plugin_name") if self.answers.get("scope") == "plugin" else None

    @property
    def label(self) -> str:
        return f'plugin "{self.plugin}"' if self.plugin else "the host"

    @property
    def source(self) -> tuple[str, str]:
        return str(self.answers.get("_src_path", "")), str(self.answers.get("_commit", ""))


def load_yaml(text: str, name: str) -> Any:
    """Parse one YAML document with PyYAML's safe loader, refusing one too large or too deep once expanded."""
    # types-PyYAML may or may not be installed where the host runs mypy.
    import yaml  # type: ignore[import-untyped, unused-ignore]

    # libyaml's loader when PyYAML has it: the pure-Python one dominated a check of many plugins.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        # Measured from the event stream first: it needs no recursion, while
        # composing a deeply nested document overflows libyaml's C stack.
        _measure(yaml.parse(text, Loader=loader), name)
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise PluginMigrationError(f"{name}: not valid YAML{where} ({problem})") from None


def _measure(events: Iterable[Any], name: str) -> None:
    """Count nodes (through aliases) and nesting in a YAML event stream; PluginMigrationError past the bounds."""
    import yaml

    expanded: dict[str, tuple[int, int]] = {}  # anchor: (nodes, height) of the node it names
    open_nodes: list[list[Any]] = [[None, 0, 0]]  # per open collection: anchor, nodes, height of its children
    for event in events:
        if isinstance(event, yaml.CollectionStartEvent):
            open_nodes.append([event.anchor, 1, 0])
            nodes, height = 0, 0  # counted when it ends; its own depth is checked now
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, nodes, height = open_nodes.pop()
            height += 1
            if anchor:
                expanded[anchor] = (nodes, height)
        elif isinstance(event, yaml.ScalarEvent):
            nodes, height = 1, 1
            if event.anchor:
                expanded[event.anchor] = (nodes, height)
        elif isinstance(event, yaml.AliasEvent):
            nodes, height = expanded.get(event.anchor, (1, 1))
        else:
            continue  # stream and document boundaries
        parent = open_nodes[-1]
        parent[1] += nodes
        parent[2] = max(parent[2], height)
        if len(open_nodes) - 1 + height > MAX_YAML_DEPTH:
            raise PluginMigrationError(f"{name}: refused, its YAML nests deeper than {MAX_YAML_DEPTH} levels")
        if parent[1] > MAX_YAML_NODES:
            raise PluginMigrationError(f"{name}: refused, its YAML expands to more than {MAX_YAML_NODES} values (aliases counted)")


def load_answers_files(root: Path = PROJECT_ROOT) -> tuple[list[AnswersFile], dict[str, str]]:
    """Every answers file at the repository root, the host's first; and {name: problem} for those refused."""
    base = root.resolve()
    files: list[AnswersFile] = []
    refused: dict[str, str] = {}
    for path in sorted(root.glob(ANSWERS_GLOB), key=lambda p: (p.name != HOST_ANSWERS, p.name)):
        try:
            data = load_yaml(read_bytes_inside(base, path.name, MAX_YAML_BYTES).decode("utf-8"), path.name)
        except OutsidePath:
            refused[path.name] = f"{path.name}: is a symbolic link that leads outside the repository; it was not read"
            continue
        except PluginMigrationError as error:
            refused[path.name] = str(error)
            continue
        except (OSError, UnicodeDecodeError) as error:
            refused[path.name] = f"{path.name}: unreadable ({error})"
            continue
        if not isinstance(data, dict):
            refused[path.name] = f"{path.name}: not a Copier answers file (expected a mapping)"
        elif data.get("scope") == "plugin" and not is_plugin_name(data.get("plugin_name")):
            refused[path.name] = (
                f"{path.name}: plugin_name {data.get('plugin_name')!r} is not a valid plugin name: use lowercase "
                f"letters, digits and _, starting with a letter, at most 18 characters"
            )
        else:
            files.append(AnswersFile(path, data))
    return files, refused


def read_answers_files(root: Path = PROJECT_ROOT) -> list[AnswersFile]:
    """Every answers file at the repository root, the host's first; the first one refused is an error."""
    files, refused = load_answers_files(root)
    for problem in refused.values():
        raise PluginMigrationError(problem)
    return files


def trusted_source(answers_files: list[AnswersFile]) -> str | None:
    """The template source that the host's answers file records: the only one this repository trusts."""
    host = next((a for a in answers_files if a.name == HOST_ANSWERS), None)
    return (host.source[0] or None) if host else None


def untrusted(answers_file: AnswersFile, trusted: str | None) -> str | None:
    """Why ``answers_file``'s template source is not trusted, or None when it is the host's."""
    src = answers_file.source[0]
    if trusted is None:
        return f"records template source {src!r}, but {HOST_ANSWERS} names no source to trust"
    if src != trusted:
        return f"records template source {src!r}, not the host's {trusted!r} (from {HOST_ANSWERS})"
    return None
