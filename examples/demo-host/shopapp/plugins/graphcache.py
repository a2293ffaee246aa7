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

Reading them still cost 30 ms at 200 chains, a tenth of a run with nothing
to do, so an entry also holds a **stamp**: every file's name, size, inode,
mtime and ctime. A matching stamp spares reading the files. Unlike the
mtime, the ctime cannot be set back by ``touch -r``, ``cp -p``, an archive
or a checkout (each gives the new file the time of that moment), so a file
that changed has another stamp; the one blind spot, a second change within
the file system's timestamp granularity, is closed the way git closes its
"racy" index entries: no stamp is stored while a file changed in the last
``SETTLED_SECONDS``. A stamp that does not match (a copy, a new container)
falls back to the content key, and a matching content key refreshes it.

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
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
#: No stamp is kept while a chain's file is younger than this: a second change within its timestamp's granularity.
SETTLED_SECONDS = 2.0


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
    for name, entry in _tree(folder, prefix, depth):
        if entry is None:
            digest.update(f"{name}\0".encode())
            continue
        content = b""
        if entry.is_file():
            with open(entry.path, "rb") as file:
                content = file.read()
        digest.update(f"file\0{name}\0{len(content)}\0".encode())
        digest.update(content)


def chain_stamp(ini_stat: os.stat_result | None, locations: Sequence[str]) -> str | None:
    """The stamp of a chain (``ini_stat``: its ini's, taken first), None when unreadable or a file is too young."""
    if ini_stat is None:
        return None
    settled = time.time_ns() - int(SETTLED_SECONDS * 1e9)
    digest = hashlib.sha256(f"{FORMAT}\0{alembic_version()}\0".encode())
    try:
        for stat in _stats([ini_stat], locations, digest):
            if max(stat.st_mtime_ns, stat.st_ctime_ns) > settled:
                return None
            digest.update(f"{stat.st_size}\0{stat.st_ino}\0{stat.st_dev}\0{stat.st_mtime_ns}\0{stat.st_ctime_ns}\0".encode())
    except OSError:
        return None
    return digest.hexdigest()


def ini_stat(alembic_ini: Path) -> os.stat_result | None:
    try:
        return os.stat(alembic_ini)
    except OSError:
        return None


def _stats(first: list[os.stat_result], locations: Sequence[str], digest: Any) -> Iterator[os.stat_result]:
    yield from first
    for location in locations:
        digest.update(f"location\0{location}\0".encode())
        for name, entry in _tree(location, "", 0):
            digest.update(f"{name}\0".encode())
            if entry is not None:
                yield entry.stat()


def _tree(folder: str, prefix: str, depth: int) -> Iterator[tuple[str, os.DirEntry[str] | None]]:
    """Every file under ``folder`` by relative name, sorted, ``__pycache__`` left out; folders as marks (entry None).

    os.scandir and open() rather than pathlib: at 200 chains of 10 files,
    pathlib's path objects were half the time of a run with nothing to do.
    """
    try:
        with os.scandir(folder) as found:
            entries = sorted(found, key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        yield "missing", None
        return
    for entry in entries:
        if entry.is_dir():
            if entry.name != "__pycache__" and depth < MAX_DEPTH:
                yield f"dir\0{prefix}{entry.name}", None
                yield from _tree(entry.path, f"{prefix}{entry.name}/", depth + 1)
        else:
            yield f"{prefix}{entry.name}", entry


class GraphCache:
    """The cache file, read once on first use; entries found or made are written back by ``save``."""

    def __init__(self, path: Path = CACHE_PATH) -> None:
        self.path = path
        self._entries: dict[str, Any] | None = None
        self._made: dict[str, Any] = {}

    def get(self, alembic_ini: Path) -> Graph | None:
        """The cached graph of the chain whose ini is ``alembic_ini``, if still its files'.

        A matching stamp reads no file; otherwise the content key decides,
        and a match records the files' new stamp (written by ``save``).
        """
        entry = self._read().get(str(alembic_ini))
        if not isinstance(entry, dict) or not _names(entry.get("locations")):
            return None
        locations, stored = entry["locations"], entry.get("stamp")
        stamp = chain_stamp(ini_stat(alembic_ini), locations)  # before the content: see the module's docstring
        if stamp is not None and stamp == stored:
            return Graph.from_json(entry.get("graph"))
        digest = ini_digest(alembic_ini)
        if digest is None or entry.get("key") != chain_key(digest, locations):
            return None
        graph = Graph.from_json(entry.get("graph"))
        if graph is not None and stamp is not None:
            self._made[str(alembic_ini)] = {**entry, "stamp": stamp}
        return graph

    def put(self, alembic_ini: Path, key: str, locations: Iterable[str], graph: Graph, stamp: str | None = None) -> None:
        """Remember ``graph`` for the chain, under the key (and stamp) taken before its files were loaded."""
        entry = {"key": key, "locations": list(locations), "graph": graph.as_json()}
        self._made[str(alembic_ini)] = {**entry, "stamp": stamp} if stamp else entry

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
