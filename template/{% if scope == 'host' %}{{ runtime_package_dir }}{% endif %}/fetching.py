"""Template versions fetched with git for check-scaffolding: one clone per source, one export per version.

Recorded values never reach git as options: the source follows ``--``, and a
recorded version is resolved with ``git rev-parse --verify --end-of-options
REV^{commit}`` before ``git archive`` gets the commit id it resolved to. The
archive is extracted with tarfile's ``data`` filter, or, on a Python without
it (before 3.11.4, such as Debian 12's 3.11.2), by ``extract_plain``, which
accepts only regular files and folders inside the target.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import PluginMigrationError

_DESCRIBE = re.compile(r"^(?P<tag>.+?)(-\d+-g[0-9a-f]+)?$")


class TemplateUnusable(PluginMigrationError):
    """A recorded template version that cannot be fetched or rendered here; ``fix`` says what to do."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


def git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run git, never through its ``ext::`` transport (which runs a command named in a URL)."""
    command = ["git", "-c", "protocol.ext.allow=never", *args]
    return subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)


def _last_line(result: subprocess.CompletedProcess[bytes]) -> str:
    lines = result.stderr.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"git exited with {result.returncode}"


@dataclass(frozen=True)
class TemplateVersion:
    """One recorded version: the clone it came from, the commit it resolved to, and its files as a folder."""

    src: str
    clone: Path
    sha: str
    export: Path


class TemplateVersions:
    """Each template source cloned once, each recorded version exported once."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._clones: dict[str, Path | TemplateUnusable] = {}
        self._versions: dict[tuple[str, str], TemplateVersion] = {}
        self._exports: dict[tuple[str, str], Path] = {}
        self._newest: dict[str, str | None] = {}

    def _clone(self, src: str) -> Path:
        """The clone of ``src`` (tried once: a failure is remembered)."""
        if src not in self._clones:
            target = self.workdir / f"source-{len(self._clones)}"
            result = git("clone", "--quiet", "--no-checkout", "--", src, str(target))
            self._clones[src] = target if not result.returncode else TemplateUnusable(
                f"cannot fetch the template from {src!r}: {_last_line(result)}",
                "make the template source reachable from here (for CI, scaffold from the template's git URL)",
            )
        clone = self._clones[src]
        if isinstance(clone, TemplateUnusable):
            raise clone
        return clone

    def version(self, src: str, commit: str) -> TemplateVersion:
        """The template at the recorded ``commit`` of ``src``, exported as a plain folder."""
        if (src, commit) not in self._versions:
            clone = self._clone(src)
            resolved = git("rev-parse", "--verify", "--quiet", "--end-of-options", commit + "^{commit}", cwd=clone)
            if resolved.returncode:
                raise TemplateUnusable(
                    f"template {src!r} has no version {commit!r}",
                    "record a version the template has (`copier update --defaults --vcs-ref=TAG -a FILE`)",
                )
            sha = resolved.stdout.decode().strip()
            if (src, sha) not in self._exports:
                archive = git("archive", "--format=tar", sha, cwd=clone)
                if archive.returncode:
                    raise TemplateUnusable(f"cannot export {sha} of {src!r}: {_last_line(archive)}", "check the clone")
                target = self.workdir / f"version-{len(self._exports)}"
                extract(archive.stdout, target)
                self._exports[(src, sha)] = target
            self._versions[(src, commit)] = TemplateVersion(src, clone, sha, self._exports[(src, sha)])
        return self._versions[(src, commit)]

    def newest_tag(self, src: str) -> str | None:
        """The highest version-like tag of ``src`` (looked up once per source)."""
        from packaging.version import InvalidVersion, Version

        if src in self._newest:
            return self._newest[src]
        tags = git("tag", "--list", cwd=self._clone(src)).stdout.decode().split()
        versions = []
        for tag in tags:
            try:
                versions.append((Version(tag), tag))
            except InvalidVersion:
                continue
        self._newest[src] = max(versions)[1] if versions else None
        return self._newest[src]

    def newer_tag(self, src: str, commit: str) -> str | None:
        """``src``'s newest tag when it is a later version than ``commit`` (a tag, or git describe's TAG-N-gSHA)."""
        from packaging.version import InvalidVersion, Version

        newest = self.newest_tag(src)
        match = _DESCRIBE.match(commit)
        try:
            return newest if newest and Version(match.group("tag") if match else commit) < Version(newest) else None
        except InvalidVersion:
            return None


_UNEXTRACTABLE_FIX = "keep the template's files regular files and folders inside it"


def extract(archive: bytes, target: Path) -> None:
    """Extract a tar archive into ``target``; TemplateUnusable, naming the member, for one that would leave it."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if not hasattr(tarfile, "data_filter"):
            extract_plain(tar, target)
            return
        try:
            tar.extractall(target, filter="data")
        except tarfile.FilterError as error:
            raise TemplateUnusable(f"the template's archive holds a refused member: {error}", _UNEXTRACTABLE_FIX) from None


def extract_plain(tar: tarfile.TarFile, target: Path) -> None:
    """Extract only regular files and folders, each inside ``target``; check every member before writing any.

    For a Python whose tarfile has no extraction filters. Files are written
    with this process's default permissions; links, devices, absolute paths and
    ``..`` are refused.
    """
    root = target.resolve()
    members = tar.getmembers()
    for member in members:
        problem = _member_problem(member, root)
        if problem:
            raise TemplateUnusable(f"the template's archive holds {member.name!r}, {problem}", _UNEXTRACTABLE_FIX)
    for member in members:
        path = root / member.name
        if member.isdir():
            path.mkdir(parents=True, exist_ok=True)
            continue
        source = tar.extractfile(member)
        if source is None:  # cannot happen for a regular file; refuse rather than guess
            raise TemplateUnusable(f"the template's archive holds {member.name!r} without content", _UNEXTRACTABLE_FIX)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(source.read())


def _member_problem(member: tarfile.TarInfo, root: Path) -> str | None:
    name = PurePosixPath(member.name)
    if not (member.isreg() or member.isdir()):
        return "which is not a regular file or a folder (links and devices are not extracted)"
    if name.is_absolute() or member.name.startswith(("/", "\\")):
        return "an absolute path"
    if ".." in name.parts:
        return "a path through .."
    if not (root / name).resolve().is_relative_to(root):
        return "which leads outside the export"
    return None
