"""What probing found about crashes and user code: a killed migrator, table-lock waits, and revisions that raise."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from .helpers import Host

INDEPENDENT = {"equipment", "notifications"}  # the demo's plugins that do not need network
NEED_NETWORK = {"computers", "printers", "usb"}


def add_revision(host: Host, plugin: str, name: str, body: str, down_revision: str | None = None) -> Path:
    """A hand-written revision file in plugin's chain, on top of its baseline unless told otherwise."""
    path = host.root / "plugins" / plugin / "migrations" / "versions" / f"{name}.py"
    path.write_text(
        f'"""{name}"""\nimport time\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f"revision = {name!r}\ndown_revision = {down_revision or f'0001_baseline_{plugin}'!r}\n"
        f"branch_labels = None\ndepends_on = None\n\n\n{body}"
    )
    return path


def line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# -- a revision is the user's code: its errors are that plugin's failure ---------------------------------


def test_a_revision_that_raises_fails_its_plugin_and_no_other(demo_host: Host) -> None:
    revision = add_revision(
        demo_host, "network", "0002_network",
        "def upgrade():\n    op.add_column('subnets', sa.Column('note', sa.String(20)))\n"
        "    raise ValueError('the revision is wrong')\n\n\ndef downgrade():\n    pass\n",
    )
    result = demo_host.plugin_cli("upgrade-all")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [error] = result.stderr.strip().splitlines()
    where = f"plugins/network/migrations/versions/0002_network.py:{line_of(revision, 'raise ValueError')}"
    assert error.startswith(f'Error: plugin "network" failed: {where}: ValueError: the revision is wrong'), error
    assert "skipped as their dependencies failed: computers, printers, usb" in error
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:-1]}
    assert rows == {**dict.fromkeys(INDEPENDENT, "installed"), "network": "failed", **dict.fromkeys(NEED_NETWORK, "skipped")}
    # Rolled back as a whole: no network table, no version row, not even the baseline's.
    assert not {"subnets", "network_devices"} & demo_host.database.tables()
    assert demo_host.database.version_of("network") == []


def test_a_revision_that_cannot_be_imported_is_named_by_every_command(demo_host: Host) -> None:
    assert demo_host.plugin_cli("upgrade-all").returncode == 0
    revision = add_revision(demo_host, "network", "0002_network", "def upgrade(:\n    pass\n")
    where = f"plugins/network/migrations/versions/0002_network.py:{line_of(revision, 'def upgrade(:')}"

    upgrade = demo_host.plugin_cli("upgrade-all")
    assert upgrade.returncode == 1 and "Traceback" not in upgrade.stderr
    assert f'plugin "network" failed: {where}: SyntaxError' in upgrade.stderr
    rows = {line.split()[0]: line.split()[1] for line in upgrade.stdout.splitlines()[1:-1]}
    assert rows["network"] == "failed" and {rows[name] for name in INDEPENDENT} == {"current"}

    for command in (["status"], ["history", "network"], ["migrate", "network"], ["downgrade", "network", "base", "--yes"],
                    ["check"]):
        result = demo_host.plugin_cli(*command)
        assert result.returncode == 1, command
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("Error: ") and where in line and "SyntaxError" in line, (command, line)
    assert demo_host.database.version_of("network") == ["0001_baseline_network"]


# -- PostgreSQL: a killed migrator, and table locks ------------------------------------------------------


def backends_running(url: str, query: str) -> list[int]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return list(connection.scalars(
                sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE :q "
                        "AND pid <> pg_backend_pid()"),
                {"q": f"%{query}%"},
            ))
    finally:
        engine.dispose()


def terminate(url: str, pids: list[int]) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            for pid in pids:
                connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        engine.dispose()


@pytest.mark.parametrize("new_database", ["postgresql"], indirect=True)
def test_after_kill_9_the_next_migrator_waits_no_longer_than_its_lock_timeout(demo_host: Host) -> None:
    """The killed run's transaction goes on in the server; the lock must last exactly as long as it does."""
    url = demo_host.database.url
    add_revision(demo_host, "network", "0002_network",
                 "def upgrade():\n    op.execute('SELECT pg_sleep(60)')\n\n\ndef downgrade():\n    pass\n")
    killed = subprocess.Popen(
        [sys.executable, "-m", "shopapp.plugins", "upgrade-all"], cwd=demo_host.root,
        env={**os.environ, "DATABASE_URL": url}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not backends_running(url, "pg_sleep(60)"):
            assert killed.poll() is None and time.monotonic() < deadline, "the slow revision never started"
            time.sleep(0.2)
        killed.send_signal(signal.SIGKILL)
        killed.wait()

        started = time.monotonic()
        result = demo_host.plugin_cli("upgrade-all", "--lock-timeout", "3")
        waited = time.monotonic() - started
        assert result.returncode == 1, result.stdout
        assert "another migrator has held this database's migration lock for 3 s, nothing was changed" in result.stderr
        assert waited < 20, f"waited {waited:.0f} s behind the killed run's transaction"
    finally:
        terminate(url, backends_running(url, "pg_sleep(60)"))
        if killed.poll() is None:
            killed.kill()

    # The orphan was rolled back with its server process; the next run does its work.
    deadline = time.monotonic() + 30
    while backends_running(url, "pg_sleep(60)") and time.monotonic() < deadline:
        time.sleep(0.2)
    (demo_host.root / "plugins/network/migrations/versions/0002_network.py").write_text(
        "revision = '0002_network'\ndown_revision = '0001_baseline_network'\nbranch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n"
    )
    again = demo_host.plugin_cli("upgrade-all", "--lock-timeout", "10")
    assert again.returncode == 0, again.stderr
    assert demo_host.database.version_of("network") == ["0002_network"]


@pytest.mark.parametrize("new_database", ["postgresql"], indirect=True)
def test_lock_timeout_bounds_a_wait_for_a_table_lock(demo_host: Host) -> None:
    assert demo_host.plugin_cli("upgrade-all").returncode == 0
    add_revision(demo_host, "network", "0002_network",
                 "def upgrade():\n    op.add_column('subnets', sa.Column('note', sa.String(20)))\n\n\n"
                 "def downgrade():\n    op.drop_column('subnets', 'note')\n")
    holder = sa.create_engine(demo_host.database.url, poolclass=sa.pool.NullPool)
    with holder.connect() as connection:
        connection.execute(sa.text("LOCK TABLE subnets IN ACCESS EXCLUSIVE MODE"))  # an app's long transaction
        started = time.monotonic()
        result = demo_host.plugin_cli("migrate", "network", "--lock-timeout", "2")
        waited = time.monotonic() - started
        connection.rollback()
    holder.dispose()

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: waited 2 s for a table lock that another session holds, nothing was changed; "
        "let it finish (pg_stat_activity shows it), or wait longer with --lock-timeout"
    )
    assert waited < 15
    assert demo_host.database.version_of("network") == ["0001_baseline_network"]
    assert demo_host.plugin_cli("migrate", "network").returncode == 0
    assert demo_host.database.version_of("network") == ["0002_network"]
