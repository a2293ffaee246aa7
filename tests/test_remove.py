"""A plugin's departure: `remove NAME`, database first, files after, through both doors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from demo.run import build_host

from .helpers import Host, commit_all, git, tree_snapshot

NOTIFICATIONS = {"notifications", "notification_subscriptions"}


def removed_cleanly(host: Host, name: str) -> None:
    registry = json.loads((host.root / "shopapp/plugins/registry.json").read_text())
    assert name not in registry["plugins"]
    assert not (host.root / f".copier-answers.plugin-{name}.yml").exists()
    assert not (host.root / "plugins" / name / "migrations" / "alembic.ini").exists()
    assert not (host.root / "plugins" / name / "__init__.py").exists()
    assert f"alembic_version_{name}" not in host.database.tables()


def test_remove_drops_the_tables_and_version_table_then_the_scaffolding(demo_host: Host) -> None:
    assert demo_host.plugin_cli("upgrade-all").returncode == 0

    unanswered = demo_host.plugin_cli("remove", "notifications")
    assert unanswered.returncode == 1
    assert "drops these tables and their data: notification_subscriptions, notifications" in unanswered.stderr
    assert unanswered.stderr.strip().splitlines()[-1] == (
        'Error: removal of "notifications" aborted; nothing was changed (pass --yes to drop the tables)'
    )
    assert NOTIFICATIONS <= demo_host.database.tables()
    assert (demo_host.root / "plugins/notifications/migrations/alembic.ini").is_file()

    result = demo_host.plugin_cli("remove", "notifications", "--yes")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "notifications: dropped notification_subscriptions, notifications; removed its version table, "
        "scaffolding, answers file and registry entry",
        "left for you: plugins/notifications/models.py (delete it, or run remove with --delete-code)",
    ]
    assert not NOTIFICATIONS & demo_host.database.tables()
    removed_cleanly(demo_host, "notifications")
    assert (demo_host.root / "plugins/notifications/models.py").is_file()

    check = demo_host.plugin_cli("check")
    assert check.returncode == 0, check.stdout + check.stderr
    upgrade = demo_host.plugin_cli("upgrade-all")
    assert upgrade.returncode == 0 and upgrade.stdout.splitlines()[-1] == "5 plugins: 5 current"


def test_remove_through_flask_with_delete_code(demo_host: Host) -> None:
    env = {"SHOPAPP_DATABASE_URI": demo_host.database.url}
    assert demo_host.flask_cli("upgrade-all", env=env).returncode == 0
    result = demo_host.flask_cli("remove", "notifications", "--yes", "--delete-code", env=env)
    assert result.returncode == 0, result.stderr
    assert "left for you" not in result.stdout
    assert not (demo_host.root / "plugins/notifications").exists()
    removed_cleanly(demo_host, "notifications")


def test_remove_of_a_plugin_that_is_not_installed_only_changes_files(demo_host: Host) -> None:
    result = demo_host.plugin_cli("remove", "notifications")
    assert result.returncode == 0, result.stderr
    removed_cleanly(demo_host, "notifications")
    assert demo_host.database.tables() == set()


REFUSALS = [
    pytest.param(["network"], 'refusing to remove "network", nothing was changed: computers, printers depend on it; '
                 "remove them first, or drop network from their depends_on", id="plugins-depend-on-it"),
    pytest.param(["ghost"], 'unknown plugin "ghost"', id="unknown-plugin"),
]


@pytest.mark.parametrize(("args", "message"), REFUSALS)
def test_a_refused_removal_changes_nothing(demo_host: Host, args: list[str], message: str) -> None:
    assert demo_host.plugin_cli("upgrade-all").returncode == 0
    files, tables = tree_snapshot(demo_host.root), demo_host.database.tables()
    result = demo_host.plugin_cli("remove", *args, "--yes")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and message in line
    assert {path: data for path, data in tree_snapshot(demo_host.root).items() if not path.endswith(".db")} == {
        path: data for path, data in files.items() if not path.endswith(".db")
    }
    assert demo_host.database.tables() == tables


def test_a_removal_refused_by_a_foreign_key_from_the_core_changes_nothing(demo_host: Host) -> None:
    """usb's tables are referenced by a core table: the database step is refused and no file goes."""
    assert demo_host.plugin_cli("upgrade-all").returncode == 0
    demo_host.database.execute(
        "CREATE TABLE core_audit (id INTEGER PRIMARY KEY, device_id INTEGER REFERENCES usb_devices (id))"
    )
    files = tree_snapshot(demo_host.root)
    result = demo_host.plugin_cli("remove", "usb", "--yes")
    assert result.returncode == 1
    assert "table usb_devices is referenced by table core_audit (the core app)" in result.stderr
    assert "usb_devices" in demo_host.database.tables() and demo_host.database.version_of("usb")
    assert {p: d for p, d in tree_snapshot(demo_host.root).items() if not p.endswith(".db")} == {
        p: d for p, d in files.items() if not p.endswith(".db")
    }


def test_remove_sql_prints_the_database_step_and_changes_nothing(demo_host: Host) -> None:
    assert demo_host.plugin_cli("upgrade-all").returncode == 0
    files, tables = tree_snapshot(demo_host.root), demo_host.database.tables()
    result = demo_host.plugin_cli("remove", "notifications", "--sql")
    assert result.returncode == 0, result.stderr
    assert "INFO" not in result.stderr, result.stderr  # quiet unless -v, as every command is
    assert "DROP TABLE notification_subscriptions" in result.stdout and "DROP TABLE notifications" in result.stdout
    assert result.stdout.rstrip().endswith("DROP TABLE alembic_version_notifications;")
    assert demo_host.database.tables() == tables
    assert {p: d for p, d in tree_snapshot(demo_host.root).items() if not p.endswith(".db")} == {
        p: d for p, d in files.items() if not p.endswith(".db")
    }


def test_after_remove_the_regeneration_check_passes(tmp_path_factory: pytest.TempPathFactory, template_repo: Path) -> None:
    root = tmp_path_factory.mktemp("remove-host")
    build_host(root, template_repo, quiet=True)
    host = Host(root)
    (root / ".gitignore").write_text("*.db\n__pycache__/\n")
    commit_all(root, "host")
    assert host.plugin_cli("upgrade-all").returncode == 0
    assert host.plugin_cli("remove", "notifications", "--yes", "--delete-code").returncode == 0
    git(root, "add", "-A")
    result = host.plugin_cli("check-scaffolding")
    assert result.returncode == 0, result.stdout + result.stderr
    shutil.rmtree(root)
