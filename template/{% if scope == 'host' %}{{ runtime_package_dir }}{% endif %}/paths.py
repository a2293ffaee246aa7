"""Paths the scaffolding commands read, kept inside the folder they belong to.

A path built from an answer (``plugins_dir: ../../..``), from a template's
copier.yml (``_subdirectory: ../..``) or through a symbolic link can lead out
of the repository, or out of an exported template. check-scaffolding prints
what it reads in its diffs, and CI logs keep them, so every path is resolved,
symbolic links included, and refused before anything is opened unless it
stays inside.
"""

from __future__ import annotations

from pathlib import Path, PurePath

from .errors import PluginMigrationError


class OutsidePath(PluginMigrationError):
    """A path that resolves outside the folder it must stay in; nothing there was opened."""

    def __init__(self, relative: str, where: str) -> None:
        super().__init__(f"{relative} leads outside {where}")
        self.relative = relative


def confine(base: Path, relative: str | PurePath, where: str = "the repository") -> Path:
    """``base / relative`` with every symbolic link resolved; OutsidePath unless it stays inside ``base``.

    ``base`` must already be resolved. The path need not exist.
    """
    try:
        resolved = (base / relative).resolve()
    except (OSError, RuntimeError):  # a symbolic link loop
        raise OutsidePath(str(relative), where) from None
    if not resolved.is_relative_to(base):
        raise OutsidePath(str(relative), where)
    return resolved


def read_bytes_inside(base: Path, relative: str | PurePath, limit: int, where: str = "the repository") -> bytes:
    """The bytes of ``base / relative``, which must stay inside ``base`` and hold at most ``limit`` bytes."""
    path = confine(base, relative, where)
    with path.open("rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise PluginMigrationError(f"{relative}: refused, larger than {limit} bytes")
    return data
