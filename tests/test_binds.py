"""Binds: a plugin whose models use a Flask-SQLAlchemy bind keeps its tables and version table in that database.

The host is the demo (six plugins in the default database) plus ``audit``,
bound to "audit" and depending on ``network``. Each test reflects both
databases to show what landed where, through both doors: ``python -m
shopapp.plugins`` with DATABASE_URL_AUDIT, and ``flask plugin`` with the
app's SQLALCHEMY_BINDS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from .helpers import Database, Host, copy_plugin, run, sync_registry

DEFAULT_PLUGINS = ["equipment", "network", "notifications", "computers", "printers", "usb"]

AUDIT_MODELS = '''\
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.models import db


class AuditEvent(db.Model):
    __tablename__ = "audit_events"
    __bind_key__ = "audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    # network_devices.id, in the default database: no foreign key can cross databases.
    device_id: Mapped[int | None] = mapped_column({fk}index=True)
    message: Mapped[str] = mapped_column(sa.String(200))
'''

# The demo's factory, with the binds a deployment would configure (a dict with "url", as Flask-SQLAlchemy allows).
APP_WITH_BINDS = '''\
import json
import os

from flask import Flask

from .extensions import db


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["SHOPAPP_DATABASE_URI"]
    app.config["SQLALCHEMY_BINDS"] = json.loads(os.environ.get("SHOPAPP_BINDS", "{}"))
    db.init_app(app)

    from . import models  # noqa: F401
    from .plugins import init_app

    init_app(app)
    return app
'''


@pytest.fixture(scope="session")
def bound_host_template(demo_host_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo host plus the plugin ``audit`` in the bind "audit", built once; copy it, don't change it."""
    root = tmp_path_factory.mktemp("bound-host") / "host"
    shutil.copytree(demo_host_template, root, symlinks=True)
    (root / "plugins" / "audit").mkdir()
    (root / "plugins" / "audit" / "models.py").write_text(AUDIT_MODELS.format(fk=""))
    result = copy_plugin(root, plugin_name="audit", tables=["audit_events"], depends_on=["network"], bind="audit")
    assert result.returncode == 0, result.stderr
    sync_registry(root)
    (root / "shopapp" / "__init__.py").write_text(APP_WITH_BINDS)
    return root


@pytest.fixture
def host(bound_host_template: Path, tmp_path: Path, new_database) -> tuple[Host, Database]:
    """A private copy of the bound host, with two empty databases on one backend: the default one and audit's."""
    root = tmp_path / "host"
    shutil.copytree(bound_host_template, root, symlinks=True)
    return Host(root, database=new_database()), new_database()


def python_door(host: Host, audit: Database | None, *args: str) -> subprocess.CompletedProcess:
    """`python -m shopapp.plugins ARGS`, audit's database from DATABASE_URL_AUDIT (unset when None)."""
    env = {"DATABASE_URL": host.database.url, "DATABASE_URL_AUDIT": audit.url if audit else ""}
    return run([sys.executable, "-m", host.runtime, *args], host.root, env)


def flask_door(host: Host, audit: Database, *args: str) -> subprocess.CompletedProcess:
    """`flask plugin ARGS`, both databases from the app's configuration (no DATABASE_URL*)."""
    binds = json.dumps({"audit": {"url": audit.url}})
    return host.flask_cli(*args, env={"SHOPAPP_DATABASE_URI": host.database.url, "SHOPAPP_BINDS": binds})


def assert_only_default_plugins(database: Database) -> None:
    tables = database.tables()
    assert "audit_events" not in tables and "alembic_version_audit" not in tables
    assert {"network_devices", "alembic_version_network", "usb_devices"} <= tables


Door = Callable[[Host, Database, str], subprocess.CompletedProcess]
DOORS = [pytest.param(python_door, id="python-m"), pytest.param(flask_door, id="flask")]


@pytest.mark.parametrize("door", DOORS)
def test_a_bound_plugin_migrates_checks_downgrades_and_goes_in_its_own_database(host, door: Door) -> None:
    app, audit = host
    upgraded = door(app, audit, "upgrade-all", "--json")
    assert upgraded.returncode == 0, upgraded.stderr
    assert {name: result["status"] for name, result in json.loads(upgraded.stdout).items()} == {
        **dict.fromkeys(DEFAULT_PLUGINS, "installed"), "audit": "installed"
    }
    assert_only_default_plugins(app.database)
    assert audit.tables() == {"audit_events", "alembic_version_audit"}
    assert audit.version_of("audit") == ["0001_baseline_audit"]

    status = door(app, audit, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert {plugin["name"]: plugin["current"] for plugin in json.loads(status.stdout)} == {
        name: f"0001_baseline_{name}" for name in [*DEFAULT_PLUGINS, "audit"]
    }
    assert door(app, audit, "history", "audit").returncode == 0
    again = door(app, audit, "upgrade-all")
    assert again.returncode == 0 and "7 current" in again.stdout, again.stdout + again.stderr

    checked = door(app, audit, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    preview = door(app, audit, "downgrade", "audit", "base", "--sql")
    assert preview.returncode == 0 and "DROP TABLE audit_events" in preview.stdout, preview.stdout + preview.stderr
    down = door(app, audit, "downgrade", "audit", "base", "--yes")
    assert down.returncode == 0, down.stderr
    assert "audit_events" not in audit.tables() and audit.version_of("audit") == []
    assert_only_default_plugins(app.database)

    removed = door(app, audit, "remove", "audit", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert audit.tables() == set()
    assert_only_default_plugins(app.database)


def test_autogenerate_and_plain_alembic_use_the_bind(host) -> None:
    app, audit = host
    models = app.root / "plugins" / "audit" / "models.py"
    models.write_text(AUDIT_MODELS.format(fk="") + "    level: Mapped[int | None]\n")
    ini = "plugins/audit/migrations/alembic.ini"
    baseline = run([sys.executable, "-m", "alembic", "-c", ini, "upgrade", "head"], app.root,
                   {"DATABASE_URL": app.database.url, "DATABASE_URL_AUDIT": audit.url})
    assert baseline.returncode == 0, baseline.stderr
    assert audit.tables() == {"audit_events", "alembic_version_audit"} and app.database.tables() == set()

    written = python_door(app, audit, "revision", "audit", "-m", "event level", "--autogenerate")
    assert written.returncode == 0, written.stderr
    assert "level" in written.stdout + written.stderr
    upgraded = python_door(app, audit, "upgrade-all", "--json")
    assert upgraded.returncode == 0, upgraded.stderr
    assert json.loads(upgraded.stdout)["audit"]["status"] == "upgraded"
    assert "level" in reflected_columns(audit, "audit_events")


def reflected_columns(database: Database, table: str) -> set[str]:
    engine = sa.create_engine(database.url, poolclass=sa.pool.NullPool)
    try:
        return {column["name"] for column in sa.inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def test_existing_tables_in_the_bind_database_are_adopted(host) -> None:
    app, audit = host
    create_all = (
        "import os, sqlalchemy as sa\n"
        "from shopapp.plugins.metadata import load_metadata\n"
        "load_metadata(None, 'audit').create_all(sa.create_engine(os.environ['DATABASE_URL_AUDIT']))\n"
    )
    made = run([sys.executable, "-c", create_all], app.root, {"DATABASE_URL_AUDIT": audit.url})
    assert made.returncode == 0, made.stderr
    upgraded = python_door(app, audit, "upgrade-all", "--json")
    assert upgraded.returncode == 0, upgraded.stderr
    assert json.loads(upgraded.stdout)["audit"]["status"] == "adopted"
    assert audit.version_of("audit") == ["0001_baseline_audit"]
    assert_only_default_plugins(app.database)


def test_the_sql_of_an_upgrade_names_the_bind_and_changes_nothing(host) -> None:
    app, audit = host
    preview = python_door(app, audit, "upgrade-all", "--sql")
    assert preview.returncode == 0, preview.stderr
    head, _, bound = preview.stdout.partition('-- bind "audit": ')
    assert "CREATE TABLE network_devices" in head and "audit_events" not in head
    assert "CREATE TABLE audit_events" in bound and "network_devices" not in bound.split("\n", 1)[1]
    assert app.database.tables() == set() and audit.tables() == set()


def test_a_bind_without_a_database_is_refused_before_anything_changes(host) -> None:
    app, audit = host
    for command in (["upgrade-all"], ["status"], ["downgrade", "audit", "base", "--yes"]):
        refused = python_door(app, None, *command)
        assert refused.returncode == 1
        assert refused.stderr.strip() == (
            'Error: bind "audit" has no database: set DATABASE_URL_AUDIT, or give the Flask app '
            'SQLALCHEMY_BINDS["audit"]; nothing was changed'
        ), command
    assert app.database.tables() == set()


def test_a_failed_dependency_in_the_default_database_skips_the_bound_plugin(host) -> None:
    app, audit = host
    app.database.execute("CREATE TABLE subnets (id INTEGER PRIMARY KEY)")  # half of network's tables: refused
    upgraded = python_door(app, audit, "upgrade-all", "--json")
    assert upgraded.returncode == 1
    results = json.loads(upgraded.stdout)
    assert results["network"]["status"] == "failed"
    assert results["audit"] == {**results["audit"], "status": "skipped", "error": 'dependency "network" did not upgrade'}
    assert results["equipment"]["status"] == "installed"
    assert audit.tables() == set()


def test_check_reports_a_foreign_key_that_crosses_databases(host) -> None:
    app, audit = host
    models = app.root / "plugins" / "audit" / "models.py"
    models.write_text(AUDIT_MODELS.format(fk='sa.ForeignKey("network_devices.id"), '))
    checked = python_door(app, audit, "check")
    assert checked.returncode == 1
    assert (
        'table "audit_events" (bind "audit") has a foreign key into "network_devices" (the default database): '
        "a foreign key cannot cross databases; drop the foreign key (keep the plain column), or keep both tables "
        "in one database"
    ) in checked.stdout + checked.stderr


def test_several_database_urls_are_refused_while_a_plugin_uses_a_bind(host, new_database) -> None:
    app, audit = host
    other = new_database()
    refused = python_door(app, audit, "upgrade-all", "--database-url", app.database.url, "--database-url", other.url)
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: --database-url names several databases, but plugins use binds (audit)")
    through_python = run(
        [sys.executable, "-c", f"from shopapp.plugins.fleet import upgrade_many; upgrade_many({[app.database.url, other.url]!r})"],
        app.root, {"DATABASE_URL_AUDIT": audit.url},
    )
    assert "--database-url names several databases, but plugins use binds (audit)" in through_python.stderr
    assert app.database.tables() == set() and other.tables() == set() and audit.tables() == set()


def test_one_database_url_is_the_default_database_and_the_bind_keeps_its_own(host, new_database) -> None:
    app, audit = host
    other = new_database()
    upgraded = python_door(app, audit, "upgrade-all", "--database-url", other.url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert_only_default_plugins(other)
    assert app.database.tables() == set()
    assert audit.tables() == {"audit_events", "alembic_version_audit"}


@pytest.mark.parametrize("bind", ["audit-log", "9audit", "a b"])
def test_copier_refuses_a_bind_that_is_not_an_identifier(bound_host_template: Path, tmp_path: Path, bind: str) -> None:
    root = tmp_path / "host"
    shutil.copytree(bound_host_template, root, symlinks=True)
    result = copy_plugin(root, plugin_name="ledger", tables=["ledger_entries"], bind=bind)
    assert result.returncode != 0
    assert (
        f"'{bind}' is not a valid bind key: use letters, digits and _, starting with a letter or _ "
        f"(it also names DATABASE_URL_<BIND>)."
    ) in result.stderr
    assert not (root / "plugins" / "ledger").exists()


def test_the_bind_is_rendered_into_the_declaration_and_the_index(bound_host_template: Path) -> None:
    host = Host(bound_host_template)
    assert json.loads(host.declaration_path("audit").read_text())["bind"] == "audit"
    assert host.registry()["plugins"]["audit"] == {"tables": ["audit_events"], "depends_on": ["network"], "bind": "audit"}
    assert "bind" not in json.loads(host.declaration_path("network").read_text())
