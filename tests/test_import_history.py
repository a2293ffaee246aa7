"""`import-history`: a plugin's branch of one shared Alembic history becomes its own chain.

The old layout is built for real: a throwaway Alembic environment with
multiple bases (a core branch, the "badges" plugin's branch and the
"tickets" plugin's branch, each with its branch label) run with `alembic
upgrade heads`, one `alembic_version` table for all three. The host is the
demo host with the "badges" plugin scaffolded by Copier.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from .helpers import Database, Host, copy_plugin, run, tree_snapshot

LEGACY = "legacy_migrations"
INI = f"{LEGACY}/alembic.ini"

LEGACY_ENV = '''\
import os

from alembic import context
from sqlalchemy import create_engine

engine = create_engine(os.environ["DATABASE_URL"])
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
'''

#: (file, revision, down_revision, branch_labels, depends_on, upgrade)
LEGACY_REVISIONS = [
    ("c1_sites.py", "c1core", None, ("core",), None,
     'op.create_table("sites", sa.Column("id", sa.Integer(), primary_key=True), '
     'sa.Column("name", sa.String(80), nullable=False, unique=True))'),
    # Rattail's layout: the plugin's branch starts at no revision but depends on the core's.
    ("b1_badges.py", "b1badge", None, ("badges",), "c1core",
     'op.create_table("badges", sa.Column("id", sa.Integer(), primary_key=True), '
     'sa.Column("site_id", sa.Integer(), sa.ForeignKey("sites.id"), nullable=False), '
     'sa.Column("name", sa.String(40), nullable=False))'),
    ("b2_badge_level.py", "b2badge", "b1badge", None, None,
     'op.add_column("badges", sa.Column("level", sa.Integer(), nullable=True))'),
    ("t1_tickets.py", "t1ticket", None, ("tickets",), None,
     'op.create_table("tickets", sa.Column("id", sa.Integer(), primary_key=True))'),
]

BADGE_MODELS = '''\
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.models import db


class Badge(db.Model):
    __tablename__ = "badges"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id"))
    name: Mapped[str] = mapped_column(sa.String(40))
    level: Mapped[int | None]
'''


def write_revision(versions: Path, file: str, revision: str, down: object, labels: object, depends: object, upgrade: str) -> None:
    (versions / file).write_text(
        f'"""{file}"""\nfrom alembic import op\nimport sqlalchemy as sa\n\n'
        f"revision = {revision!r}\ndown_revision = {down!r}\nbranch_labels = {labels!r}\ndepends_on = {depends!r}\n\n\n"
        f"def upgrade():\n    {upgrade}\n\n\ndef downgrade():\n    pass\n"
    )


@pytest.fixture(scope="session")
def badges_host_template(demo_host_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo host with plugin "badges" scaffolded, and the app's old Alembic environment beside it."""
    root = tmp_path_factory.mktemp("badges-host") / "host"
    shutil.copytree(demo_host_template, root, symlinks=True)
    (root / "plugins/badges").mkdir(parents=True)
    (root / "plugins/badges/models.py").write_text(BADGE_MODELS)
    scaffolded = copy_plugin(root, plugin_name="badges", tables=["badges"])
    assert scaffolded.returncode == 0, scaffolded.stderr
    versions = root / LEGACY / "versions"
    versions.mkdir(parents=True)
    (root / LEGACY / "env.py").write_text(LEGACY_ENV)
    (root / INI).write_text("[alembic]\nscript_location = %(here)s\npath_separator = os\n")
    for revision in LEGACY_REVISIONS:
        write_revision(versions, *revision)
    return root


@pytest.fixture
def host(badges_host_template: Path, tmp_path: Path, database: Database) -> Host:
    """A private copy of the badges host, its database built with the old layout and holding one badge."""
    root = tmp_path / "host"
    shutil.copytree(badges_host_template, root, symlinks=True)
    host = Host(root, database=database)
    assert legacy_alembic(host, "upgrade", "heads").returncode == 0
    database.execute("INSERT INTO sites (id, name) VALUES (1, 'main')")
    database.execute("INSERT INTO badges (id, site_id, name, level) VALUES (7, 1, 'gold', 3)")
    return host


def legacy_alembic(host: Host, *args: str, database: Database | None = None):
    """The core app's own Alembic on the shared table, as it ran before the import."""
    url = (database or host.database).url
    result = run([sys.executable, "-m", "alembic", "-c", INI, *args], host.root, {"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    return result


def shared_rows(database: Database) -> set[str]:
    return {row[0] for row in database.execute("SELECT version_num FROM alembic_version")}


def ok(result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_moves_the_branch_and_the_new_chain_upgrades_further(host: Host) -> None:
    assert shared_rows(host.database) == {"t1ticket", "b2badge"}  # c1core is implied by b2badge's depends_on
    versions = host.root / "plugins/badges/migrations/versions"

    before = tree_snapshot(host.root)
    preview = ok(host.plugin_cli("import-history", "badges", "--from", INI, "--sql"))
    assert "-- badges: would copy 2 revision(s) into plugins/badges/migrations/versions: b1_badges.py, b2_badge_level.py" in preview
    assert "DELETE FROM alembic_version WHERE alembic_version.version_num = 'b2badge';" in preview
    assert "INSERT INTO alembic_version (version_num) VALUES ('c1core');" in preview
    assert "CREATE TABLE alembic_version_badges" in preview
    assert "INSERT INTO alembic_version_badges (version_num) VALUES ('b2badge');" in preview
    assert tree_snapshot(host.root) == before
    assert shared_rows(host.database) == {"t1ticket", "b2badge"}
    assert "alembic_version_badges" not in host.database.tables()

    lines = ok(host.plugin_cli("import-history", "badges", "--from", INI)).splitlines()
    assert lines[:4] == [
        "badges: copied 2 revision(s) into plugins/badges/migrations/versions: b1_badges.py, b2_badge_level.py",
        "note: b1_badges.py: dropped depends_on c1core (not in the branch)",
        "badges: removed the scaffold baseline 0001_baseline.py: the chain starts at the branch's first revision",
        "badges: moved b2badge from alembic_version to alembic_version_badges; alembic_version gets c1core back, "
        "which that row stood for",
    ]
    assert sorted(path.name for path in versions.glob("*.py")) == ["b1_badges.py", "b2_badge_level.py"]
    assert (versions / "b2_badge_level.py").read_bytes() == (host.root / LEGACY / "versions/b2_badge_level.py").read_bytes()
    first = (versions / "b1_badges.py").read_text()
    assert "depends_on = None\n" in first and "shared_history_parents = ('c1core',)\n" in first
    assert (host.root / LEGACY / "versions/b1_badges.py").exists(), "copied, never moved unless asked"
    assert shared_rows(host.database) == {"t1ticket", "c1core"}
    assert host.database.version_of("badges") == ["b2badge"]

    status = ok(host.plugin_cli("status"))
    assert any(line.split()[:3] == ["badges", "b2badge", "b2badge"] for line in status.splitlines()), status
    assert "models, registry and migrations agree" in ok(host.plugin_cli("check", "badges"))

    # The next revision of the imported chain, autogenerated from a new column, then upgrade-all.
    models = host.root / "plugins/badges/models.py"
    models.write_text(models.read_text() + "    color: Mapped[str | None] = mapped_column(sa.String(20))\n")
    written = ok(host.plugin_cli("revision", "badges", "-m", "badge colour", "--autogenerate"))
    assert "0003_badges" in written and "add column badges.color" in written.lower(), written
    assert not (host.root / "plugins/badges/migrations/baseline_schema.py").exists()
    upgraded = ok(host.plugin_cli("upgrade-all"))
    assert any(line.split()[:2] == ["badges", "upgraded"] for line in upgraded.splitlines()), upgraded
    assert host.database.version_of("badges") == ["0003_badges"]
    assert host.database.execute("SELECT id, site_id, name, level, color FROM badges") == [(7, 1, "gold", 3, None)]
    assert shared_rows(host.database) == {"t1ticket", "c1core"}
    assert "models, registry and migrations agree" in ok(host.plugin_cli("check"))

    # Once deployed elsewhere: files already there, nothing to move; --move-files takes them out of the old place.
    again = ok(host.plugin_cli("import-history", "badges", "--from", INI, "--move-files")).splitlines()
    assert again[0] == "badges: its revision files are already imported"
    assert again[1] == "badges: alembic_version_badges already records 0003_badges; nothing to move"
    assert not (host.root / LEGACY / "versions/b1_badges.py").exists()
    # The core's own Alembic keeps working on the other branches, and no longer sees the plugin's.
    current = legacy_alembic(host, "current").stdout
    assert "c1core" in current and "t1ticket" in current and "badge" not in current
    legacy_alembic(host, "upgrade", "heads")
    assert shared_rows(host.database) == {"t1ticket", "c1core"}


def test_every_other_database_follows_once_the_files_have_left_the_old_place(host: Host, new_database) -> None:
    production = new_database()
    legacy_alembic(host, "upgrade", "heads", database=production)
    ok(host.plugin_cli("import-history", "badges", "--from", INI, "--move-files"))
    assert not list((host.root / LEGACY / "versions").glob("b*.py"))

    lines = ok(host.plugin_cli("import-history", "badges", "--from", INI, database_url=production.url)).splitlines()
    assert lines == [
        "badges: its revision files are already imported",
        "badges: moved b2badge from alembic_version to alembic_version_badges; alembic_version gets c1core back, "
        "which that row stood for",
    ]
    assert shared_rows(production) == {"t1ticket", "c1core"} and production.version_of("badges") == ["b2badge"]
    assert "c1core" in legacy_alembic(host, "current", database=production).stdout


def test_the_flask_door_previews_the_same_sql(host: Host) -> None:
    preview = host.flask_cli("import-history", "badges", "--from", INI, "--sql", env={"DATABASE_URL": host.database.url})
    assert "INSERT INTO alembic_version_badges (version_num) VALUES ('b2badge');" in ok(preview)
    assert shared_rows(host.database) == {"t1ticket", "b2badge"}


def test_a_fresh_database_gets_the_files_and_no_row(host: Host, new_database) -> None:
    fresh = new_database()
    host.create_all(fresh.url, tables=["sites"])
    result = ok(host.plugin_cli("import-history", "badges", "--from", INI, database_url=fresh.url))
    assert "badges: alembic_version holds no revision of the branch (a fresh database?); nothing to move" in result
    assert "alembic_version" not in fresh.tables()
    upgraded = ok(host.plugin_cli("upgrade-all", database_url=fresh.url))
    assert any(line.split()[:2] == ["badges", "installed"] for line in upgraded.splitlines()), upgraded
    assert fresh.version_of("badges") == ["b2badge"]


def break_baseline(host: Host) -> None:
    baseline = host.root / "plugins/badges/migrations/versions/0001_baseline.py"
    baseline.write_text(baseline.read_text().replace("create_plugin_tables(", "print(); create_plugin_tables("))


def core_depends_on_the_branch(host: Host) -> None:
    write_revision(host.root / LEGACY / "versions", "c2_core.py", "c2core", "c1core", None, "b1badge", "pass")


def grow_the_scaffold_chain(host: Host) -> None:
    (host.root / "plugins/badges/migrations/versions/0002_more.py").write_text(
        "revision = '0002_badges'\ndown_revision = '0001_baseline_badges'\n\n\ndef upgrade():\n    pass\n"
    )


def fork_the_branch(host: Host) -> None:
    write_revision(host.root / LEGACY / "versions", "b3_fork.py", "b3badge", "b1badge", None, None, "pass")


def merge_the_branch_with_the_core(host: Host) -> None:
    write_revision(host.root / LEGACY / "versions", "b3_merge.py", "b3badge", ("b2badge", "c1core"), None, None, "pass")


#: (extra arguments, a command run first, a change made first, the error)
REFUSALS = [
    pytest.param(["--branch", "nope"], None, None,
                 '--from legacy_migrations/alembic.ini: no revision carries the branch label "nope" '
                 "(labels there: badges, core, tickets); name the plugin's label with --branch", id="unknown-branch"),
    pytest.param([], ["stamp", "badges", "0001_baseline_badges"], None,
                 "alembic_version_badges already records 0001_baseline_badges, nothing was changed; 0001_baseline_badges "
                 "is not in the imported chain: if that row came from `upgrade-all` or `stamp` before the import, clear "
                 "it with `stamp badges base` and import again", id="plugin-version-table-has-a-row"),
    pytest.param([], None, break_baseline, "0001_baseline.py was edited, nothing was changed", id="edited-baseline"),
    pytest.param([], None, core_depends_on_the_branch,
                 'c2_core.py: revision c2core depends on b1badge of branch "badges", nothing was changed; '
                 "the branch cannot leave while other revisions need it", id="core-needs-the-branch"),
    pytest.param([], None, grow_the_scaffold_chain, "versions already holds 0001_baseline.py, 0002_more.py, nothing "
                 "was changed; the import makes the chain of a plugin whose chain is only its scaffold baseline",
                 id="plugin-chain-has-grown"),
    pytest.param([], None, fork_the_branch, 'branch "badges" has 2 heads (b2badge, b3badge), nothing was changed; '
                 "merge them with the old environment's `alembic merge` first", id="branch-with-two-heads"),
    pytest.param([], None, merge_the_branch_with_the_core, 'b3_merge.py: merges branch "badges" with c1core outside it, '
                 "nothing was changed; a plugin's chain cannot hold a merge with the core", id="branch-merges-the-core"),
    pytest.param(["--version-table", "alembic version"], None, None,
                 '--version-table "alembic version": name the shared version table', id="bad-version-table"),
]


@pytest.mark.parametrize(("extra", "first", "prepare", "message"), REFUSALS)
def test_refusals_change_nothing(host: Host, extra: list[str], first: list[str] | None, prepare, message: str) -> None:
    if first:
        ok(host.plugin_cli(*first))
    if prepare:
        prepare(host)
    before, rows, own = tree_snapshot(host.root), shared_rows(host.database), host.database.version_of("badges")
    for sql in ([], ["--sql"]):
        result = host.plugin_cli("import-history", "badges", "--from", INI, *extra, *sql)
        assert result.returncode == 1, result.stdout
        assert message in result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr
    assert tree_snapshot(host.root) == before
    assert (shared_rows(host.database), host.database.version_of("badges")) == (rows, own)
