"""End to end: the demo host's own commands, through every door, on a real SQLite database."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from demo.run import PLUGINS

from .helpers import Database, Host, run

ALL_TABLES = {table for _, tables, _ in PLUGINS for table in tables}
DEPENDENCIES = {name: depends_on for name, _, depends_on in PLUGINS}


def status_json(host: Host, **kwargs: str) -> dict[str, dict]:
    result = host.plugin_cli("status", "--json", **kwargs)
    assert result.returncode == 0, result.stderr
    return {plugin["name"]: plugin for plugin in json.loads(result.stdout)}


def test_upgrade_all_migrates_every_plugin_once_then_reports_current(demo_host: Host) -> None:
    before = status_json(demo_host)
    assert {name: (s["current"], len(s["pending"])) for name, s in before.items()} == {
        name: (None, 1) for name in DEPENDENCIES
    }

    first = demo_host.plugin_cli("upgrade-all")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == "6 plugins: 6 installed"
    assert "network        installed  installed at 0001_baseline_network" in first.stdout

    database = demo_host.database
    assert database.tables() == ALL_TABLES | {f"alembic_version_{name}" for name in DEPENDENCIES}, (
        "a plugin chain created a core table, or missed one of its own"
    )
    for name in DEPENDENCIES:
        assert database.version_of(name) == [f"0001_baseline_{name}"]

    second = demo_host.plugin_cli("upgrade-all")
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1] == "6 plugins: 6 current"
    assert all(s["current"] == s["head"] and not s["pending"] for s in status_json(demo_host).values())


READ_VERSIONS_BOTH_WAYS = """
import json
from alembic.runtime.migration import MigrationContext
from shopapp.plugins import PluginManager, versions
versions.SELECTS_PER_QUERY = 2  # several UNION queries even for six plugins
manager = PluginManager()
with manager.database.connect() as connection:
    quick = {name: list(rows) for name, rows in versions.read_state(connection, manager.registry, manager.order).recorded.items()}
    alembic = {
        name: list(MigrationContext.configure(connection, opts={"version_table": entry.version_table}).get_current_heads())
        for name, entry in manager.plugins.items()
    }
print(json.dumps([quick, alembic]))
"""


def test_upgrade_all_reads_every_version_table_as_alembic_does(demo_host: Host) -> None:
    """upgrade-all reads all version tables in a few UNION queries; it must see what Alembic sees."""
    assert demo_host.plugin_cli("migrate", "computers").returncode == 0  # and network, equipment
    assert demo_host.plugin_cli("downgrade", "computers", "base", "--yes").returncode == 0  # empty version table

    result = demo_host.python(READ_VERSIONS_BOTH_WAYS)
    assert result.returncode == 0, result.stderr
    quick, alembic = json.loads(result.stdout)
    assert quick == alembic
    assert quick["network"] == ["0001_baseline_network"] and quick["computers"] == [] and quick["usb"] == []

    upgrade = demo_host.plugin_cli("upgrade-all")
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stdout.splitlines()[-1] == "6 plugins: 4 installed, 2 current"


def test_a_plugin_without_revisions_is_current_not_installed(demo_host: Host) -> None:
    (demo_host.root / "plugins/usb/migrations/versions/0001_baseline.py").unlink()
    result = demo_host.plugin_cli("upgrade-all")
    assert result.returncode == 0, result.stderr
    assert "usb            current    -" in result.stdout
    assert result.stdout.splitlines()[-1] == "6 plugins: 5 installed, 1 current"
    assert "usb_devices" not in demo_host.database.tables()


def test_upgrade_all_plugins_returns_results_in_dependency_order(demo_host: Host) -> None:
    result = demo_host.python(
        "import json; from shopapp.plugins import PluginManager; "
        "print(json.dumps(list(PluginManager().upgrade_all_plugins().items())))"
    )
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    order = [name for name, _ in results]
    for name, depends_on in DEPENDENCIES.items():
        assert all(order.index(dependency) < order.index(name) for dependency in depends_on), order
    assert all(
        outcome == {"from": None, "to": f"0001_baseline_{name}", "status": "installed", "error": None}
        for name, outcome in results
    )


def test_flask_door_uses_the_apps_database(demo_host: Host) -> None:
    if demo_host.database.backend == "sqlite":
        # Flask-SQLAlchemy puts a relative SQLite file in the instance folder;
        # the plugin commands must migrate that same file, not a new one beside it.
        app_uri, app_database = "sqlite:///flask.db", Database(f"sqlite:///{demo_host.root / 'instance' / 'flask.db'}")
    else:
        app_uri, app_database = demo_host.database.url, demo_host.database
    env = {"SHOPAPP_DATABASE_URI": app_uri}
    result = demo_host.flask_cli("upgrade-all", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "6 plugins: 6 installed"
    assert ALL_TABLES <= app_database.tables()
    assert not (demo_host.root / "flask.db").exists()

    status = demo_host.flask_cli("status", env=env)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].split() == ["plugin", "current", "head", "pending"]
    assert {line.split()[0]: line.split()[3] for line in lines[1:]} == {name: "0" for name in DEPENDENCIES}


def test_flask_door_prefers_database_url(demo_host: Host, tmp_path) -> None:
    override = Database(f"sqlite:///{tmp_path / 'override.db'}")
    env = {"DATABASE_URL": override.url, "SHOPAPP_DATABASE_URI": demo_host.database.url}
    result = demo_host.flask_cli("migrate", "network", env=env)
    assert result.returncode == 0, result.stderr
    assert {"subnets", "network_devices"} <= override.tables()
    assert not demo_host.database.tables()


def test_plain_alembic_cli_drives_one_plugin_chain(demo_host: Host) -> None:
    ini = "plugins/network/migrations/alembic.ini"
    env = {"DATABASE_URL": demo_host.database.url}
    alembic = [sys.executable, "-m", "alembic", "-c", ini]

    upgraded = run([*alembic, "upgrade", "head"], demo_host.root, env)
    assert upgraded.returncode == 0, upgraded.stderr
    current = run([*alembic, "current"], demo_host.root, env)
    assert "0001_baseline_network (head)" in current.stdout
    assert demo_host.database.tables() == {"alembic_version_network", "subnets", "network_devices"}
    assert status_json(demo_host)["network"]["pending"] == []

    offline = run([*alembic, "upgrade", "head", "--sql"], demo_host.root, env)
    assert offline.returncode == 0, offline.stderr
    assert "CREATE TABLE subnets" in offline.stdout and "CREATE TABLE network_devices" in offline.stdout
    assert "CREATE INDEX ix_network_devices_hostname" in offline.stdout
    assert "computers" not in offline.stdout, "offline DDL of one plugin leaked another plugin's table"


def test_alembic_cli_works_from_any_directory(demo_host: Host) -> None:
    ini = demo_host.root / "plugins/network/migrations/alembic.ini"
    elsewhere = demo_host.root / "plugins"
    result = run(
        [sys.executable, "-m", "alembic", "-c", str(ini), "upgrade", "head"],
        elsewhere,
        {"DATABASE_URL": demo_host.database.url},
    )
    assert result.returncode == 0, result.stderr


def test_migrate_runs_dependencies_first(demo_host: Host) -> None:
    result = demo_host.plugin_cli("migrate", "usb")
    assert result.returncode == 0, result.stderr
    migrated = [line.split()[0] for line in result.stdout.splitlines()[1:-1]]
    assert migrated == ["equipment", "network", "computers", "usb"]
    assert status_json(demo_host)["printers"]["current"] is None


def test_downgrade_of_one_plugin_leaves_the_others_intact(demo_host: Host) -> None:
    assert demo_host.plugin_cli("upgrade-all").returncode == 0
    database = demo_host.database

    refused = demo_host.plugin_cli("downgrade", "notifications", "base")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith("Error: downgrade of \"notifications\" aborted")
    assert "drops these tables and their data: notification_subscriptions, notifications" in refused.stderr
    assert {"notifications", "notification_subscriptions"} <= database.tables()

    answered_no = demo_host.plugin_cli("downgrade", "notifications", "base", stdin="n\n")
    assert answered_no.returncode == 1
    assert database.version_of("notifications") == ["0001_baseline_notifications"]

    done = demo_host.plugin_cli("downgrade", "notifications", "base", "--yes")
    assert done.returncode == 0, done.stderr
    assert "dropped notification_subscriptions, notifications" in done.stdout
    remaining = database.tables()
    assert not {"notifications", "notification_subscriptions"} & remaining
    assert ALL_TABLES - {"notifications", "notification_subscriptions"} <= remaining
    statuses = status_json(demo_host)
    assert statuses["notifications"]["current"] is None
    assert all(s["current"] == s["head"] for name, s in statuses.items() if name != "notifications")


def test_history_marks_head_and_current(demo_host: Host) -> None:
    assert demo_host.plugin_cli("migrate", "network").returncode == 0
    result = demo_host.plugin_cli("history", "network")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "<base> -> 0001_baseline_network (head, current), network plugin: baseline schema"


def test_a_database_bootstrapped_with_create_all_is_adopted_without_ddl(demo_host: Host) -> None:
    demo_host.create_all()
    result = demo_host.plugin_cli("upgrade-all")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "6 plugins: 6 adopted"
    assert "network        adopted  adopted at 0001_baseline_network" in result.stdout
    assert all(demo_host.database.version_of(name) == [f"0001_baseline_{name}"] for name in DEPENDENCIES)


def test_a_failing_plugin_is_rolled_back_and_its_dependents_skipped(demo_host: Host) -> None:
    assert demo_host.plugin_cli("upgrade-all").returncode == 0
    database = demo_host.database
    failing = demo_host.root / "plugins/network/migrations/versions/0002_broken.py"
    failing.write_text(
        '"""A migration that fails halfway."""\n'
        "from alembic import op\n"
        "import sqlalchemy as sa\n\n"
        'revision = "0002_broken_network"\n'
        'down_revision = "0001_baseline_network"\n\n\n'
        "def upgrade():\n"
        '    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))\n'
        '    op.execute("INSERT INTO no_such_table VALUES (1)")\n\n\n'
        "def downgrade():\n"
        '    op.drop_table("half_done")\n'
    )
    # A new revision in the notifications plugin shows that independent plugins still run.
    (demo_host.root / "plugins/notifications/migrations/versions/0002_more.py").write_text(
        "from alembic import op\nimport sqlalchemy as sa\n\n"
        'revision = "0002_more_notifications"\ndown_revision = "0001_baseline_notifications"\n\n\n'
        'def upgrade():\n    op.add_column("notifications", sa.Column("level", sa.Integer))\n\n\n'
        'def downgrade():\n    op.drop_column("notifications", "level")\n'
    )

    result = demo_host.plugin_cli("upgrade-all")
    assert result.returncode == 1
    error = result.stderr.strip()
    assert error.startswith(
        'Error: plugin "network" failed: migration from 0001_baseline_network rolled back, nothing was changed: '
    )
    assert "no_such_table" in error
    assert error.endswith("; skipped as their dependencies failed: computers, printers, usb; fix and run the command again")
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:-1]}
    assert rows == {
        "equipment": "current",
        "network": "failed",
        "notifications": "upgraded",
        "computers": "skipped",
        "printers": "skipped",
        "usb": "skipped",
    }
    assert "no_such_table" in result.stdout
    assert "half_done" not in database.tables(), "the failed migration's DDL was not rolled back"
    assert database.version_of("network") == ["0001_baseline_network"]
    assert database.version_of("notifications") == ["0002_more_notifications"]

    failing.unlink()
    rerun = demo_host.plugin_cli("upgrade-all")
    assert rerun.returncode == 0, rerun.stderr


def test_errors_are_one_line_and_exit_1(demo_host: Host) -> None:
    unknown = demo_host.plugin_cli("migrate", "nope")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == (
        'Error: unknown plugin "nope" (registered: equipment, network, notifications, computers, printers, usb)'
    )

    no_database = run([sys.executable, "-m", "shopapp.plugins", "status"], demo_host.root, {"DATABASE_URL": ""})
    assert no_database.returncode == 1
    assert no_database.stderr.strip() == "Error: no database configured: set DATABASE_URL (for example sqlite:///app.db)"

    bad_revision = demo_host.plugin_cli("migrate", "network", "--revision", "9999")
    assert bad_revision.returncode == 1
    assert bad_revision.stderr.startswith('Error: plugin "network" failed: ') and "'9999'" in bad_revision.stderr
    assert len(bad_revision.stderr.strip().splitlines()) == 1


def test_registry_cycles_and_unknown_dependencies_are_refused(demo_host: Host) -> None:
    demo_host.declare("network", depends_on=["usb"])
    cycle = demo_host.plugin_cli("upgrade-all")
    assert cycle.returncode == 1
    assert "dependency cycle between plugins" in cycle.stderr
    for name in ("network", "computers", "usb"):
        assert name in cycle.stderr
    assert demo_host.database.tables() == set()

    demo_host.declare("network", depends_on=["ghost"])
    unknown = demo_host.plugin_cli("upgrade-all")
    assert unknown.returncode == 1
    assert 'plugin "network" depends on "ghost", which is not registered' in unknown.stderr


def test_the_hosts_generated_tests_pass(demo_host: Host) -> None:
    result = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_plugin_migrations.py"], demo_host.root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout and "failed" not in result.stdout


def test_the_hosts_generated_tests_run_under_pytest_8_and_9(demo_host: Host, next_pytest: Path) -> None:
    """Beside the rest of the host's suite, with no pytest plugin at all, replaying on the host's backend.

    The host's own suite has a conftest.py: with one, merely having
    pytest-alembic 0.13 installed broke collecting the whole suite under
    pytest 9 ('TestCollector' object has no attribute '_nodeid').
    """
    (demo_host.root / "tests/conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture\ndef app_name():\n    return 'shop'\n"
    )
    (demo_host.root / "tests/test_app.py").write_text("def test_the_app(app_name):\n    assert app_name == 'shop'\n")
    assert demo_host.database.tables() == set()  # (this makes the SQLite file: the check reads only existing ones)
    env = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PLUGIN_MIGRATIONS_TEST_DATABASE_URL": demo_host.database.url}
    for major, pythonpath in (("8", {}), ("9", {"PYTHONPATH": str(next_pytest)})):
        result = run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests"], demo_host.root,
                     {**env, **pythonpath})
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(rf"^platform .* pytest-{major}\.", result.stdout, re.MULTILINE), result.stdout[:600]
        assert "tests/test_app.py::test_the_app PASSED" in result.stdout
        for test in ("single_head", "upgrade_one_revision_at_a_time", "models_match_the_ddl", "up_down_consistency",
                     "rows_survive_every_revision"):
            for name in DEPENDENCIES:
                assert f"tests/test_plugin_migrations.py::test_{test}[{name}] PASSED" in result.stdout
    assert demo_host.database.tables() == set(), "a replay was not rolled back"


def test_the_hosts_generated_tests_catch_an_unregistered_table(demo_host: Host) -> None:
    models = demo_host.root / "plugins/usb/models.py"
    models.write_text(
        models.read_text()
        + "\n\nclass UsbPort(db.Model):\n    __tablename__ = 'usb_ports'\n\n"
        "    id: Mapped[int] = mapped_column(primary_key=True)\n"
    )
    result = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_plugin_migrations.py"], demo_host.root)
    assert result.returncode == 1
    assert 'table "usb_ports" is defined in plugins/usb/models.py but registered to no plugin' in result.stdout


def test_autogenerate_sees_only_the_plugins_own_tables(demo_host: Host) -> None:
    assert demo_host.plugin_cli("upgrade-all").returncode == 0
    network_models = demo_host.root / "plugins/network/models.py"
    network_models.write_text(
        network_models.read_text().replace(
            "    vlan: Mapped[int | None]\n",
            "    vlan: Mapped[int | None]\n    name: Mapped[str | None] = mapped_column(sa.String(40))\n",
        )
    )
    other_models = demo_host.root / "plugins/notifications/models.py"
    other_models.write_text(other_models.read_text() + "\n\nclass Stray(db.Model):\n    __tablename__ = 'strays'\n"
                            "    id: Mapped[int] = mapped_column(primary_key=True)\n")

    result = run(
        [sys.executable, "-m", "alembic", "-c", "plugins/network/migrations/alembic.ini",
         "revision", "--autogenerate", "-m", "add subnet name"],
        demo_host.root,
        {"DATABASE_URL": demo_host.database.url},
    )

    assert result.returncode == 0, result.stderr
    [revision] = (demo_host.root / "plugins/network/migrations/versions").glob("*_add_subnet_name.py")
    text = revision.read_text()
    assert "down_revision: Union[str, Sequence[str], None] = '0001_baseline_network'" in text
    # SQLite gets Alembic's batch mode (it cannot ALTER in place); PostgreSQL plain ALTER.
    assert "add_column(" in text and "sa.Column('name', sa.String(length=40), nullable=True)" in text
    # Not the core table "sites" (absent from this database), not another
    # plugin's new table, not any version table.
    for foreign in ("sites", "strays", "alembic_version", "create_table", "drop_table"):
        assert foreign not in text, foreign


def test_the_hosts_generated_tests_catch_a_foreign_key_without_depends_on(demo_host: Host) -> None:
    demo_host.declare("usb", depends_on=[])
    result = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_plugin_migrations.py"], demo_host.root)
    assert result.returncode == 1
    assert (
        'table "usb_devices" of plugin "usb" has a foreign key into "computers" of plugin "computers", '
        'but "usb" does not depend on "computers"'
    ) in result.stdout


def test_a_foreign_key_to_an_unimported_core_table_names_model_base(demo_host: Host) -> None:
    models = demo_host.root / "plugins/notifications/models.py"
    models.write_text(models.read_text().replace(
        '    email: Mapped[str] = mapped_column(sa.String(254))',
        '    email: Mapped[str] = mapped_column(sa.String(254))\n'
        '    warehouse_id: Mapped[int | None] = mapped_column(sa.ForeignKey("warehouses.id"))',
    ))
    result = demo_host.plugin_cli("migrate", "notifications")
    assert result.returncode == 1
    assert (
        'table "notification_subscriptions" has a foreign key to "warehouses", which no imported model defines; '
        "the module of model_base (shopapp.models:db.Model) must import every core model that plugin tables refer to"
    ) in result.stderr

    plain = run([sys.executable, "-m", "alembic", "-c", "plugins/notifications/migrations/alembic.ini", "upgrade", "head"],
                demo_host.root, {"DATABASE_URL": demo_host.database.url})
    # Alembic's own CLI prints "FAILED: ..." on stdout and exits 255.
    assert plain.returncode != 0
    assert "Traceback" not in plain.stderr
    assert plain.stdout.startswith('FAILED: plugin "notifications": table "notification_subscriptions" has a foreign key')


def test_upgrade_all_json_prints_the_contract_dicts(demo_host: Host) -> None:
    result = demo_host.plugin_cli("upgrade-all", "--json")
    assert result.returncode == 0, result.stderr
    outcomes = json.loads(result.stdout)
    assert list(outcomes) == ["equipment", "network", "notifications", "computers", "printers", "usb"]
    assert outcomes["network"] == {"from": None, "to": "0001_baseline_network", "status": "installed", "error": None}

    again = demo_host.plugin_cli("migrate", "usb", "--json")
    assert again.returncode == 0, again.stderr
    assert {name: o["status"] for name, o in json.loads(again.stdout).items()} == dict.fromkeys(
        ["equipment", "network", "computers", "usb"], "current"
    )


def test_a_version_table_with_two_rows_is_reported_not_raised(demo_host: Host) -> None:
    assert demo_host.plugin_cli("upgrade-all").returncode == 0
    demo_host.database.execute("INSERT INTO alembic_version_network (version_num) VALUES ('0000_stray')")
    problem = (
        "its version table alembic_version_network holds 2 revisions (0000_stray, 0001_baseline_network), "
        "nothing was changed; keep the right one with `stamp network REVISION`"
    )

    status = demo_host.plugin_cli("status")
    assert status.returncode == 0, status.stderr
    assert "network        ?  " in status.stdout
    assert f'plugin "network": {problem}' in status.stdout
    [network] = [p for p in json.loads(demo_host.plugin_cli("status", "--json").stdout) if p["name"] == "network"]
    assert network["current"] is None and network["problem"] == problem

    upgrade = demo_host.plugin_cli("upgrade-all")
    assert upgrade.returncode == 1
    assert f'plugin "network" failed: {problem}' in upgrade.stderr and "Traceback" not in upgrade.stderr
