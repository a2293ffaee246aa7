"""Issue 15's proof: one Flask host whose plugins live in a bind, in a PostgreSQL schema, and in the default database.

The demo host (six plain plugins), plus ``audit`` in the bind "audit"
(depending on network: the order crosses databases, no foreign key does),
``ledger`` in the schema plugin_ledger (a foreign key into the core's
``sites``), ``ledger_notes``, a plain plugin with a foreign key into the
schema, ``journal`` in the schema plugin_journal with a foreign key out of it
into network's ``network_devices``, and ``vault``, both bound to "audit" and
in the schema plugin_vault there, with a foreign key into ``audit_events``. On SQLite (two files; the schema mapped into the main database) and
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

PLUGINS = [*DEFAULT_PLUGINS, "audit", "ledger", "ledger_notes", "journal", "vault"]
ADDED = set(PLUGINS) - set(DEFAULT_PLUGINS)

# plugin -> (its database, its schema, its tables); on SQLite a schema is its database's main one.
HOMES = {
    "network": ("default", None, {"network_devices", "subnets"}),
    "audit": ("audit", None, {"audit_events"}),
    "ledger": ("default", SCHEMA, {"ledger_entries"}),
    "ledger_notes": ("default", None, {"ledger_notes"}),
    "journal": ("default", "plugin_journal", {"journal_lines"}),
    "vault": ("audit", "plugin_vault", {"vault_secrets"}),
}

JOURNAL_MODELS = '''from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.extensions import db


class JournalLine(db.Model):
    __tablename__ = "journal_lines"
    __table_args__ = {"schema": "plugin_journal"}

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("network_devices.id"))
'''

VAULT_MODELS = '''from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.extensions import db


class VaultSecret(db.Model):
    __tablename__ = "vault_secrets"
    __bind_key__ = "audit"
    __table_args__ = {"schema": "plugin_vault"}

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("audit_events.id"))
'''
DOORS = [pytest.param(python_door, id="python-m"), pytest.param(flask_door, id="flask")]


@pytest.fixture(scope="module")
def mixed_host_template(demo_host_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo host plus audit (bind), ledger (schema) and ledger_notes (plain, into the schema); copy it."""
    root = tmp_path_factory.mktemp("mixed-host") / "host"
    shutil.copytree(demo_host_template, root, symlinks=True)
    models_of = {
        "audit": AUDIT_MODELS.format(fk=""),
        "ledger": LEDGER_MODELS,
        "ledger_notes": NOTES_MODELS,
        "journal": JOURNAL_MODELS,
        "vault": VAULT_MODELS,
    }
    for name, models in models_of.items():
        (root / "plugins" / name).mkdir()
        (root / "plugins" / name / "models.py").write_text(models)
    for answers in (
        {"plugin_name": "audit", "tables": ["audit_events"], "depends_on": ["network"], "bind": "audit"},
        {"plugin_name": "ledger", "tables": ["ledger_entries"], "schema": SCHEMA},
        {"plugin_name": "ledger_notes", "tables": ["ledger_notes"], "depends_on": ["ledger"]},
        {"plugin_name": "journal", "tables": ["journal_lines"], "depends_on": ["network"], "schema": "plugin_journal"},
        {"plugin_name": "vault", "tables": ["vault_secrets"], "depends_on": ["audit"], "bind": "audit", "schema": "plugin_vault"},
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
    """Every table but the core's, by place: "default", "audit", and "default.SCHEMA"/"audit.SCHEMA" on PostgreSQL."""
    return {
        database if schema is None else f"{database}.{schema}": tables - {"sites"}
        for database, url in (("default", app.database.url), ("audit", audit.url))
        for schema, tables in tables_in(url).items()
    }


def assert_at_home(where: dict[str, set[str]], postgresql: bool, plugins: set[str]) -> None:
    """Each plugin's tables and version table are in its own place (its schema on PostgreSQL) and nowhere else."""
    for plugin in plugins:
        database, schema, tables = HOMES[plugin]
        home = f"{database}.{schema}" if schema and postgresql else database
        mine = tables | {f"alembic_version_{plugin}"}
        assert mine <= where.get(home, set()), (plugin, home, where)
        assert not [place for place, found in where.items() if place != home and mine & found], (plugin, where)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("door", DOORS)
def test_a_bound_a_schema_and_plain_plugins_migrate_check_and_downgrade_together(host, door) -> None:
    app, audit = host
    postgresql = app.database.backend == "postgresql"
    outcomes = json.loads(ok(door(app, audit, "upgrade-all", "--json")))
    assert {name: result["status"] for name, result in outcomes.items()} == dict.fromkeys(PLUGINS, "installed")
    everywhere = placed(app, audit)
    assert_at_home(everywhere, postgresql, set(HOMES))
    if postgresql:  # one schema per schema plugin, in its own database
        assert {place for place in everywhere if "." in place} >= {f"default.{SCHEMA}", "default.plugin_journal", "audit.plugin_vault"}

    statuses = json.loads(ok(door(app, audit, "status", "--json")))
    assert {row["name"]: (row["current"], row["pending"]) for row in statuses} == {
        name: (f"0001_baseline_{name}", []) for name in PLUGINS
    }
    assert f"{len(PLUGINS)} current" in ok(door(app, audit, "upgrade-all"))
    ok(door(app, audit, "check"))
    ok(door(app, audit, "check", "--database-url", app.database.url))
    # A bound plugin is read in its own database: a column added there by hand is drift, named with that database.
    audit.execute("ALTER TABLE audit_events ADD COLUMN by_hand INTEGER")
    drifted = door(app, audit, "check", "--database-url", app.database.url)
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    [finding] = [line for line in (drifted.stdout + drifted.stderr).splitlines() if "by_hand" in line]
    assert finding.lstrip("- ").startswith('plugin "audit": the database ') and audit.url.rsplit("/", 1)[1] in finding, finding
    audit.execute("ALTER TABLE audit_events DROP COLUMN by_hand")

    def qualified(table: str, schema: str) -> str:
        return f"{schema}.{table}" if postgresql else table

    app.database.execute("INSERT INTO sites (id, name) VALUES (1, 'hq')")
    app.database.execute(f"INSERT INTO {qualified('ledger_entries', SCHEMA)} (id, site_id, amount) VALUES (1, 1, 100)")
    app.database.execute("INSERT INTO ledger_notes (id, entry_id, text) VALUES (1, 1, 'paid')")
    app.database.execute("INSERT INTO subnets (id, cidr) VALUES (1, '10.0.0.0/24')")
    app.database.execute("INSERT INTO network_devices (id, hostname, subnet_id) VALUES (1, 'gw', 1)")
    app.database.execute(f"INSERT INTO {qualified('journal_lines', 'plugin_journal')} (id, device_id) VALUES (1, 1)")
    audit.execute("INSERT INTO audit_events (id, device_id, message) VALUES (1, 1, 'login')")
    audit.execute(f"INSERT INTO {qualified('vault_secrets', 'plugin_vault')} (id, event_id) VALUES (1, 1)")

    # A plugin cannot go while a plugin that depends on it is installed (here a foreign key points into its schema,
    # out of a schema into it, or across schemas of the bind); once those are gone, it can, and its schema goes
    # with it. Nothing of the other plugins moves, in either database.
    for plugin, dependent in (("ledger", "ledger_notes"), ("network", "journal"), ("audit", "vault")):
        refused = door(app, audit, "downgrade", plugin, "base", "--yes")
        assert refused.returncode == 1 and dependent in refused.stderr, refused.stdout + refused.stderr
    assert placed(app, audit) == everywhere
    gone = ("ledger_notes", "ledger", "journal", "vault")
    for plugin in gone:
        ok(door(app, audit, "downgrade", plugin, "base", "--yes"))
        after = placed(app, audit)
        database, schema, tables = HOMES[plugin]
        assert not [place for place, found in after.items() if tables & found], (plugin, after)
        if postgresql and schema:
            assert f"{database}.{schema}" not in after, f"the emptied schema {schema} was kept"
    assert_at_home(after, postgresql, {"network", "audit"})
    theirs = {table for plugin in gone for table in HOMES[plugin][2] | {f"alembic_version_{plugin}"}}
    assert after["default"] >= everywhere["default"] - theirs
    assert app.database.execute("SELECT hostname FROM network_devices") == [("gw",)]

    ok(door(app, audit, "downgrade", "audit", "base", "--yes"))
    assert not {"audit_events", "vault_secrets"} & audit.tables() and audit.version_of("audit") == []
    assert placed(app, audit)["default"] == after["default"]

    again = json.loads(ok(door(app, audit, "upgrade-all", "--json")))
    assert {name for name, result in again.items() if result["status"] == "installed"} == ADDED
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

    # Without the bound plugins, the fleet runs: each site on its own, the unreachable one reported, exit 1.
    ok(python_door(app, audit, "remove", "vault", "--yes"))
    ok(python_door(app, audit, "remove", "audit", "--yes"))
    fleet = python_door(app, None, "upgrade-all", "--jobs", "2", "--json", *args)
    assert fleet.returncode == 1, fleet.stdout + fleet.stderr
    runs = json.loads(fleet.stdout)
    assert len(runs) == 3 and "error" in list(runs.values())[2]
    for site, run in zip(sites, list(runs.values())[:2], strict=True):
        assert {name: result["status"] for name, result in run.items()} == dict.fromkeys(
            [name for name in PLUGINS if name not in ("audit", "vault")], "installed"
        )
        if site.backend == "postgresql":
            assert tables_in(site.url)[SCHEMA] == {"ledger_entries", "alembic_version_ledger"}
            assert tables_in(site.url)["plugin_journal"] == {"journal_lines", "alembic_version_journal"}
        engine = sa.create_engine(site.url, poolclass=sa.pool.NullPool)
        try:
            assert not {"audit_events", "vault_secrets"} & set(sa.inspect(engine).get_table_names())
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
