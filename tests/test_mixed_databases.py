"""Issue 15's proof: one Flask host whose plugins live in a bind, in a PostgreSQL schema, and in the default database.

The demo host (six plain plugins), plus ``audit`` in the bind "audit"
(depending on network: the order crosses databases, no foreign key does),
``ledger`` in the schema plugin_ledger (a foreign key into the core's
``sites``), and ``ledger_notes``, a plain plugin with a foreign key into the
schema. On SQLite (two files; the schema mapped into the main database) and
on PostgreSQL (two databases), through ``python -m`` and ``flask plugin``,
every plugin migrates, checks and downgrades, and each table is reflected
where it belongs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from .helpers import Database, Host, copy_plugin, sync_registry
from .test_binds import APP_WITH_BINDS, AUDIT_MODELS, DEFAULT_PLUGINS, flask_door, python_door
from .test_databases import UNREACHABLE
from .test_plugin_schemas import LEDGER_MODELS, NOTES_MODELS, SCHEMA, tables_in

PLUGINS = [*DEFAULT_PLUGINS, "audit", "ledger", "ledger_notes"]
DOORS = [pytest.param(python_door, id="python-m"), pytest.param(flask_door, id="flask")]


@pytest.fixture(scope="module")
def mixed_host_template(demo_host_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo host plus audit (bind), ledger (schema) and ledger_notes (plain, into the schema); copy it."""
    root = tmp_path_factory.mktemp("mixed-host") / "host"
    shutil.copytree(demo_host_template, root, symlinks=True)
    for name, models in (("audit", AUDIT_MODELS.format(fk="")), ("ledger", LEDGER_MODELS), ("ledger_notes", NOTES_MODELS)):
        (root / "plugins" / name).mkdir()
        (root / "plugins" / name / "models.py").write_text(models)
    for answers in (
        {"plugin_name": "audit", "tables": ["audit_events"], "depends_on": ["network"], "bind": "audit"},
        {"plugin_name": "ledger", "tables": ["ledger_entries"], "schema": SCHEMA},
        {"plugin_name": "ledger_notes", "tables": ["ledger_notes"], "depends_on": ["ledger"]},
    ):
        result = copy_plugin(root, **answers)
        assert result.returncode == 0, result.stderr
    sync_registry(root)
    (root / "shopapp" / "__init__.py").write_text(APP_WITH_BINDS)
    return root


@pytest.fixture
def host(mixed_host_template: Path, tmp_path: Path, new_database) -> tuple[Host, Database]:
    """A private copy, with the default database (holding the core's sites) and audit's, both empty of plugins."""
    root = tmp_path / "host"
    shutil.copytree(mixed_host_template, root, symlinks=True)
    app = Host(root, database=new_database())
    app.create_all(tables=["sites"])  # the core app's own migrations made its tables
    return app, new_database()


def placed(app: Host, audit: Database) -> dict[str, set[str]]:
    """Where the plugin tables and version tables are: "default", "schema" (PostgreSQL's plugin_ledger), "audit"."""
    in_default = tables_in(app.database.url)
    return {
        "default": in_default[None] - {"sites"},
        "schema": in_default.get(SCHEMA, set()),
        "audit": audit.tables(),
    }


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("door", DOORS)
def test_a_bound_a_schema_and_plain_plugins_migrate_check_and_downgrade_together(host, door) -> None:
    app, audit = host
    postgresql = app.database.backend == "postgresql"
    outcomes = json.loads(ok(door(app, audit, "upgrade-all", "--json")))
    assert {name: result["status"] for name, result in outcomes.items()} == dict.fromkeys(PLUGINS, "installed")

    ledger = {"ledger_entries", "alembic_version_ledger"}
    everywhere = placed(app, audit)
    assert everywhere["audit"] == {"audit_events", "alembic_version_audit"}
    assert {"ledger_notes", "alembic_version_ledger_notes", "network_devices", "alembic_version_network"} <= everywhere["default"]
    assert not {"audit_events", "alembic_version_audit"} & everywhere["default"]
    if postgresql:  # in its schema; on SQLite, the schema is the main database
        assert everywhere["schema"] == ledger and not ledger & everywhere["default"]
    else:
        assert everywhere["schema"] == set() and ledger <= everywhere["default"]

    statuses = json.loads(ok(door(app, audit, "status", "--json")))
    assert {row["name"]: (row["current"], row["pending"]) for row in statuses} == {
        name: (f"0001_baseline_{name}", []) for name in PLUGINS
    }
    assert "9 current" in ok(door(app, audit, "upgrade-all"))
    ok(door(app, audit, "check"))
    ok(door(app, audit, "check", "--database-url", app.database.url))

    entries = f"{SCHEMA}.ledger_entries" if postgresql else "ledger_entries"
    app.database.execute("INSERT INTO sites (id, name) VALUES (1, 'hq')")
    app.database.execute(f"INSERT INTO {entries} (id, site_id, amount) VALUES (1, 1, 100)")
    app.database.execute("INSERT INTO ledger_notes (id, entry_id, text) VALUES (1, 1, 'paid')")

    # The schema plugin cannot go while a plain plugin's table points into it; once that one is gone, it can,
    # and its schema goes with it. Nothing of the other plugins moves, in either database.
    refused = door(app, audit, "downgrade", "ledger", "base", "--yes")
    assert refused.returncode == 1 and "ledger_notes" in refused.stderr, refused.stderr
    ok(door(app, audit, "downgrade", "ledger_notes", "base", "--yes"))
    ok(door(app, audit, "downgrade", "ledger", "base", "--yes"))
    after = placed(app, audit)
    assert "ledger_entries" not in after["default"] | after["schema"] and "ledger_notes" not in after["default"]
    if postgresql:
        assert SCHEMA not in tables_in(app.database.url), "the emptied schema was kept"
    assert after["audit"] == everywhere["audit"]
    assert after["default"] >= everywhere["default"] - ledger - {"ledger_notes"}

    ok(door(app, audit, "downgrade", "audit", "base", "--yes"))
    assert audit.tables() == {"alembic_version_audit"} and audit.version_of("audit") == []
    assert placed(app, audit)["default"] == after["default"]

    again = json.loads(ok(door(app, audit, "upgrade-all", "--json")))
    assert {name for name, result in again.items() if result["status"] == "installed"} == {"audit", "ledger", "ledger_notes"}
    assert {result["status"] for name, result in again.items() if name in DEFAULT_PLUGINS} == {"current"}
    assert placed(app, audit) == everywhere
    ok(door(app, audit, "check", "--database-url", app.database.url))


def test_the_same_host_over_several_databases(host, new_database) -> None:
    app, audit = host
    sites = [new_database(), new_database()]
    for site in sites:
        app.create_all(site.url, tables=["sites"])
    urls = [site.url for site in sites] + [UNREACHABLE[app.database.backend]]
    args = [arg for url in urls for arg in ("--database-url", url)]

    # A bind's database is one per process: several sites would share it, so the run is refused, touching none.
    refused = python_door(app, audit, "upgrade-all", *args)
    assert refused.returncode == 1
    assert "plugins use binds (audit)" in refused.stderr and "run one database at a time" in refused.stderr
    assert [site.tables() for site in sites] == [{"sites"}, {"sites"}]

    # Without the bound plugin, the fleet runs: each site on its own, the unreachable one reported, exit 1.
    ok(python_door(app, audit, "remove", "audit", "--yes"))
    fleet = python_door(app, None, "upgrade-all", "--jobs", "2", "--json", *args)
    assert fleet.returncode == 1, fleet.stdout + fleet.stderr
    runs = json.loads(fleet.stdout)
    assert len(runs) == 3 and "error" in list(runs.values())[2]
    for site, run in zip(sites, list(runs.values())[:2], strict=True):
        assert {name: result["status"] for name, result in run.items()} == dict.fromkeys(
            [name for name in PLUGINS if name != "audit"], "installed"
        )
        if site.backend == "postgresql":
            assert tables_in(site.url)[SCHEMA] == {"ledger_entries", "alembic_version_ledger"}
        engine = sa.create_engine(site.url, poolclass=sa.pool.NullPool)
        try:
            assert "audit_events" not in sa.inspect(engine).get_table_names()
        finally:
            engine.dispose()


def test_a_new_database_from_the_models_puts_each_table_where_the_revisions_do(host, new_database) -> None:
    app, audit = host
    ok(python_door(app, audit, "upgrade-all"))
    by_revisions = placed(app, audit)
    app.database, audit = new_database(), new_database()
    app.create_all(tables=["sites"])
    outcomes = json.loads(ok(python_door(app, audit, "upgrade-all", "--install-from-models", "--json")))
    assert {name: result["status"] for name, result in outcomes.items()} == dict.fromkeys(PLUGINS, "installed")
    assert placed(app, audit) == by_revisions
    assert audit.version_of("audit") == ["0001_baseline_audit"]
    ok(python_door(app, audit, "check", "--database-url", app.database.url))
