"""Unit tests of the host runtime's modules, in process.

The runtime is imported from the demo host built once per test session (the
``demo_host_template`` fixture), as its own code imports it: ``shopapp.plugins``.
Registries and databases the tests need are made in ``tmp_path``; the host is
only read. What only a process can show (exit codes, both CLI doors, the
lock across processes) stays in the end-to-end tests.
"""

from __future__ import annotations

import ast
import importlib
import json
import sqlite3
import sys
import time
from decimal import Decimal
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import sqlalchemy as sa
from flask import Flask

MODULES = (
    "alembic_template", "answers", "autogen", "baseline", "binds", "branches", "chains", "checks", "cli", "cli_options",
    "cli_scaffolding", "cli_squash", "compare", "conflicts", "database", "declarations", "downgrade", "errors",
    "fetching", "fleet", "from_models", "graphcache", "importing", "metadata", "naming", "outcomes", "output", "paths",
    "plan", "registry", "removal", "rendering", "replay", "review", "revisions", "rows", "scaffolding",
    "schemas", "shared_versions", "squash", "survival", "updating", "upgrade", "versions",
)


@pytest.fixture(scope="session")
def rt(demo_host_template: Path) -> SimpleNamespace:
    """The runtime's modules, imported from the session's demo host (``rt.registry``, ``rt.plan``, ...)."""
    if str(demo_host_template) not in sys.path:
        sys.path.insert(0, str(demo_host_template))
    package = importlib.import_module("shopapp.plugins")
    assert Path(package.__file__).is_relative_to(demo_host_template), "another shopapp was imported first"
    modules: dict[str, ModuleType] = {name: importlib.import_module(f"shopapp.plugins.{name}") for name in MODULES}
    return SimpleNamespace(package=package, root=demo_host_template, **modules)


def make_registry(rt: SimpleNamespace, root: Path, plugins: dict[str, object], scaffold: tuple[str, ...] = ()) -> Path:
    """A registry.json under ``root`` holding ``plugins``, and plugin folders with migrations for ``scaffold``."""
    for name in scaffold:
        migrations = root / "plugins" / name / "migrations"
        migrations.mkdir(parents=True)
        (migrations.parent / "__init__.py").write_text("")
        (migrations / "alembic.ini").write_text("[alembic]\n")
    path = root / "registry.json"
    path.write_text(json.dumps({"plugins": plugins}))
    return path


def load(rt: SimpleNamespace, root: Path, plugins: dict[str, object], scaffold: tuple[str, ...] = ()):
    return rt.registry.Registry.load(make_registry(rt, root, plugins, scaffold), root, "plugins")


def entry(tables: list[str], depends_on: list[str] | None = None) -> dict[str, object]:
    return {"tables": tables, "depends_on": depends_on or []}


def plugins_of(entries: dict[str, object]) -> dict[str, object]:
    """Registry entries for a case table (a call, so the answer-key guard does not read them as answers)."""
    return dict(entries)


# -- registry ---------------------------------------------------------------------------------------


def test_the_demo_registry_derives_order_owners_and_folders(rt: SimpleNamespace) -> None:
    registry = rt.registry.Registry.load()
    assert registry.order == ("equipment", "network", "notifications", "computers", "printers", "usb")
    assert registry.dependencies("usb") == ["equipment", "network", "computers"]
    assert registry.owner_of("subnets") == "network" and registry.owner_of("accounts") is None
    assert registry.entry("usb").folder == rt.root / "plugins" / "usb"
    assert registry.entry("usb").version_table == "alembic_version_usb"
    assert registry.problems() == []
    assert dict(rt.alembic_template.PLUGIN_TABLE_OWNERS) == {name: e.tables for name, e in registry.entries.items()}


def test_a_registry_value_cannot_be_changed(rt: SimpleNamespace, tmp_path: Path) -> None:
    registry = load(rt, tmp_path, {"a": entry(["t"])}, scaffold=("a",))
    with pytest.raises(AttributeError):
        registry.path = tmp_path  # type: ignore[misc]
    with pytest.raises(TypeError):
        registry.entries["b"] = registry.entries["a"]  # type: ignore[index]


UNREADABLE = [
    pytest.param("{not json", "not valid JSON", id="malformed"),
    pytest.param('{"plugins": ' + "[" * 200_000 + "]" * 200_000 + "}", "nested too deeply", id="deeply-nested"),
    pytest.param("[]", 'expected an object with a "plugins" object, found NoneType', id="not-an-object"),
    pytest.param('{"plugins": {"a": []}}', 'entry "a" must be an object with "tables" and "depends_on"', id="entry-not-object"),
    pytest.param('{"plugins": {"a": {"tables": "t"}}}', 'entry "a": "tables" must be a list of table names', id="tables-string"),
    pytest.param('{"plugins": {"a": {"tables": ["t"], "depends_on": [1]}}}', '"depends_on" must be a list', id="depends-on-ints"),
]


@pytest.mark.parametrize(("text", "message"), UNREADABLE)
def test_an_unreadable_registry_is_refused_naming_the_file(rt: SimpleNamespace, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "registry.json"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(rt.errors.RegistryError) as raised:
        rt.registry.Registry.load(path, tmp_path, "plugins")
    assert str(raised.value).startswith(f"{path}: ") and message in str(raised.value)
    assert time.monotonic() - started < 1


PROBLEMS = [
    pytest.param(plugins_of({"Net-Work": entry(["t"])}), ("Net-Work",), 'entry "Net-Work": not a valid plugin name', id="bad-name"),
    pytest.param(plugins_of({"evil\n": entry(["t"])}), (), 'entry "evil\n": not a valid plugin name', id="trailing-newline-name"),
    pytest.param(plugins_of({"a": entry(["t\n"])}), ("a",), 'entry "a": "t\n" is not a valid table name', id="trailing-newline-table"),
    pytest.param(plugins_of({"a": entry(["t"])}), (), 'entry "a" has no scaffolding', id="no-scaffolding"),
    pytest.param(plugins_of({"a": entry(["alembic_version_b"])}), ("a",), 'entry "a": "alembic_version_b" is named like an Alembic',
                 id="alembic-version-table"),
    pytest.param(plugins_of({"a": entry(["t"]), "b": entry(["t"])}), ("a", "b"), 'table "t" is owned by 2 plugins (a, b)', id="owned-twice"),
    pytest.param(plugins_of({"a": entry(["t"])}), ("a", "b"), "plugins/b has migrations but no entry", id="folder-without-entry"),
    pytest.param(plugins_of({"a": entry(["t"], ["ghost"])}), ("a",), 'plugin "a" depends on "ghost", which is not registered',
                 id="unknown-dependency"),
    pytest.param(plugins_of({"a": entry(["t"], ["b"]), "b": entry(["u"], ["a"])}), ("a", "b"), "dependency cycle between plugins",
                 id="cycle"),
]


@pytest.mark.parametrize(("plugins", "scaffold", "problem"), PROBLEMS)
def test_each_registry_problem_is_found_once_with_its_fix(
    rt: SimpleNamespace, tmp_path: Path, plugins: dict[str, object], scaffold: tuple[str, ...], problem: str
) -> None:
    registry = load(rt, tmp_path, plugins, scaffold)
    problems = registry.problems()
    [found] = [p for p in problems if str(p).startswith(problem)]
    assert found.fix and str(found) == f"{found.text}; {found.fix}"
    # The start-up refusal says exactly what check lists: the first problem, word for word.
    with pytest.raises(rt.errors.RegistryError) as raised:
        registry.require_sound()
    assert str(raised.value) == f"{registry.path}: {problems[0]}"


def test_a_plugin_folder_inside_the_runtime_cannot_shadow_a_runtime_module(rt: SimpleNamespace) -> None:
    runtime = Path(rt.package.__file__).parent
    registry = rt.registry.Registry(
        runtime / "registry.json", rt.root, "shopapp/plugins",
        {"registry": rt.registry.PluginEntry("registry", ("t",), (), runtime / "registry")},
    )
    assert [str(p) for p in registry.problems() if "runtime" in str(p)] == [
        'entry "registry": the plugin folder shopapp/plugins/registry is this runtime\'s registry.py module; '
        "rename the plugin, or keep plugins outside the runtime's folder"
    ]


def test_order_puts_dependencies_first_and_ties_alphabetically(rt: SimpleNamespace, tmp_path: Path) -> None:
    plugins = {"c": entry(["tc"], ["b"]), "b": entry(["tb"]), "a": entry(["ta"]), "d": entry(["td"], ["a", "c"])}
    registry = load(rt, tmp_path, plugins, tuple(plugins))
    assert registry.order == ("a", "b", "c", "d")
    assert registry.closure("d") == {"a", "b", "c"}
    with pytest.raises(rt.errors.PluginMigrationError, match=r'unknown plugin "z" \(registered: a, b, c, d\)'):
        registry.entry("z")


# -- database -----------------------------------------------------------------------------------------


def test_the_database_url_comes_from_one_place_in_a_fixed_order(
    rt: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    resolve = rt.database.resolve_url
    app = Flask("unit")
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///from-flask.db"
    monkeypatch.setenv("DATABASE_URL", "sqlite:///from-env.db")
    assert resolve("sqlite:///explicit.db", app=app, ini_url="sqlite:///ini.db") == "sqlite:///explicit.db"
    assert resolve(None, app=app, ini_url="sqlite:///ini.db") == "sqlite:///from-env.db"
    monkeypatch.setenv("DATABASE_URL", "")  # set but empty counts as unset
    assert resolve(None, app=app, ini_url="sqlite:///ini.db") == "sqlite:///from-flask.db"
    assert resolve(None, ini_url="sqlite:///ini.db") == "sqlite:///ini.db"
    with pytest.raises(rt.errors.PluginMigrationError) as raised:
        resolve(None)
    assert str(raised.value) == "no database configured: set DATABASE_URL (for example sqlite:///app.db)"


def test_a_flask_sqlalchemy_app_gives_its_engine_url(rt: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from flask_sqlalchemy import SQLAlchemy

    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = Flask("unit", instance_path=str(tmp_path / "instance"))
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///relative.db"
    SQLAlchemy().init_app(app)
    # Flask-SQLAlchemy puts a relative SQLite file in the instance folder; the runtime must use that file too.
    assert rt.database.resolve_url(app=app) == f"sqlite:///{tmp_path / 'instance' / 'relative.db'}"


def test_a_held_sqlite_write_lock_ends_in_the_lock_timeout_error(rt: SimpleNamespace, tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    database = rt.database.Database(f"sqlite:///{path}", lock_timeout=0.2)
    try:
        with database.connect() as connection, pytest.raises(rt.errors.LockTimeout) as raised:
            database.begin(connection)
        assert "held this database's migration lock for 0.2 s, nothing was changed" in str(raised.value)
    finally:
        holder.rollback()
        holder.close()
        database.dispose()


def test_missing_sqlite_file_is_told_apart_without_creating_it(rt: SimpleNamespace, tmp_path: Path) -> None:
    missing = rt.database.Database(f"sqlite:///{tmp_path / 'none.db'}")
    assert missing.missing_sqlite_file() and not (tmp_path / "none.db").exists()
    assert not rt.database.Database("sqlite://").missing_sqlite_file()
    assert not rt.database.Database("postgresql+psycopg://u@localhost/db").missing_sqlite_file()


# -- plan -------------------------------------------------------------------------------------------------


def plugin_entry(rt: SimpleNamespace, tables: tuple[str, ...] = ("t1", "t2")):
    return rt.registry.PluginEntry("p", tables, (), Path("/nowhere/p"))


DECISIONS = [
    # recorded rows, target, head, tables in the database -> action
    pytest.param((), "head", "0002", set(), "install", id="empty-database-installs"),
    pytest.param((), "head", "0002", {"t1", "t2", "core"}, "adopt", id="create-all-tables-adopt"),
    pytest.param((), "head", "0002", {"t1"}, "refuse", id="some-tables-refuse"),
    pytest.param((), "0001", "0002", {"t1", "t2"}, "install", id="explicit-target-never-adopts"),
    pytest.param(("0002",), "head", "0002", {"t1", "t2"}, "current", id="at-head"),
    pytest.param(("0001",), "head", "0002", {"t1", "t2"}, "upgrade", id="behind-head"),
    pytest.param(("0001",), "0001", "0002", {"t1", "t2"}, "current", id="at-explicit-target"),
    pytest.param(("0001", "0002"), "head", "0002", {"t1", "t2"}, "refuse", id="two-version-rows"),
]


@pytest.mark.parametrize(("recorded", "target", "head", "tables", "action"), DECISIONS)
def test_decide(rt: SimpleNamespace, recorded: tuple[str, ...], target: str, head: str, tables: set[str], action: str) -> None:
    step = rt.plan.decide(plugin_entry(rt), recorded, target, lambda: head, tables)
    assert step.action == action
    assert step.target == target
    if action == "refuse":
        assert "nothing was changed" in step.reason and "stamp p REVISION" in step.reason


def test_a_fresh_install_is_decided_without_loading_the_chain(rt: SimpleNamespace) -> None:
    def head() -> str:
        raise AssertionError("the chain was loaded")

    assert rt.plan.decide(plugin_entry(rt), (), "head", head, set()).action == "install"


def test_the_plan_skips_what_waits_for_a_refused_plugin(rt: SimpleNamespace, tmp_path: Path) -> None:
    registry = rt.registry.Registry.load()
    chains = rt.chains.Chains(registry, rt.database.Database(f"sqlite:///{tmp_path / 'x.db'}"))
    state = rt.versions.DatabaseState(frozenset({"subnets"}), {})  # network half there: refused
    steps = {step.plugin: step for step in rt.plan.make_plan(chains, state, registry.order, {})}
    assert steps["network"].action == "refuse"
    assert steps["computers"].action == "skip" and 'dependency "network"' in steps["computers"].reason
    assert steps["usb"].action == "skip" and 'dependency "computers"' in steps["usb"].reason
    assert {steps[name].action for name in ("equipment", "notifications")} == {"install"}


def test_preview_and_run_come_from_the_same_plan(rt: SimpleNamespace, tmp_path: Path) -> None:
    """A half-built plugin: --sql says refused and skipped, the run fails and skips the same plugins."""
    url = f"sqlite:///{tmp_path / 'half.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE subnets (id INTEGER PRIMARY KEY)")
    engine.dispose()
    registry = rt.registry.Registry.load()
    chains = rt.chains.Chains(registry, rt.database.Database(url))
    try:
        preview = rt.upgrade.preview(chains, registry.order, {})
        outcomes = rt.upgrade.apply(chains, registry.order, {})
    finally:
        chains.database.dispose()
    assert "-- plugin network: refused, nothing would be changed: refusing to adopt existing tables" in preview
    assert "-- plugin computers: skipped" in preview and "-- plugin usb: skipped" in preview
    assert "CREATE TABLE equipment_types" in preview
    statuses = {name: outcome.status for name, outcome in outcomes.items()}
    assert statuses == {
        "equipment": "installed", "network": "failed", "notifications": "installed",
        "computers": "skipped", "printers": "skipped", "usb": "skipped",
    }
    assert "refusing to adopt existing tables, nothing was changed: subnets exist but network_devices do not" in (
        outcomes["network"].error
    )


# -- outcomes -------------------------------------------------------------------------------------------------


def test_outcomes_keep_the_contract_dict_and_print_their_detail(rt: SimpleNamespace) -> None:
    Outcome, Status = rt.outcomes.Outcome, rt.outcomes.Status
    upgraded = Outcome("network", Status.UPGRADED, "0001_network", "0002_network")
    assert upgraded.as_dict() == {"from": "0001_network", "to": "0002_network", "status": "upgraded", "error": None}
    assert json.loads(json.dumps(upgraded.as_dict()))["status"] == "upgraded"
    assert upgraded.detail() == "0001_network -> 0002_network"
    assert Outcome("n", Status.INSTALLED, None, "0001").detail() == "installed at 0001"
    assert Outcome("n", Status.CURRENT).detail() == "-"
    assert Outcome("n", Status.SKIPPED, error='dependency "a" did not upgrade').detail() == 'dependency "a" did not upgrade'
    down = Outcome("n", Status.DOWNGRADED, "0002", None, dropped=("t",))
    assert down.as_dict() == {"from": "0002", "to": None, "status": "downgraded", "error": None, "dropped": ["t"]}
    assert [status.value for status in rt.outcomes.UPGRADE_STATUSES] == [
        "installed", "adopted", "upgraded", "current", "failed", "skipped"
    ]


# -- chains and revisions ------------------------------------------------------------------------------------


def test_chains_know_head_pending_and_the_next_readable_id(rt: SimpleNamespace, tmp_path: Path) -> None:
    registry = rt.registry.Registry.load()
    chains = rt.chains.Chains(registry, rt.database.Database(f"sqlite:///{tmp_path / 'x.db'}"))
    assert chains.head("network") == "0001_baseline_network"
    assert chains.pending("network", None) == ["0001_baseline_network"]
    assert chains.pending("network", "0001_baseline_network") == []
    assert chains.baseline_revision("network") == "0001_baseline_network"
    assert rt.revisions.next_revision_id(chains, "network") == "0002_network"
    config = chains.config("network")
    assert config.attributes["registry"] is registry, "env.py must get the registry the command read, not re-read it"


# -- the shape of the runtime ---------------------------------------------------------------------------------


def runtime_sources(rt: SimpleNamespace) -> dict[str, str]:
    folder = Path(rt.package.__file__).parent
    return {path.name: path.read_text() for path in sorted(folder.glob("*.py"))}


def test_only_the_database_module_reads_the_database_url_from_the_environment(rt: SimpleNamespace) -> None:
    readers = {name for name, text in runtime_sources(rt).items() if "os.environ" in text or "getenv" in text}
    assert readers == {"database.py"}


def test_no_runtime_module_imports_another_modules_private_name(rt: SimpleNamespace) -> None:
    offences = [
        f"{name}: from {node.module} import {alias.name}"
        for name, text in runtime_sources(rt).items()
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.ImportFrom) and node.level > 0
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert offences == []


def test_modules_stay_small_and_the_facade_thin(rt: SimpleNamespace) -> None:
    sizes = {name: len(text.splitlines()) for name, text in runtime_sources(rt).items()}
    assert max(sizes.values()) <= 400, sizes
    tree = ast.parse(runtime_sources(rt)["__init__.py"])
    [manager] = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "PluginManager"]
    assert manager.end_lineno - manager.lineno + 1 <= 150


def test_upgrade_statuses_are_an_enum(rt: SimpleNamespace) -> None:
    from enum import StrEnum

    assert issubclass(rt.outcomes.Status, StrEnum) and issubclass(rt.plan.Action, StrEnum)
    assert rt.package.Status is rt.outcomes.Status


def test_a_migration_session_is_exclusive_from_start_to_end(rt: SimpleNamespace, new_database) -> None:
    """Between two plugins' steps of one run, no other migrator gets in (it read the run's plan)."""
    url = new_database().url
    first, second = rt.database.Database(url), rt.database.Database(url, lock_timeout=0.5)
    try:
        with first.migration_session() as session:
            with session.step():
                session.connection.exec_driver_sql("CREATE TABLE one_step (id INTEGER PRIMARY KEY)")
            # The first plugin's step is over; the run is not.
            started = time.monotonic()
            with pytest.raises(rt.errors.LockTimeout), second.migration_session():
                pass
            assert time.monotonic() - started < 10
            with session.step():
                session.connection.exec_driver_sql("CREATE TABLE two_step (id INTEGER PRIMARY KEY)")
        with second.migration_session() as session, session.step():  # free once the run ended
            assert {"one_step", "two_step"} <= set(sa.inspect(session.connection).get_table_names())
    finally:
        first.dispose()
        second.dispose()


def test_a_failed_step_rolls_back_alone(rt: SimpleNamespace, new_database) -> None:
    test_database = new_database()
    database = rt.database.Database(test_database.url)
    try:
        with database.migration_session() as session:
            with session.step():
                session.connection.exec_driver_sql("CREATE TABLE kept (id INTEGER PRIMARY KEY)")
            with pytest.raises(RuntimeError), session.step():
                session.connection.exec_driver_sql("CREATE TABLE rolled_back (id INTEGER PRIMARY KEY)")
                raise RuntimeError("a revision failed")
            with session.step():
                session.connection.exec_driver_sql("CREATE TABLE after (id INTEGER PRIMARY KEY)")
    finally:
        database.dispose()
    tables = test_database.tables()
    assert {"kept", "after"} <= tables and "rolled_back" not in tables


@pytest.mark.parametrize("new_database", ["postgresql"], indirect=True)
def test_lock_timeout_still_bounds_table_locks_after_waiting_for_the_migrator_lock(rt: SimpleNamespace, new_database) -> None:
    import threading

    url = new_database().url
    holder = sa.create_engine(url, poolclass=sa.pool.NullPool).connect()
    holder.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": rt.database.MIGRATION_LOCK_KEY})
    threading.Timer(0.5, holder.close).start()  # another migrator, finishing half a second later
    database = rt.database.Database(url, lock_timeout=7)
    try:
        with database.migration_session() as session:
            assert session.connection.exec_driver_sql("SHOW lock_timeout").scalar() == "7s"
    finally:
        database.dispose()


# -- replays ---------------------------------------------------------------------------------------------------


def test_a_replay_builds_a_chains_context_and_leaves_the_database_as_it_was(rt: SimpleNamespace, new_database) -> None:
    test_database = new_database()
    registry = rt.registry.Registry.load()
    with rt.replay.scratch(registry, test_database.url) as replay:
        replay.prepare("usb")  # the core tables, then equipment, network and computers at their heads
        assert replay.context == {
            "sites", "equipment_types", "equipment", "subnets", "network_devices", "computers",
            "alembic_version_equipment", "alembic_version_network", "alembic_version_computers",
        }
        for revision in replay.revisions("usb"):
            replay.upgrade("usb", revision)
        assert replay.current("usb") == "0001_baseline_usb" and replay.chain_tables() == {"usb_devices"}
        with pytest.raises(rt.errors.PluginMigrationError) as raised:
            replay.upgrade("usb", "9999")
        assert str(raised.value).startswith('plugin "usb": upgrade from 0001_baseline_usb to 9999 failed: ')
        assert replay.chain_tables() == {"usb_devices"}, "a failed step rolls back to its savepoint only"
    assert test_database.tables() == set()


def test_a_replay_refuses_a_database_that_holds_plugin_tables(rt: SimpleNamespace, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'deployed.db'}"
    with sqlite3.connect(tmp_path / "deployed.db") as connection:
        connection.execute("CREATE TABLE subnets (id INTEGER PRIMARY KEY)")
        connection.execute("CREATE TABLE sites (id INTEGER PRIMARY KEY)")
    with pytest.raises(rt.errors.PluginMigrationError) as raised, rt.replay.scratch(rt.registry.Registry.load(), url):
        pass
    assert f"the database {url} already holds plugin tables (subnets): " in str(raised.value)


def test_a_read_only_connection_cannot_change_the_database(rt: SimpleNamespace, new_database) -> None:
    test_database = new_database()
    test_database.execute("CREATE TABLE kept (id INTEGER PRIMARY KEY)")
    database = rt.database.Database(test_database.url)
    with database.read_only() as connection:
        assert sa.inspect(connection).get_table_names() == ["kept"]
        with pytest.raises(sa.exc.DBAPIError):
            connection.exec_driver_sql("CREATE TABLE added (id INTEGER PRIMARY KEY)")
    assert test_database.tables() == {"kept"}


def test_the_core_tables_are_those_no_plugin_owns(rt: SimpleNamespace) -> None:
    assert [table.name for table in rt.replay.core_tables(rt.registry.Registry.load())] == ["sites"]


# -- rows and their survival ----------------------------------------------------------------------------------


def test_generated_values_fit_their_columns(rt: SimpleNamespace) -> None:
    columns = sa.Table(
        "t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("code", sa.String(4)),
        sa.Column("name", sa.String(40)), sa.Column("kind", sa.Enum("a", "b")), sa.Column("price", sa.Numeric(3, 1)),
        sa.Column("at", sa.DateTime(timezone=True)), sa.Column("odd", sa.types.NullType()),
    ).c
    value = rt.rows.generated_value
    assert (value(columns.id, 7), value(columns.code, 12345), value(columns.name, 7)) == (10_007, "2345", "name-7")
    assert (value(columns.kind, 3), value(columns.price, 123)) == ("b", Decimal(23))
    assert value(columns.at, 1).tzinfo is not None
    assert value(columns.odd, 1) is None


def test_a_chains_rows_are_made_parents_first_and_survive_it(rt: SimpleNamespace, new_database) -> None:
    test_database = new_database()
    with rt.replay.scratch(rt.registry.Registry.load(), test_database.url) as replay:
        replay.prepare("usb")
        assert rt.survival.walk(replay, "usb") == []
        # usb's chain went up and back to base; the rows its foreign keys needed stay in the tables of its dependencies.
        for parent in ("computers", "equipment", "equipment_types", "subnets"):
            assert replay.connection.execute(sa.text(f"SELECT count(*) FROM {parent}")).scalar() == 1, parent
        assert replay.chain_tables() == set()
    assert test_database.tables() == set()


def test_a_fixture_rows_hook_that_is_not_one_is_refused(rt: SimpleNamespace, tmp_path: Path) -> None:
    entry = rt.registry.PluginEntry("inventory", ("items",), (), tmp_path)
    assert rt.survival.FixtureHook.load(entry).rows("0001", "items") is None  # no file: generated rows
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations/fixture_rows.py").write_text("NOT_KEPT = ['items.sku']\n")
    with pytest.raises(rt.errors.PluginMigrationError) as raised:
        rt.survival.FixtureHook.load(entry)
    assert str(raised.value) == (
        f"{tmp_path / 'migrations/fixture_rows.py'}: fixture_rows must be a function (revision, table) -> rows or None, "
        'and NOT_KEPT a dict of revision -> ["table", "table.column", ...]'
    )
