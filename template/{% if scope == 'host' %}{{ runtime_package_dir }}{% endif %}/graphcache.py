"""A cache of each chain's revision graph, so that a run with nothing to do imports no revision file.

Learning a chain's head means importing every revision file (Alembic's
``ScriptDirectory``) and parsing its ``alembic.ini``; a deploy does that for
every plugin, though most deploys find every plugin at its head. This file
keeps, per chain, what the plan needs: its heads and bases, its revisions
(id and down revisions, in Alembic's walking order) and the names its
revisions' ``depends_on`` give of other plugins' chains (``chains.own_chain``).

The key is the chain's **content**: a hash of its ``alembic.ini`` (path and
bytes) and of every file under its version locations (relative name, size,
bytes; ``__pycache__`` left out). Not names, sizes and modification times:
an edit that keeps a file's size within the clock's granularity, a restored
mtime (``touch -r``, ``cp -p``, an unpacked archive, a checkout) would leave a
stat key unchanged, and the cache must never be wrong; and copies that
change every mtime (``docker COPY``, CI caches) keep a content key valid.
Reading a chain's few small files costs far less than importing them
(compiling, executing, Alembic's revision map), which is what the cache saves.
The ini's bytes are read for the key; it is parsed only when the chain is loaded.

The key is taken from the files *before* the chain is loaded from them, so
a file changed while it loads leaves an entry that no later run matches.
Revision ids must be literals in the files, as Alembic's own tools assume.

Where: ``__pycache__/plugin-chains.json`` in the runtime's folder, Python's
own cache folder, which git, Docker and check-scaffolding already ignore.
It is an optimisation only: a missing, corrupt, foreign-version or
unwritable file (a read-only deploy) costs the time of loading the chains,
nothing else. It is read as possibly hostile: bounded in size, JSON only,
every entry shape-checked before use, anything odd ignored.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeGuard

CACHE_PATH = Path(__file__).resolve().parent / "__pycache__" / "plugin-chains.json"
#: Changes whenever what an entry holds changes meaning; the Alembic version is part of the check too.
FORMAT = 1
#: A larger file is ignored (about 5,000 plugins of 20 revisions each fit).
MAX_BYTES = 64 * 2**20
#: Deeper folders under a version location are not followed (a symlink loop ends here).
MAX_DEPTH = 8
_MAX_NAME = 1024


@cache
def alembic_version() -> str:
    """Alembic's version, read from its installed metadata: importing Alembic is what the cache spares."""
    return importlib.metadata.version("alembic")


@dataclass(frozen=True)
class Graph:
    """What the plan needs of one chain, without its files loaded."""

    heads: tuple[str, ...]
    bases: tuple[str, ...]
    #: (revision, its down revisions), newest first, as Alembic walks them.
    revisions: tuple[tuple[str, tuple[str, ...]], ...]
    #: Revision -> (its file, the names its depends_on gives that are not of this chain).
    foreign: Mapping[str, tuple[str, tuple[str, ...]]]

    def as_json(self) -> dict[str, Any]:
        return {
            "heads": list(self.heads),
            "bases": list(self.bases),
            "revisions": [[revision, list(downs)] for revision, downs in self.revisions],
            "foreign": {revision: [path, list(names)] for revision, (path, names) in self.foreign.items()},
        }

    @classmethod
    def from_json(cls, data: object) -> Graph | None:
        """The graph ``data`` holds, or None when it is not exactly the shape ``as_json`` writes."""
        if not isinstance(data, dict) or set(data) != {"heads", "bases", "revisions", "foreign"}:
            return None
        heads, bases, revisions, foreign = data["heads"], data["bases"], data["revisions"], data["foreign"]
        if not (_names(heads) and _names(bases) and isinstance(revisions, list) and isinstance(foreign, dict)):
            return None
        if not all(isinstance(item, list) and len(item) == 2 and _names([item[0]]) and _names(item[1]) for item in revisions):
            return None
        if not all(
            _names([revision]) and isinstance(item, list) and len(item) == 2 and _names([item[0]]) and _names(item[1])
            for revision, item in foreign.items()
        ):
            return None
        return cls(
            tuple(heads), tuple(bases),
            tuple((revision, tuple(downs)) for revision, downs in revisions),
            {revision: (path, tuple(names)) for revision, (path, names) in foreign.items()},
        )


def _names(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(item, str) and 0 < len(item) <= _MAX_NAME for item in value)


def ini_digest(alembic_ini: Path) -> str | None:
    """The hash of the ini's path and bytes; None when it cannot be read (the chain then is not cached)."""
    try:
        return hashlib.sha256(f"{alembic_ini}\0".encode() + alembic_ini.read_bytes()).hexdigest()
    except OSError:
        return None


def chain_key(ini: str, locations: Sequence[str]) -> str | None:
    """The key of a chain: its ini's digest and every file under its version locations, None when unreadable."""
    digest = hashlib.sha256(f"{FORMAT}\0{alembic_version()}\0{ini}\0".encode())
    try:
        for location in locations:
            digest.update(f"location\0{location}\0".encode())
            _hash_tree(digest, location, "", 0)
    except OSError:
        return None
    return digest.hexdigest()


def _hash_tree(digest: Any, folder: str, prefix: str, depth: int) -> None:
    # os.scandir and open() rather than pathlib: at 200 chains of 10 files, pathlib's
    # path objects were half the time of a run with nothing to do.
    try:
        with os.scandir(folder) as found:
            entries = sorted(found, key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        digest.update(b"missing\0")
        return
    for entry in entries:
        if entry.is_dir():
            if entry.name != "__pycache__" and depth < MAX_DEPTH:
                digest.update(f"dir\0{prefix}{entry.name}\0".encode())
                _hash_tree(digest, entry.path, f"{prefix}{entry.name}/", depth + 1)
        else:
            content = b""
            if entry.is_file():
                with open(entry.path, "rb") as file:
                    content = file.read()
            digest.update(f"file\0{prefix}{entry.name}\0{len(content)}\0".encode())
            digest.update(content)


class GraphCache:
    """The cache file, read once on first use; entries found or made are written back by ``save``."""

    def __init__(self, path: Path = CACHE_PATH) -> None:
        self.path = path
        self._entries: dict[str, Any] | None = None
        self._made: dict[str, Any] = {}

    def get(self, alembic_ini: Path, digest: str | None) -> Graph | None:
        """The cached graph of the chain whose ini is ``alembic_ini`` (its ``ini_digest``), if still its files'."""
        entry = self._read().get(str(alembic_ini))
        if digest is None or not isinstance(entry, dict):
            return None
        locations = entry.get("locations")
        if not _names(locations) or entry.get("key") != chain_key(digest, locations):
            return None
        return Graph.from_json(entry.get("graph"))

    def put(self, alembic_ini: Path, key: str, locations: Iterable[str], graph: Graph) -> None:
        """Remember ``graph`` for the chain, under the key taken before its files were loaded."""
        self._made[str(alembic_ini)] = {"key": key, "locations": list(locations), "graph": graph.as_json()}

    def save(self) -> None:
        """Write the entries made since the last save, merged into the file as it is now; never fails."""
        if not self._made:
            return
        entries = {ini: entry for ini, entry in _read_file(self.path).items() if Path(ini).is_file()}
        entries.update(self._made)
        self._made = {}
        try:
            self.path.parent.mkdir(exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".plugin-chains.", suffix=".tmp")
        except OSError:  # a read-only deploy: the next run loads the chains again
            return
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump({"format": FORMAT, "alembic": alembic_version(), "chains": entries}, file)
            os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from the app's other users
            os.replace(temporary, self.path)  # readers see the old file or the new one, never half of one
        except OSError:
            Path(temporary).unlink(missing_ok=True)

    def _read(self) -> dict[str, Any]:
        if self._entries is None:
            self._entries = _read_file(self.path)
        return self._entries


def _read_file(path: Path) -> dict[str, Any]:
    """The file's entries, or none when it is missing, too large, not JSON, or of another format."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            return {}
        data = json.loads(raw)
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("alembic") != alembic_version():
        return {}
    chains = data.get("chains")
    return chains if isinstance(chains, dict) else {}
