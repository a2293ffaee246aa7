"""Chains over a plugin's whole life: a baseline that stops moving, per-plugin autogenerate,
fresh installs, adoption of create_all databases, drift checks, moving tables between owners.

The models of plugin "inventory" go through three versions written here:
v1 (items), v2 (items gains a column), v3 (a new table with a foreign key to items).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from .helpers import Database, Host, commit_all, copier, copy_host, copy_plugin, make_sqlalchemy_app, reflected_schema, run

MODELS_V1 = '''import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.models import Base


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(40), index=True)
    active: Mapped[bool] = mapped_column(server_default=sa.true())
'''
MODELS_V2 = MODELS_V1 + '''    sku: Mapped[str | None] = mapped_column(sa.String(20))
'''
MODELS_V3 = MODELS_V2 + '''

class ItemTag(Base):
    __tablename__ = "item_tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(sa.ForeignKey("items.id"), index=True)
    tag: Mapped[str] = mapped_column(sa.String(30))
'''
NOTES_V1 = '''import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.models import Base


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(sa.Text)
'''
NOTES_CHANGED = NOTES_V1 + '''    pinned: Mapped[bool | None]
'''


def cli(host: Host, database: Database | None, *args: str):
    """`python -m shopapp.plugins ARGS` against database (or, for database-free commands, none)."""
    env = {"DATABASE_URL": database.url} if database else {"DATABASE_URL": ""}
    return run([sys.executable, "-m", "shopapp.plugins", *args], host.root, env)


def ok(result) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def write_models(host: Host, plugin: str, text: str) -> None:
    (host.root / "plugins" / plugin / "models.py").write_text(text)


def upgrade_operations(path: Path) -> list[str]:
    """The op.* calls in a revision's upgrade(), e.g. ["add_column"]."""
    tree = ast.parse(path.read_text())
    upgrade = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "upgrade")
    return [
        node.func.attr
        for node in ast.walk(upgrade)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and getattr(node.func.value, "id", None) in ("op", "batch_op")
        and node.func.attr != "batch_alter_table"
    ]


def make_host(root: Path, template: Path) -> Host:
    """A plain SQLAlchemy app with plugins inventory (models v1) and notes, committed."""
    make_sqlalchemy_app(root, "shopapp")
    assert copy_host(root, template=template).returncode == 0
    host = Host(root)
    for name, tables in (("inventory", ["items"]), ("notes", ["notes"])):
        assert copy_plugin(root, template=template, plugin_name=name, tables=tables, with_models=False).returncode == 0
    write_models(host, "inventory", MODELS_V1)
    write_models(host, "notes", NOTES_V1)
    commit_all(root, "plugins")
    return host


def grow_chain(host: Host, dev: Database) -> None:
    """Take inventory from v1 to v3 the way a developer does, with `revision --autogenerate` against dev."""
    ok(cli(host, dev, "upgrade-all"))
    write_models(host, "inventory", MODELS_V2)
    ok(cli(host, dev, "revision", "inventory", "-m", "add sku", "--autogenerate"))
    ok(cli(host, dev, "migrate", "inventory"))
    commit_all(host.root, "inventory v2")
    update = copier(host.root, "update", "--trust", "--defaults", "-a", ".copier-answers.plugin-inventory.yml",
                    "-d", "tables=[items, item_tags]")
    assert update.returncode == 0, update.stderr
    write_models(host, "inventory", MODELS_V3)
    ok(cli(host, dev, "revision", "inventory", "-m", "add tags", "--autogenerate"))
    ok(cli(host, dev, "migrate", "inventory"))
    commit_all(host.root, "inventory v3")


def test_autogenerate_writes_exactly_the_plugins_own_changes(tmp_path: Path, template_repo: Path, database: Database) -> None:
    host = make_host(tmp_path, template_repo)
    ok(cli(host, database, "upgrade-all"))
    versions = tmp_path / "plugins/inventory/migrations/versions"

    # Only notes' models changed: inventory's autogenerate writes a migration with no operations.
    write_models(host, "notes", NOTES_CHANGED)
    empty = ok(cli(host, database, "revision", "inventory", "-m", "nothing of mine", "--autogenerate"))
    [path] = versions.glob("0002_inventory_*.py")
    assert empty.strip() == f"wrote {path}"
    assert upgrade_operations(path) == []
    path.unlink()

    # notes' own autogenerate writes exactly that change.
    ok(cli(host, database, "revision", "notes", "-m", "pin notes", "--autogenerate"))
    [notes_revision] = (tmp_path / "plugins/notes/migrations/versions").glob("0002_notes_*.py")
    assert upgrade_operations(notes_revision) == ["add_column"]
    assert "'pinned'" in notes_revision.read_text()

    # inventory's models change: its autogenerate writes exactly that change, on its own chain.
    write_models(host, "inventory", MODELS_V2)
    ok(cli(host, database, "revision", "inventory", "-m", "add sku", "--autogenerate"))
    [sku] = versions.glob("0002_inventory_*.py")
    assert upgrade_operations(sku) == ["add_column"]
    text = sku.read_text()
    assert "revision: str = '0002_inventory'" in text
    assert "down_revision: Union[str, Sequence[str], None] = '0001_baseline_inventory'" in text
    assert "'sku'" in text and "notes" not in text and "accounts" not in text and "alembic_version" not in text


def test_the_baseline_freezes_when_the_chain_grows(tmp_path: Path, template_repo: Path, database: Database) -> None:
    host = make_host(tmp_path, template_repo)
    frozen = tmp_path / "plugins/inventory/migrations/baseline_schema.py"
    grow_chain(host, database)

    # Frozen from the database at the baseline, before "add sku": items without sku.
    text = frozen.read_text()
    assert text.startswith('"""Frozen baseline of the "inventory" plugin: the schema 0001_baseline_inventory built.')
    module = ast.parse(text)
    assert [node.name for node in module.body if isinstance(node, ast.FunctionDef)] == ["create_items"]
    assert "sku" not in text and "item_tags" not in text
    assert "sa.Column('active', sa.Boolean(), server_default=sa.true()" in text  # portable, not '1' or 'true'
    assert "op.create_index('ix_items_name', 'items', ['name'], unique=False" in text
    assert [p.name.split("_")[0] for p in sorted((tmp_path / "plugins/inventory/migrations/versions").glob("*.py"))] == [
        "0001", "0002", "0003",
    ]


def test_four_paths_end_in_the_same_schema(tmp_path: Path, template_repo: Path, new_database) -> None:
    host = make_host(tmp_path, template_repo)
    day_one = new_database()
    ok(cli(host, day_one, "upgrade-all"))  # built at 0001 with the v1 models, before any change
    grow_chain(host, new_database())

    one_by_one = new_database()
    for revision in ("0001_baseline_inventory", "0002_inventory", "0003_inventory"):
        ok(cli(host, one_by_one, "migrate", "inventory", "--revision", revision))
        assert one_by_one.version_of("inventory") == [revision]
    ok(cli(host, one_by_one, "migrate", "notes"))

    fresh = new_database()
    assert "inventory  installed  installed at 0003_inventory" in ok(cli(host, fresh, "upgrade-all"))

    assert "inventory  upgraded  0001_baseline_inventory -> 0003_inventory" in ok(cli(host, day_one, "upgrade-all"))

    adopted = new_database()
    host.create_all(adopted.url)
    assert "inventory  adopted  adopted at 0003_inventory" in ok(cli(host, adopted, "upgrade-all"))

    schemas = {name: reflected_schema(db.url) for name, db in
               (("one by one", one_by_one), ("fresh", fresh), ("day one", day_one), ("adopted", adopted))}
    reference = schemas["one by one"]
    assert {"items", "item_tags", "notes"} <= set(reference)
    assert "sku" in [column[0] for column in reference["items"]["columns"]]
    for name, schema in schemas.items():
        if name != "accounts":
            schema.pop("accounts", None)  # the core table exists only where create_all made it
    assert all(schema == schemas["one by one"] for schema in schemas.values()), schemas

    # The host's own tests, the chain replays included (upgrade one revision at a time from
    # empty, models match DDL, up/down consistency), pass on the grown chain.
    generated = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], host.root)
    assert generated.returncode == 0, generated.stdout
    assert "test_upgrade_one_revision_at_a_time[inventory] PASSED" in run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests", "-k", "test_upgrade"], host.root
    ).stdout


@pytest.fixture
def grown_host(tmp_path: Path, template_repo: Path) -> Host:
    host = make_host(tmp_path / "host", template_repo)
    grow_chain(host, Database(f"sqlite:///{tmp_path / 'dev.sqlite3'}"))
    return host


def test_adoption_refuses_a_database_that_differs_and_changes_nothing(grown_host: Host, database: Database) -> None:
    grown_host.create_all(database.url)
    database.execute("ALTER TABLE items DROP COLUMN sku")
    before = reflected_schema(database.url)

    result = cli(grown_host, database, "upgrade-all")

    assert result.returncode == 1
    assert 'plugin "inventory" failed: refusing to adopt existing tables that differ from the models, nothing was ' \
           "changed: add column items.sku; if the database is at an older revision of the chain, record it with " \
           "`stamp inventory REVISION` and migrate from there" in result.stderr
    assert database.version_of("inventory") == []
    assert database.version_of("notes") == ["0001_baseline_notes"]  # independent plugins go on
    assert reflected_schema(database.url) == before

    # The database really is at 0001 with item_tags made by hand: say so, and migrate from there.
    database.execute("DROP TABLE item_tags")
    ok(cli(grown_host, database, "stamp", "inventory", "0001_baseline_inventory"))
    assert "inventory  upgraded  0001_baseline_inventory -> 0003_inventory" in ok(cli(grown_host, database, "upgrade-all"))


def test_adoption_refuses_when_only_some_tables_exist(grown_host: Host, database: Database) -> None:
    grown_host.create_all(database.url, tables=["items"])
    result = cli(grown_host, database, "migrate", "inventory")
    assert result.returncode == 1
    assert "refusing to adopt existing tables, nothing was changed: items exist but item_tags do not" in result.stderr
    assert database.tables() == {"items"}


def test_check_passes_on_a_clean_host(grown_host: Host) -> None:
    assert ok(cli(grown_host, None, "check")) == "models, registry and migrations agree\n"


def edit_registry(host: Host, plugin: str, tables: list[str]) -> None:
    host.declare(plugin, tables=tables)


DRIFTS = [
    pytest.param(lambda host: write_models(host, "inventory", MODELS_V3 + "    colour: Mapped[str | None] = mapped_column(sa.String(10))\n"),
                 'plugin "inventory": models differ from its migrations: add column item_tags.colour; write the revision with '
                 '`revision inventory -m "..." --autogenerate`', id="models-differ-from-migrations"),
    pytest.param(lambda host: write_models(host, "inventory", MODELS_V3 + "\n\nclass Shelf(Base):\n    __tablename__ = 'shelves'\n"
                                           "    id: Mapped[int] = mapped_column(primary_key=True)\n"),
                 'table "shelves" is defined in plugins/inventory/models.py but registered to no plugin', id="table-without-owner"),
    pytest.param(lambda host: edit_registry(host, "notes", ["notes", "items"]),
                 'table "items" is owned by 2 plugins (inventory, notes)', id="table-owned-twice"),
    pytest.param(lambda host: edit_registry(host, "notes", ["notes", "archive"]),
                 'plugin "notes" owns table "archive", but no model defines it', id="registered-table-without-model"),
    pytest.param(lambda host: (host.root / "plugins/inventory/migrations/baseline_schema.py").unlink(),
                 'plugin "inventory": its chain grew past 0001_baseline_inventory without a frozen baseline', id="chain-grew-unfrozen"),
]


@pytest.mark.parametrize(("drift", "problem"), DRIFTS)
def test_check_names_each_kind_of_drift(grown_host: Host, drift, problem: str) -> None:
    drift(grown_host)
    result = cli(grown_host, None, "check")
    assert result.returncode == 1
    assert problem in result.stdout, result.stdout
    assert result.stderr.strip().startswith("Error: ") and "problem(s) between models, registry and migrations" in result.stderr


ADD_OWNER = '''"""add owner"""
import sqlalchemy as sa
from alembic import op

revision = "0004_inventory"
down_revision = "0003_inventory"


def upgrade() -> None:
    with op.batch_alter_table("items") as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_items_owner_id", "accounts", ["owner_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("items") as batch_op:
        batch_op.drop_constraint("fk_items_owner_id", type_="foreignkey")
        batch_op.drop_column("owner_id")
'''
RENAME_SKU = '''"""rename sku to code"""
import sqlalchemy as sa
from alembic import op

revision = "0005_inventory"
down_revision = "0004_inventory"


def upgrade() -> None:
    with op.batch_alter_table("items") as batch_op:
        batch_op.alter_column("sku", new_column_name="code", existing_type=sa.String(20))


def downgrade() -> None:
    with op.batch_alter_table("items") as batch_op:
        batch_op.alter_column("code", new_column_name="sku", existing_type=sa.String(20))
'''
OWNER = '    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id"))\n'
#: v3, then items gains owner_id (a foreign key into the core's accounts) and sku becomes code.
MODELS_V5 = MODELS_V3.replace(MODELS_V2, MODELS_V2 + OWNER).replace("    sku: Mapped", "    code: Mapped")


def grow_into_the_core(host: Host) -> None:
    """inventory 0004: items.owner_id into the core's accounts; 0005: sku renamed to code, in batch mode.

    On SQLite batch mode copies items, reflecting it, and so reflects the
    table its foreign key points into: replaying 0005 needs accounts.
    """
    versions = host.root / "plugins/inventory/migrations/versions"
    (versions / "0004_add_owner.py").write_text(ADD_OWNER)
    (versions / "0005_rename_sku.py").write_text(RENAME_SKU)
    write_models(host, "inventory", MODELS_V5)
    commit_all(host.root, "inventory v5")


def test_check_replays_a_chain_after_the_core_tables(grown_host: Host, database: Database) -> None:
    grow_into_the_core(grown_host)
    assert ok(cli(grown_host, None, "check")) == "models, registry and migrations agree\n"

    # An empty database is a scratch one: the replay runs there, and leaves it empty.
    assert database.tables() == set()  # (an empty SQLite file: check never makes one)
    checked = ok(cli(grown_host, None, "check", "--database-url", database.url))
    assert checked == "models, registry and migrations agree\n"
    assert database.tables() == set()

    # A revision that breaks there is named, on the backend it breaks on.
    (grown_host.root / "plugins/inventory/migrations/versions/0005_rename_sku.py").write_text(
        RENAME_SKU.replace('"sku", new_column_name', '"no_such_column", new_column_name')
    )
    broken = cli(grown_host, None, "check", "--database-url", database.url)
    assert broken.returncode == 1
    assert 'plugin "inventory": its migrations fail on an empty database: ' in broken.stdout
    assert "no_such_column" in broken.stdout
    assert database.tables() == set()


def test_the_hosts_tests_replay_a_chain_after_the_core_tables(grown_host: Host, database: Database) -> None:
    grow_into_the_core(grown_host)
    assert database.tables() == set()
    env = {"PLUGIN_MIGRATIONS_TEST_DATABASE_URL": database.url}
    result = run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests"], grown_host.root, env)
    assert result.returncode == 0, result.stdout + result.stderr
    for test in ("upgrade_one_revision_at_a_time", "models_match_the_ddl", "up_down_consistency",
                 "rows_survive_every_revision"):
        assert f"test_{test}[inventory] PASSED" in result.stdout
    assert database.tables() == set()


#: RENAME_SKU, as the revision right after 0003.
RENAME_BY_HAND = RENAME_SKU.replace(
    'revision = "0005_inventory"\ndown_revision = "0004_inventory"',
    'revision = "0004_inventory"\ndown_revision = "0003_inventory"',
)
FIXTURE_ROWS = '''import json
from pathlib import Path


def fixture_rows(revision, table):
    with Path(__file__).with_name("calls.jsonl").open("a") as calls:
        calls.write(json.dumps([revision, table]) + "\\n")
    return [{"name": "widget"}, {"name": "gadget", "active": False}] if table == "items" else None


NOT_KEPT = {"0004_inventory": ["items.sku", "items.code"]}
'''


def test_rows_must_survive_a_rename(grown_host: Host, database: Database, tmp_path: Path) -> None:
    dev = Database(f"sqlite:///{tmp_path / 'rename-dev.sqlite3'}")
    ok(cli(grown_host, dev, "upgrade-all"))
    write_models(grown_host, "inventory", MODELS_V3.replace("    sku: Mapped", "    code: Mapped"))
    ok(cli(grown_host, dev, "revision", "inventory", "-m", "rename sku", "--autogenerate"))
    migrations = grown_host.root / "plugins/inventory/migrations"
    [revision] = (migrations / "versions").glob("0004_inventory_*.py")
    autogenerated = revision.read_text()
    assert upgrade_operations(revision) == ["add_column", "drop_column"], autogenerated

    assert database.tables() == set()
    env = {"PLUGIN_MIGRATIONS_TEST_DATABASE_URL": database.url}

    def host_tests() -> subprocess.CompletedProcess:
        return run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests"], grown_host.root, env)

    # Autogenerate's drop_column + add_column loses every sku: the host's tests say where, and the fix.
    lost = host_tests()
    assert lost.returncode == 1
    assert "test_rows_survive_every_revision[inventory] FAILED" in lost.stdout
    assert "test_models_match_the_ddl[inventory] PASSED" in lost.stdout  # the schema alone is right
    assert (
        "upgrade to 0004_inventory: items.sku was dropped and items.code added, and the values of sku are not "
        "there: a rename written as drop_column + add_column (as autogenerate writes it) loses them; rename it "
        'with alter_column(..., new_column_name=...), or, if the loss is meant, list "items.sku" in '
        'NOT_KEPT["0004_inventory"] of fixture_rows.py'
    ) in lost.stdout
    assert "downgrade of 0004_inventory: items.code was dropped and items.sku added" in lost.stdout

    # The rename written by hand keeps them.
    revision.write_text(RENAME_BY_HAND)
    kept = host_tests()
    assert kept.returncode == 0, kept.stdout

    # Or the plugin says the loss is meant; its fixture_rows.py gives the rows for items, at every revision.
    revision.write_text(autogenerated)
    (migrations / "fixture_rows.py").write_text(FIXTURE_ROWS)
    meant = host_tests()
    assert meant.returncode == 0, meant.stdout
    calls = {tuple(json.loads(line)) for line in (migrations / "calls.jsonl").read_text().splitlines()}
    assert {("0001_baseline_inventory", "items"), ("0003_inventory", "item_tags"), ("0004_inventory", "items")} <= calls
    assert database.tables() == set()


def test_check_reads_a_deployed_database_and_names_what_it_lacks(tmp_path: Path, template_repo: Path, database: Database) -> None:
    host = make_host(tmp_path, template_repo)
    ok(cli(host, database, "upgrade-all"))
    database.execute("INSERT INTO items (id, name, active) VALUES (1, 'widget', true)")
    # items gains sku in the models, without a revision: a chain that is only its baseline
    # builds today's models, so the replay agrees, and only the deployed database shows it.
    write_models(host, "inventory", MODELS_V2)
    assert ok(cli(host, None, "check")) == "models, registry and migrations agree\n"
    before = reflected_schema(database.url), database.execute("SELECT * FROM items")

    result = cli(host, None, "check", "--database-url", database.url)

    assert result.returncode == 1
    shown = sa.make_url(database.url).render_as_string(hide_password=True)
    assert result.stdout == (
        f'plugin "inventory": the database {shown} records 0001_baseline_inventory, its head, but its tables are not '
        "what the chain builds: add column items.sku; if the models changed without a revision, write it with "
        '`revision inventory -m "..." --autogenerate` against a database at 0001_baseline_inventory (a copy of this '
        "one) and migrate; if the database was changed by hand, restore it\n"
    )
    assert (reflected_schema(database.url), database.execute("SELECT * FROM items")) == before
    assert database.version_of("inventory") == ["0001_baseline_inventory"]


def test_check_refuses_a_sqlite_file_that_does_not_exist(grown_host: Host, tmp_path: Path) -> None:
    missing = tmp_path / "missing.sqlite3"
    result = cli(grown_host, None, "check", "--database-url", f"sqlite:///{missing}")
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: no SQLite database at {missing}: name an existing file"
    assert not missing.exists()


def test_moving_a_core_table_into_a_plugin_is_a_stamp_without_ddl(demo_host: Host) -> None:
    """The demo's core table "sites" becomes plugin "sites"'s, on a live database, data kept."""
    demo_host.create_all(tables=["sites"])
    demo_host.database.execute("INSERT INTO sites (name) VALUES ('Leeds')")
    assert demo_host.plugin_cli("upgrade-all").returncode == 0

    # 1. Scaffold the new owner; 2. move the model from the core into it.
    scaffold = copy_plugin(demo_host.root, plugin_name="sites", tables=["sites"], with_models=False)
    assert scaffold.returncode == 0, scaffold.stderr
    core = demo_host.root / "shopapp/models.py"
    core_text = core.read_text()
    model = core_text[core_text.index("class Site(db.Model):"):]
    core.write_text(core_text.replace(model, "").rstrip() + "\n")
    (demo_host.root / "plugins/sites/models.py").write_text(
        "from sqlalchemy.orm import Mapped, mapped_column\n\nfrom shopapp.extensions import db\n\n\n" + model
    )

    # 3. The plugin adopts the existing table: a stamp, no DDL, the row kept.
    result = demo_host.plugin_cli("upgrade-all")
    assert result.returncode == 0, result.stderr
    [row] = [line.split(None, 2) for line in result.stdout.splitlines() if line.startswith("sites ")]
    assert row == ["sites", "adopted", "adopted at 0001_baseline_sites"]
    assert demo_host.database.execute("SELECT name FROM sites") == [("Leeds",)]
    assert ok(run([sys.executable, "-m", "shopapp.plugins", "check"], demo_host.root, {})) == "models, registry and migrations agree\n"


CORE_AUTOGENERATE = """
import os, sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from shopapp.plugins.metadata import load_metadata
from shopapp.plugins.alembic_template import core_include_name, core_include_object
engine = sa.create_engine(os.environ["DATABASE_URL"])
with engine.connect() as connection:
    for filters in ({}, {"include_name": core_include_name, "include_object": core_include_object}):
        context = MigrationContext.configure(connection, opts={"target_metadata": load_metadata(), **filters})
        print(sorted({diff[0] + " " + getattr(diff[1], "name", "") for diff in compare_metadata(context, load_metadata())}))
"""


def test_the_core_apps_autogenerate_ignores_plugin_tables(demo_host: Host) -> None:
    assert demo_host.plugin_cli("upgrade-all").returncode == 0
    unfiltered, filtered = ok(demo_host.python(CORE_AUTOGENERATE)).splitlines()
    # Unfiltered, the core's autogenerate would drop every plugin version table.
    assert "remove_table alembic_version_network" in unfiltered
    # Filtered, it sees only the core's own table (not yet created here).
    assert filtered == "['add_table sites']"
