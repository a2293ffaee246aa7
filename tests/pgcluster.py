"""A throwaway PostgreSQL cluster for the test suite (standard library only).

``dev.py test`` starts one before pytest and stops it afterwards, also when
the tests fail. It uses the server binaries Debian's ``postgresql`` package
installs, installing that package with apt-get when it is missing and this
runs as root. The cluster lives in a temporary folder, listens only on
127.0.0.1 at a free port, trusts local connections, and is deleted at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ClusterError(Exception):
    """PostgreSQL could not be found, installed or started; the message says why."""


def find_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl, newest PostgreSQL first."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for candidate in candidates:
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    return None


def install_postgresql() -> None:
    """apt-get install postgresql (root only); raise ClusterError with the reason otherwise."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ClusterError(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; install them "
            "(Debian: `apt-get install postgresql`) or set PLUGIN_MIGRATIONS_TEST_PG_URL to an existing server"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("pgcluster: installing PostgreSQL with apt-get ...", flush=True)
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"]):
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode:
            raise ClusterError(f"{' '.join(command)} failed: {result.stderr.strip().splitlines()[-1:]}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def throwaway_cluster(install: bool = True) -> Iterator[str]:
    """Start a private PostgreSQL server; yield its SQLAlchemy URL; stop and delete it on exit."""
    bindir = find_bindir()
    if bindir is None and install:
        install_postgresql()
        bindir = find_bindir()
    if bindir is None:
        raise ClusterError("PostgreSQL server binaries (initdb, pg_ctl) not found after installing postgresql")

    # initdb refuses to run as root: run the server as the package's postgres
    # user (or nobody) then, in a folder that user owns.
    run_as: dict[str, str] = {}
    if os.geteuid() == 0:
        user = "postgres" if _user_exists("postgres") else "nobody"
        run_as = {"user": user}
    workdir = Path(tempfile.mkdtemp(prefix="plugin-migrations-pg-"))
    datadir = workdir / "data"
    if run_as:
        shutil.chown(workdir, user=run_as["user"])
    os.chmod(workdir, 0o755)
    port = free_port()

    def pg(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), capture_output=True, text=True, cwd=workdir, **run_as)  # type: ignore[arg-type]

    try:
        init = pg(str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        if init.returncode:
            raise ClusterError(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
        options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        start = pg(str(bindir / "pg_ctl"), "-D", str(datadir), "-o", options, "-l", str(workdir / "server.log"), "-w", "start")
        if start.returncode:
            log = (workdir / "server.log").read_text() if (workdir / "server.log").exists() else ""
            raise ClusterError(f"pg_ctl start failed: {start.stderr.strip()} {log[-500:]}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if datadir.exists():
            pg(str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(workdir, ignore_errors=True)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
