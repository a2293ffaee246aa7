"""Real databases and faults: schema equality by reflection, concurrent migrators,
lock timeouts, guarded downgrades and --sql, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from demo.run import PLUGINS

from .helpers import Database, Host, reflected_schema

ALL_TABLES = {table for _, tables, _ in PLUGINS for table in tables}


def test_upgrade_all_builds_the_same_schema_as_create_all(demo_host: Host, new_database) -> None:
    result = demo_host.plugin_cli("upgrade-all")
    assert result.returncode == 0, result.stderr

    # The same plugin tables built by create_all, in a second empty database of the same backend.
    reference = new_database()
    demo_host.create_all(reference.url, tables=sorted(ALL_TABLES))
    migrated_schema = reflected_schema(demo_host.database.url)
    assert set(migrated_schema) == ALL_TABLES
    assert migrated_schema == reflected_schema(reference.url)


def test_concurrent_migrators_one_migrates_the_others_wait(demo_host: Host) -> None:
    """Four app replicas start together on one empty database."""
    command = [sys.executable, "-m", "shopapp.plugins", "upgrade-all", "--lock-timeout", "120"]
    env = {**os.environ, "DATABASE_URL": demo_host.database.url}
    processes = [
        subprocess.Popen(command, cwd=demo_host.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]

    assert [process.returncode for process in processes] == [0, 0, 0, 0], [err for _, err in outputs]
    outcomes = Counter(
        (line.split()[0], line.split()[1])
        for stdout, _ in outputs
        for line in stdout.splitlines()[1:-1]
    )
    # Every plugin was migrated by exactly one process; the others found it current.
    for name, _, _ in PLUGINS:
        assert outcomes[(name, "installed")] == 1, outcomes
        assert outcomes[(name, "current")] == 3, outcomes
    assert ALL_TABLES <= demo_host.database.tables()
    for name, _, _ in PLUGINS:
        assert demo_host.database.version_of(name) == [f"0001_baseline_{name}"]


def test_a_migrator_gives_up_after_the_lock_timeout(demo_host: Host) -> None:
    database = demo_host.database
    if database.backend == "postgresql":
        holder = sa.create_engine(database.url, poolclass=sa.pool.NullPool)
        connection = holder.connect()
        connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": int.from_bytes(b"plugmigr", "big")})
        release = connection.close
    else:
        raw = sqlite3.connect(sa.make_url(database.url).database, isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        release = raw.close
    try:
        started = time.monotonic()
        result = demo_host.plugin_cli("upgrade-all", "--lock-timeout", "1")
        waited = time.monotonic() - started
    finally:
        release()

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: another migrator has held this database's migration lock for 1 s, nothing was changed; "
        "let it finish, or wait longer with --lock-timeout"
    )
    assert waited >= 1
    assert not ALL_TABLES & database.tables()


def test_downgrade_is_refused_while_other_plugins_reference_its_tables(demo_host: Host) -> None:
    assert demo_host.plugin_cli("upgrade-all").returncode == 0
    before = demo_host.database.tables()

    result = demo_host.plugin_cli("downgrade", "network", "base", "--yes")

    assert result.returncode == 1
    assert result.stderr.strip().startswith('Error: refusing to downgrade "network" to base, nothing was changed: ')
    for referrer in ("table computers (plugin computers)", "table printers (plugin printers)"):
        assert referrer in result.stderr
    assert result.stderr.strip().endswith("downgrade the plugins that own those tables first")
    assert demo_host.database.tables() == before
    assert demo_host.database.version_of("network") == ["0001_baseline_network"]

    # Once the referencing plugins are gone, the downgrade goes through.
    for name in ("usb", "computers", "printers"):
        assert demo_host.plugin_cli("downgrade", name, "base", "--yes").returncode == 0
    done = demo_host.plugin_cli("downgrade", "network", "base", "--yes")
    assert done.returncode == 0, done.stderr
    assert not {"subnets", "network_devices"} & demo_host.database.tables()


def test_sql_prints_ddl_and_touches_nothing(demo_host: Host, tmp_path: Path) -> None:
    everything = demo_host.plugin_cli("upgrade-all", "--sql")
    assert everything.returncode == 0, everything.stderr
    for table in ALL_TABLES:
        assert f"CREATE TABLE {table} (" in everything.stdout
    assert everything.stdout.index("-- plugin network: base -> head") < everything.stdout.index("-- plugin computers:")
    assert demo_host.database.tables() == set()

    one = demo_host.plugin_cli("migrate", "printers", "--sql")
    assert one.returncode == 0, one.stderr
    assert "CREATE TABLE printers (" in one.stdout and "CREATE TABLE subnets (" in one.stdout
    assert "CREATE TABLE computers (" not in one.stdout
    assert demo_host.database.tables() == set()

    assert demo_host.plugin_cli("upgrade-all").returncode == 0
    tables = demo_host.database.tables()
    nothing_to_do = demo_host.plugin_cli("upgrade-all", "--sql")
    assert nothing_to_do.returncode == 0 and nothing_to_do.stdout == ""

    # A database that create_all() built would be adopted: the preview is a stamp, no DDL.
    adoptable = Database(f"sqlite:///{tmp_path / 'adoptable.db'}") if demo_host.database.backend == "sqlite" else None
    if adoptable:
        demo_host.create_all(adoptable.url)
        preview = demo_host.plugin_cli("upgrade-all", "--sql", database_url=adoptable.url)
        assert preview.returncode == 0, preview.stderr
        assert "-- plugin network: adopted at 0001_baseline_network if its tables match the models (no DDL)" in preview.stdout
        assert "CREATE TABLE subnets" not in preview.stdout
        assert "INSERT INTO alembic_version_network (version_num) VALUES ('0001_baseline_network')" in preview.stdout
        # ... and a SQLite file that does not exist yet is not created by a preview.
        missing = tmp_path / "not-yet.db"
        assert demo_host.plugin_cli("upgrade-all", "--sql", database_url=f"sqlite:///{missing}").returncode == 0
        assert not missing.exists()

    down = demo_host.plugin_cli("downgrade", "notifications", "base", "--sql")
    assert down.returncode == 0, down.stderr
    assert "DROP TABLE notification_subscriptions" in down.stdout and "DROP TABLE notifications" in down.stdout
    assert demo_host.database.tables() == tables


def test_sql_of_a_downgrade_needs_an_installed_plugin(demo_host: Host) -> None:
    result = demo_host.plugin_cli("downgrade", "usb", "base", "--sql")
    assert result.returncode == 1
    assert result.stderr.strip() == 'Error: plugin "usb" is not installed in this database: nothing to downgrade'


def test_each_database_starts_empty(database: Database) -> None:
    assert database.tables() == set()


def test_under_ci_a_missing_postgresql_fails_instead_of_skipping(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PLUGIN_MIGRATIONS_TEST_PG_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(Path(__file__).parents[1]),
         f"{__file__}::test_each_database_starts_empty[postgresql]"],
        env={**env, "CI": "true"}, capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout
    assert "1 error" in result.stdout or "1 failed" in result.stdout
    assert "no PostgreSQL server" in result.stdout
