"""`squash NAME [--to REV] [--prune]`: a long chain's fresh installs take one step; old databases keep working.

The host is the demo's, built once per module, with the notifications chain
grown to 50 revisions: 0002 adds a column (the models say so too), the rest
only run a statement, so what a fresh install runs can be counted in the log.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from demo.run import build_host

from .helpers import Database, Host, commit_all, probe, reflected_schema, run, tree_snapshot

CHAIN = 50
HEAD = f"{CHAIN:04d}_notifications"
VERSIONS = Path("plugins/notifications/migrations/versions")
SQUASH = Path("plugins/notifications/migrations/squash_schema.py")

REVISION = '''"""{message}

Revision ID: {revision}
Revises: {down}
"""
from alembic import op
import sqlalchemy as sa

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
{upgrade}


def downgrade():
{downgrade}
'''


def revision_file(number: int) -> str:
    revision, down = f"{number:04d}_notifications", (
        "0001_baseline_notifications" if number == 2 else f"{number - 1:04d}_notifications"
    )
    if number == 2:
        return REVISION.format(
            message="add priority", revision=revision, down=down,
            upgrade='    op.add_column("notifications", sa.Column("priority", sa.Integer(), server_default="0", '
                    "nullable=False))",
            downgrade='    with op.batch_alter_table("notifications") as batch:\n        batch.drop_column("priority")',
        )
    return REVISION.format(message=f"step {number}", revision=revision, down=down,
                           upgrade='    op.execute("SELECT 1")', downgrade='    op.execute("SELECT 1")')


def grow(root: Path, chain: int = CHAIN) -> None:
    """Freeze the notifications baseline, add the priority column to its models, and write revisions 2..chain."""
    host = Host(root)
    assert host.plugin_cli("upgrade-all").returncode == 0
    frozen = host.plugin_cli("freeze-baseline", "notifications")
    assert frozen.returncode == 0, frozen.stderr
    (root / "app.db").unlink()
    models = root / "plugins/notifications/models.py"
    models.write_text(models.read_text().replace(
        "    message: Mapped[str] = mapped_column(sa.Text)\n",
        '    message: Mapped[str] = mapped_column(sa.Text)\n    priority: Mapped[int] = mapped_column(server_default="0")\n',
    ))
    for number in range(2, chain + 1):
        (root / VERSIONS / f"{number:04d}_step.py").write_text(revision_file(number))


@pytest.fixture(scope="module")
def grown_host_template(demo_host_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo host with a 50-revision notifications chain and its frozen baseline; copy it, don't change it."""
    root = tmp_path_factory.mktemp("squash-host") / "host"
    shutil.copytree(demo_host_template, root, symlinks=True)
    grow(root)
    return root


@pytest.fixture
def host(grown_host_template: Path, tmp_path: Path, new_database) -> Host:
    root = tmp_path / "host"
    shutil.copytree(grown_host_template, root, symlinks=True)
    built = Host(root, database=new_database())
    built.new_database = new_database  # type: ignore[attr-defined]
    return built


def fresh(host: Host) -> Database:
    return host.new_database()  # type: ignore[attr-defined, no-any-return]


def mine(database: Database) -> dict:
    """The notifications plugin's tables by reflection, columns in name order (create_all puts added ones elsewhere)."""
    return {
        table: {**shape, "columns": sorted(shape["columns"])}
        for table, shape in reflected_schema(database.url).items()
        if table in ("notifications", "notification_subscriptions")
    }


def revisions_run(host: Host, database: Database, *args: str) -> int:
    """How many notifications revisions `-v upgrade-all` (or ARGS) runs on ``database``."""
    result = host.plugin_cli("-v", *(args or ("upgrade-all",)), database_url=database.url)
    assert result.returncode == 0, result.stdout + result.stderr
    return sum(1 for line in result.stderr.splitlines() if "Running upgrade" in line and "_notifications" in line)


def test_fresh_install_of_a_squashed_chain_of_50_runs_no_revision(host: Host) -> None:
    stepwise = host.database
    assert revisions_run(host, stepwise) == CHAIN
    result = host.plugin_cli("squash", "notifications")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"notifications: wrote {SQUASH}: fresh installs build the schema at {HEAD} instead of running 50 revision(s)"
    )
    squashed = fresh(host)
    assert revisions_run(host, squashed) == 0  # a chain of 2 runs 2
    assert squashed.version_of("notifications") == [HEAD]
    assert reflected_schema(squashed.url) == reflected_schema(stepwise.url)
    # Issue 17: no slower than a chain of 2. Stamping the squash's revision takes the chain's graph (cached), and
    # imports none of the 50 revision files; the other plugins' chains run their one baseline each.
    another = fresh(host)
    _, ran = probe(host, "upgrade-all", database_url=another.url)
    assert not [path for path in ran["executed"] if path.startswith("notifications/")], ran["executed"]
    assert another.version_of("notifications") == [HEAD]
    assert reflected_schema(another.url) == reflected_schema(stepwise.url)
    # The stepwise database upgrades on from the squash with nothing to do.
    assert revisions_run(host, stepwise) == 0
    check = host.plugin_cli("check")
    assert check.returncode == 0, check.stdout + check.stderr


def test_databases_before_and_past_the_squash_keep_working_with_their_rows(host: Host) -> None:
    early, late = host.database, fresh(host)
    assert revisions_run(host, early, "migrate", "notifications", "--revision", "0002_notifications") == 2
    early.execute("INSERT INTO notifications (id, message, priority) VALUES (1, 'kept', 7)")
    assert revisions_run(host, late, "migrate", "notifications", "--revision", "0040_notifications") == 40
    late.execute("INSERT INTO notifications (id, message, priority) VALUES (1, 'kept too', 3)")

    assert host.plugin_cli("squash", "notifications", "--to", "0030_notifications").returncode == 0
    assert revisions_run(host, early) == CHAIN - 2  # before the squash: the old revisions
    assert revisions_run(host, late) == CHAIN - 40  # past it: on from where it was
    newest = fresh(host)
    assert revisions_run(host, newest) == CHAIN - 30  # only the revisions after the squash
    assert early.execute("SELECT message, priority FROM notifications") == [("kept", 7)]
    assert late.execute("SELECT message, priority FROM notifications") == [("kept too", 3)]
    assert reflected_schema(early.url) == reflected_schema(late.url) == reflected_schema(newest.url)
    # The fourth path, adoption of a create_all() database, stamps the head as before.
    adopted = fresh(host)
    host.create_all(adopted.url)
    assert revisions_run(host, adopted) == 0
    assert adopted.version_of("notifications") == [HEAD]
    assert mine(adopted) == mine(newest)


def test_prune_is_refused_while_a_database_is_before_the_squash_then_deletes_the_old_revisions(host: Host) -> None:
    behind, ahead = host.database, fresh(host)
    assert revisions_run(host, behind, "migrate", "notifications", "--revision", "0010_notifications") == 10
    assert revisions_run(host, ahead) == CHAIN
    assert host.plugin_cli("squash", "notifications", "--to", "0030_notifications").returncode == 0
    before = tree_snapshot(host.root)

    refused = host.plugin_cli("squash", "notifications", "--prune", "--database-url", ahead.url,
                              "--database-url", behind.url)
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith('Error: refusing to prune "notifications", nothing was changed: the database ')
    assert line.endswith(" is at 0010_notifications, before 0030_notifications; upgrade it first "
                         "(`upgrade-all --database-url URL`)")
    assert tree_snapshot(host.root) == before

    assert revisions_run(host, behind) == CHAIN - 10
    pruned = host.plugin_cli("squash", "notifications", "--prune", "--database-url", ahead.url,
                             "--database-url", behind.url)
    assert pruned.returncode == 0, pruned.stderr
    versions = sorted(path.name for path in (host.root / VERSIONS).glob("*.py"))
    assert versions == ["0001_baseline.py", *(f"{n:04d}_step.py" for n in range(31, CHAIN + 1))]
    assert 'revision = "0030_notifications"' in (host.root / VERSIONS / "0001_baseline.py").read_text()
    assert not (host.root / SQUASH).exists()  # it is the frozen baseline of the new base now
    assert "0030_notifications" in (host.root / "plugins/notifications/migrations/baseline_schema.py").read_text()

    newest = fresh(host)
    assert revisions_run(host, newest) == 1 + CHAIN - 30  # the squash, now the chain's base, then the rest
    assert revisions_run(host, behind) == revisions_run(host, ahead) == 0
    assert reflected_schema(newest.url) == reflected_schema(behind.url) == reflected_schema(ahead.url)
    check = host.plugin_cli("check")
    assert check.returncode == 0, check.stdout + check.stderr
    # A downgrade to base still removes the plugin's tables.
    down = host.plugin_cli("downgrade", "notifications", "base", "--yes", database_url=newest.url)
    assert down.returncode == 0, down.stderr
    assert not {"notifications", "notification_subscriptions"} & newest.tables()

    # Squashed again, the pruned base still builds what it did: the stepwise path from empty.
    assert host.plugin_cli("squash", "notifications", "--to", "0040_notifications").returncode == 0
    stepwise = fresh(host)
    assert revisions_run(host, stepwise, "migrate", "notifications", "--revision", "0035_notifications") == 6
    assert revisions_run(host, stepwise) == CHAIN - 35
    assert revisions_run(host, newest) == CHAIN - 40  # a fresh install from the new squash
    assert reflected_schema(stepwise.url) == reflected_schema(newest.url)
    assert host.plugin_cli("squash", "notifications", "--prune", "--database-url", stepwise.url).returncode == 0
    assert sorted(path.name for path in (host.root / VERSIONS).glob("*.py")) == [
        "0001_baseline.py", *(f"{n:04d}_step.py" for n in range(41, CHAIN + 1))
    ]


@pytest.mark.parametrize("new_database", ["sqlite"], indirect=True)
def test_squash_through_flask_and_sql_preview(host: Host) -> None:
    result = host.flask_cli("squash", "notifications", "--to", "0045_notifications",
                            env={"SHOPAPP_DATABASE_URI": host.database.url})
    assert result.returncode == 0, result.stderr
    assert 'REVISION = "0045_notifications"' in (host.root / SQUASH).read_text()
    preview = host.plugin_cli("migrate", "notifications", "--sql")
    assert preview.returncode == 0, preview.stderr
    assert "-- plugin notifications: base -> head, from its squash at 0045_notifications" in preview.stdout
    assert "CREATE TABLE notifications" in preview.stdout
    assert preview.stdout.count("Running upgrade") == CHAIN - 45
    assert host.database.tables() == set()  # the preview created nothing (no SQLite file either)


REFUSALS = [
    pytest.param(["--to", "0099_notifications"], 'Error: plugin "notifications": "0099_notifications" is no revision '
                 "of its chain; name one that `history notifications` lists", id="unknown-revision"),
    pytest.param(["--to", "0001_baseline_notifications"], 'Error: plugin "notifications": "0001_baseline_notifications" '
                 "is the first revision of its chain, there is nothing before it to squash", id="first-revision"),
    pytest.param(["--prune"], 'Error: plugin "notifications" has no squash to prune to; write one with '
                 "`squash notifications` first", id="prune-without-squash"),
]


@pytest.mark.parametrize("new_database", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("args", "message"), REFUSALS)
def test_refusals_change_nothing(host: Host, args: list[str], message: str) -> None:
    before = tree_snapshot(host.root)
    result = host.plugin_cli("squash", "notifications", *args)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [message]
    assert tree_snapshot(host.root) == before


@pytest.mark.parametrize("new_database", ["sqlite"], indirect=True)
def test_the_host_generated_tests_pass_on_a_squashed_then_pruned_chain(host: Host) -> None:
    assert host.plugin_cli("squash", "notifications", "--to", "0030_notifications").returncode == 0
    assert host.plugin_cli("upgrade-all").returncode == 0
    pruned = host.plugin_cli("squash", "notifications", "--prune")  # checks the default database
    assert pruned.returncode == 0, pruned.stderr
    result = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_plugin_migrations.py",
                  "-k", "notifications or create_all or drift"], host.root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " failed" not in result.stdout


@pytest.mark.parametrize("new_database", ["sqlite"], indirect=True)
def test_check_finds_a_squash_that_differs_from_its_chain(host: Host) -> None:
    assert host.plugin_cli("squash", "notifications", "--to", "0030_notifications").returncode == 0
    squash = host.root / SQUASH
    text = squash.read_text()
    assert "sa.Column('priority'" in text, text
    squash.write_text("\n".join(line for line in text.splitlines() if "sa.Column('priority'" not in line) + "\n")
    check = host.plugin_cli("check")
    assert check.returncode == 1
    assert (
        'plugin "notifications": its squash squash_schema.py does not build what its chain builds at '
        "0030_notifications (tables notifications differ); write it again with "
        "`squash notifications --to 0030_notifications`"
    ) in check.stdout + check.stderr


@pytest.mark.parametrize("new_database", ["sqlite"], indirect=True)
def test_squash_warns_of_rows_that_revisions_insert(host: Host) -> None:
    (host.root / VERSIONS / "0051_seed.py").write_text(
        REVISION.format(message="seed", revision="0051_notifications", down=HEAD,
                        upgrade="    op.execute(\"INSERT INTO notifications (message) VALUES ('welcome')\")",
                        downgrade='    op.execute("DELETE FROM notifications")')
    )
    result = host.plugin_cli("squash", "notifications")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == (
        "warning: revisions up to 0051_notifications insert rows into notifications, which the squash does not "
        "carry: insert them in a revision after 0051_notifications"
    )


def test_after_prune_the_regeneration_check_passes(tmp_path_factory: pytest.TempPathFactory, template_repo: Path) -> None:
    root = tmp_path_factory.mktemp("squash-scaffolding")
    build_host(root, template_repo, quiet=True)
    (root / ".gitignore").write_text("*.db\n__pycache__/\n")
    grow(root, 3)
    host = Host(root)
    assert host.plugin_cli("squash", "notifications", "--to", "0002_notifications").returncode == 0
    assert host.plugin_cli("upgrade-all").returncode == 0
    assert host.plugin_cli("squash", "notifications", "--prune").returncode == 0
    commit_all(root, "squashed and pruned")
    result = host.plugin_cli("check-scaffolding")
    assert result.returncode == 0, result.stdout + result.stderr
    shutil.rmtree(root)
