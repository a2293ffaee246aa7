"""Copier task: upsert one plugin's entry in the host's owner registry.

Usage (Copier runs it in the destination after `copy` and `update` of the
plugin scope):

    python hooks/register.py '{"host_package": "shopapp", "plugins_dir": "plugins",
                               "plugin_name": "network", "tables": [...], "depends_on": [...]}'

The answers arrive as one JSON argument, never pasted into code or a shell
line. The entry for plugin_name is replaced by the answers; every other entry
keeps its content, and nothing is written when nothing changed.

During `copier update`, Copier also runs tasks inside temporary copies that
hold only this plugin's files, not the host's. There the registry does not
exist, and the hook leaves the folder untouched.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HOST_ANSWERS_FILE = ".copier-answers.host.yml"


def registry_path(root: Path, host_package: str) -> Path:
    return root.joinpath(*host_package.split("."), "plugins", "registry.json")


def render_registry(registry: dict) -> str:
    """The registry as its file holds it: sorted keys, one table per line, for reviewable diffs."""
    return json.dumps(registry, indent=2, sort_keys=True) + "\n"


def upsert(registry: dict, name: str, tables: list[str], depends_on: list[str]) -> dict:
    """A copy of ``registry`` whose entry ``name`` holds exactly these tables and dependencies."""
    plugins = dict(registry.get("plugins", {}))
    plugins[name] = {"tables": list(tables), "depends_on": list(depends_on)}
    return {**registry, "plugins": plugins}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("register.py: expected one JSON argument with the plugin's answers", file=sys.stderr)
        return 2
    answers = json.loads(argv[0])
    root = Path.cwd()
    path = registry_path(root, answers["host_package"])
    if not path.is_file():
        if (root / HOST_ANSWERS_FILE).is_file():
            print(
                f"register.py: {path.relative_to(root)} is missing; restore it from git or run "
                f"`copier update --trust -a {HOST_ANSWERS_FILE}` and then this update again",
                file=sys.stderr,
            )
            return 1
        return 0  # One of Copier's temporary copies: no host here, nothing to register.
    if path.is_symlink() or not path.resolve().is_relative_to(root.resolve()):
        print(f"register.py: refusing to write {path}: it leads outside the destination", file=sys.stderr)
        return 1
    text = path.read_text(encoding="utf-8")
    try:
        registry = json.loads(text)
    except json.JSONDecodeError as error:
        print(f"register.py: {path.relative_to(root)} is not valid JSON ({error}); fix it, then update again", file=sys.stderr)
        return 1
    new_text = render_registry(upsert(registry, answers["plugin_name"], answers["tables"], answers["depends_on"]))
    if new_text != text:
        path.write_text(new_text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
