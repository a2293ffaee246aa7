#!/usr/bin/env python3
"""Developer entry point: the two Quick start commands.

    python3 dev.py demo          build the demo host in build/demo and migrate it
    python3 dev.py test [ARGS]   run the whole test suite, one worker per core (ARGS go to pytest; -n 0 for one process)
    python3 dev.py examples      regenerate examples/demo-host after a template change
    python3 dev.py bench [ARGS]  run the benchmarks (ARGS: --quick, --only GROUP, --runs N, --json FILE)

Both first make .venv/ with exactly the versions pinned in requirements.txt
(installed again when that file changes, made anew when another interpreter
runs dev.py), so a fresh clone needs nothing but Python 3.11+.

`test` runs every database test on SQLite and on PostgreSQL, and `bench`
measures on both. Each starts a throwaway PostgreSQL server for the run
(installing Debian's postgresql package first if it is missing and this runs
as root) and stops it at the end; set PLUGIN_MIGRATIONS_TEST_PG_URL=postgresql+psycopg://user@host/db to
use an existing server instead (the tests and benchmarks create and drop
their own databases on it).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# DEV_VENV: another folder, so that .ci/run can keep one environment per interpreter.
VENV = ROOT / os.environ.get("DEV_VENV", ".venv")
REQUIREMENTS = ROOT / "requirements.txt"
STAMP = VENV / "requirements.sha256"
PG_URL_VARIABLE = "PLUGIN_MIGRATIONS_TEST_PG_URL"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def venv_stamp(requirements: bytes, interpreter: str) -> str:
    """What .venv's stamp file holds when the venv matches these requirements and this interpreter."""
    return f"{interpreter}\n{hashlib.sha256(requirements).hexdigest()}\n"


def venv_action(recorded: str, wanted: str) -> str:
    """"keep" the venv, "install" the requirements into it, or "recreate" it (another interpreter made it)."""
    if recorded == wanted:
        return "keep"
    return "install" if recorded.splitlines()[:1] == wanted.splitlines()[:1] else "recreate"


def ensure_venv() -> Path:
    """Create .venv and install requirements.txt into it unless already in step with both it and this Python."""
    wanted = venv_stamp(REQUIREMENTS.read_bytes(), f"{sys.executable} {sys.version}".replace("\n", " "))
    action = venv_action(STAMP.read_text() if STAMP.is_file() else "", wanted)
    if action == "keep" and venv_python().is_file():
        return venv_python()
    print(f"dev.py: installing {REQUIREMENTS.name} into {VENV.name}/ for Python {sys.version.split()[0]} ...", flush=True)
    if action == "recreate" or not venv_python().is_file():
        # A venv made by another interpreter is made anew: its packages were built for that one.
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    subprocess.run(
        [str(venv_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
        check=True,
    )
    STAMP.write_text(wanted)
    return venv_python()


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):
        print(f"dev.py: Python 3.11 or newer is needed, this is {sys.version.split()[0]}", file=sys.stderr)
        return 1
    if not argv or argv[0] not in ("demo", "test", "examples", "bench"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    python = str(ensure_venv())
    if argv[0] == "demo":
        return subprocess.run([python, str(ROOT / "demo" / "run.py"), *argv[1:]], cwd=ROOT).returncode
    if argv[0] == "examples":
        return subprocess.run([python, str(ROOT / "demo" / "run.py"), "--example"], cwd=ROOT).returncode
    if argv[0] == "bench":
        return with_postgresql([python, str(ROOT / "bench" / "run.py"), *argv[1:]], required=True)
    # One pytest-xdist worker per core unless told otherwise: the suite is mostly real Copier runs and
    # real databases in subprocesses, and halves its time on two cores.
    workers = [] if any(arg == "-n" or arg.startswith(("-n", "--numprocesses")) for arg in argv[1:]) else ["-n", "auto"]
    return with_postgresql([python, "-m", "pytest", *workers, *argv[1:]], required=os.environ.get("CI") == "true")


def with_postgresql(command: list[str], required: bool) -> int:
    """Run command with PLUGIN_MIGRATIONS_TEST_PG_URL set, starting a throwaway server unless it is.

    Without a server: fail if required, else run anyway (the PostgreSQL tests skip).
    """
    if os.environ.get(PG_URL_VARIABLE):
        return subprocess.run(command, cwd=ROOT).returncode
    sys.path.insert(0, str(ROOT))
    from tests.pgcluster import ClusterError, throwaway_cluster

    try:
        with throwaway_cluster() as url:
            print(f"dev.py: PostgreSQL at {url}", flush=True)
            return subprocess.run(command, cwd=ROOT, env={**os.environ, PG_URL_VARIABLE: url}).returncode
    except ClusterError as error:
        if required:
            print(f"dev.py: {error}", file=sys.stderr)
            return 1
        print(f"dev.py: {error}; PostgreSQL tests will be skipped", file=sys.stderr)
        return subprocess.run(command, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
