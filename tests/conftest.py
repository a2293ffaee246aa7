"""Shared fixtures: real Copier runs into real git repositories, real Alembic, real SQLite.

The plain helpers they use live in helpers.py.
"""

from __future__ import annotations

import re
import shutil
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from demo.run import build_host

from .helpers import TEMPLATE, Database, Host, require_postgresql, run, skip_unless_ci, snapshot_template

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def new_database(request: pytest.FixtureRequest, tmp_path: Path):
    """Make empty databases on one backend: SQLite files, or new PostgreSQL databases dropped afterwards.

    Without a PostgreSQL server the PostgreSQL cases skip, except under
    CI=true, where they fail: CI must run every database test.
    """
    if request.param == "sqlite":
        counter = iter(range(1000))
        yield lambda: Database(f"sqlite:///{tmp_path / f'db{next(counter)}.sqlite3'}")
        return
    admin = sa.create_engine(require_postgresql(), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    created: list[str] = []

    def make() -> Database:
        name = f"test_{uuid.uuid4().hex[:16]}"
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        created.append(name)
        return Database(sa.make_url(admin.url).set(database=name).render_as_string(hide_password=False))

    try:
        yield make
    finally:
        with admin.connect() as connection:
            for name in created:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def database(new_database) -> Database:
    """One empty database on each backend."""
    return new_database()


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway git copy of this template as it is on disk now, committed and tagged v1.0.0.

    Copier records the template commit in each answers file and `copier
    update` needs it again later, which a working tree with uncommitted edits
    cannot give; this copy can.
    """
    return snapshot_template(TEMPLATE, tmp_path_factory.mktemp("template-repo"), "v1.0.0")


@pytest.fixture(scope="session")
def demo_host_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Quick start demo's host (six plugins), built once; copy it, don't change it."""
    root = tmp_path_factory.mktemp("demo-host")
    build_host(root, TEMPLATE, quiet=True)
    return root


@pytest.fixture
def demo_host(demo_host_template: Path, tmp_path: Path, database: Database) -> Host:
    """A private copy of the demo host for one test, with an empty database on each backend."""
    root = tmp_path / "host"
    shutil.copytree(demo_host_template, root, symlinks=True)
    return Host(root, database=database)


@pytest.fixture(scope="session")
def next_pytest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the pytest that requirements.txt names after `# also-tested:`, for PYTHONPATH.

    It is installed there with its own dependencies, never into .venv, from
    the package index pip is set up for; without one the tests that need it
    skip (fail under CI=true).
    """
    [pin] = re.findall(r"^# also-tested: (pytest==\S+)$", (TEMPLATE / "requirements.txt").read_text(), re.MULTILINE)
    target = tmp_path_factory.mktemp("pytest-9")
    installed = run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                     "--target", str(target), pin], TEMPLATE)
    if installed.returncode:
        skip_unless_ci(f"cannot install {pin}: {installed.stderr.strip()[-300:]}")
    return target
