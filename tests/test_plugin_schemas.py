"""A PostgreSQL schema per plugin (the plugin answer ``schema``), through both doors, and its SQLite meaning.

One host is built per module: the demo host plus ``ledger``, whose table lives
in the schema ``plugin_ledger`` with a foreign key into the core table
``sites`` in public, and ``ledger_notes``, a plain plugin with a foreign key
into ``plugin_ledger.ledger_entries``. Each test works on its own copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from .helpers import Database, Host, commit_all, copy_plugin, tree_snapshot

SCHEMA = "plugin_ledger"

LEDGER_MODELS = f'''from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.extensions import db


class LedgerEntry(db.Model):
    __tablename__ = "ledger_entries"
    __table_args__ = {{"schema": "{SCHEMA}"}}

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    amount: Mapped[int]
'''

NOTES_MODELS = f'''from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.extensions import db


class LedgerNote(db.Model):
    __tablename__ = "ledger_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("{SCHEMA}.ledger_entries.id"))
    text: Mapped[str] = mapped_column(db.String(200))
'''


# A revision written against PostgreSQL for a new column of a table in the schema, as autogenerate writes it
# (render_as_batch): its downgrade copies the table on SQLite, whose foreign key leaves the schema.
PG_WRITTEN_REVISION = f'''"""memo"""
import sqlalchemy as sa
from alembic import op

revision = "0002_ledger"
down_revision = "0001_baseline_ledger"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("ledger_entries", schema="{SCHEMA}") as batch_op:
        batch_op.add_column(sa.Column("memo", sa.String(length=80), nullable=True))


def downgrade():
    with op.batch_alter_table("ledger_entries", schema="{SCHEMA}") as batch_op:
        batch_op.drop_column("memo")
'''


@pytest.fixture(scope="module")
def schema_host_template(demo_host_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("schema-host") / "host"
    shutil.copytree(demo_host_template, root, symlinks=True)
    for name, models in (("ledger", LEDGER_MODELS), ("ledger_notes", NOTES_MODELS)):
        (root / "plugins" / name).mkdir(parents=True)
        (root / "plugins" / name / "models.py").write_text(models)
    ledger = copy_plugin(root, plugin_name="ledger", tables=["ledger_entries"], schema=SCHEMA)
    assert ledger.returncode == 0, ledger.stderr
    notes = copy_plugin(root, plugin_name="ledger_notes", tables=["ledger_notes"], depends_on=["ledger"])
    assert notes.returncode == 0, notes.stderr
    commit_all(root, "schema plugins")
    return root


@pytest.fixture
def host(schema_host_template: Path, tmp_path: Path, database: Database) -> Host:
    root = tmp_path / "host"
    shutil.copytree(schema_host_template, root, symlinks=True)
    made = Host(root, database=database)
    made.create_all(tables=["sites"])  # the core app's own migrations made its tables
    return made


def tables_in(url: str) -> dict[str | None, set[str]]:
    """schema -> its tables (None: the default one), for every schema but PostgreSQL's own."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        inspector = sa.inspect(engine)
        if engine.dialect.name == "sqlite":
            return {None: set(inspector.get_table_names())}
        default = inspector.default_schema_name
        return {
            (None if schema == default else schema): set(inspector.get_table_names(schema=schema))
            for schema in inspector.get_schema_names()
            if schema != "information_schema"
        }
    finally:
        engine.dispose()


def foreign_keys(url: str, table: str, schema: str | None = None) -> list[tuple[str | None, str]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return [(fk["referred_schema"], fk["referred_table"]) for fk in sa.inspect(engine).get_foreign_keys(table, schema)]
    finally:
        engine.dispose()


def test_the_answer_is_declared(schema_host_template: Path) -> None:
    declaration = json.loads((schema_host_template / "plugins/ledger/migrations/plugin.json").read_text())
    index = json.loads((schema_host_template / "shopapp/plugins/registry.json").read_text())
    assert declaration["schema"] == SCHEMA and index["plugins"]["ledger"]["schema"] == SCHEMA
    assert "schema" not in json.loads((schema_host_template / "plugins/ledger_notes/migrations/plugin.json").read_text())


@pytest.mark.parametrize(
    ("schema", "rule"),
    [
        ("public", "public, information_schema and names starting with pg_ are PostgreSQL's own"),
        ("pg_ledger", "public, information_schema and names starting with pg_ are PostgreSQL's own"),
        ("Ledger-1", "use lowercase letters, digits and _, not starting with a digit"),
    ],
    ids=["public", "pg_prefix", "not-an-identifier"],
)
def test_copier_refuses_a_bad_schema(schema_host_template: Path, tmp_path: Path, schema: str, rule: str) -> None:
    root = tmp_path / "host"
    shutil.copytree(schema_host_template, root, symlinks=True)
    before = tree_snapshot(root)
    result = copy_plugin(root, plugin_name="audit", tables=["audit_rows"], schema=schema)
    assert result.returncode != 0
    assert f"Validation error for question 'schema': '{schema}' is not a valid schema: {rule}" in result.stderr
    assert tree_snapshot(root) == before


@pytest.mark.parametrize("new_database", ["postgresql"], indirect=True)
def test_schema_plugin_through_python_m(host: Host, new_database) -> None:
    url = host.database.url
    preview = host.plugin_cli("upgrade-all", "--sql")
    assert preview.returncode == 0, preview.stderr
    assert f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}" in preview.stdout
    assert f"CREATE TABLE {SCHEMA}.ledger_entries" in preview.stdout
    assert SCHEMA not in tables_in(url)

    upgraded = host.plugin_cli("upgrade-all")
    assert upgraded.returncode == 0, upgraded.stderr
    schemas = tables_in(url)
    assert schemas[SCHEMA] == {"ledger_entries", "alembic_version_ledger"}
    assert {"ledger_notes", "alembic_version_ledger_notes"} <= schemas[None]
    assert not {"ledger_entries", "alembic_version_ledger"} & schemas[None]
    assert foreign_keys(url, "ledger_entries", SCHEMA) == [(None, "sites")]
    assert foreign_keys(url, "ledger_notes") == [(SCHEMA, "ledger_entries")]
    status = host.plugin_cli("status")
    assert "ledger         0001_baseline_ledger" in status.stdout, status.stdout
    checked = host.plugin_cli("check", "--database-url", url)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # A model change: autogenerate writes it into the schema, and nothing else.
    models = host.root / "plugins/ledger/models.py"
    models.write_text(models.read_text() + "    memo: Mapped[str | None] = mapped_column(db.String(40))\n")
    written = host.plugin_cli("revision", "ledger", "-m", "memo", "--autogenerate")
    assert written.returncode == 0, written.stderr
    [revision] = [p for p in (host.root / "plugins/ledger/migrations/versions").glob("*.py") if "baseline" not in p.name]
    source = revision.read_text()
    assert f"schema='{SCHEMA}'" in source and "add_column" in source and "drop_table" not in source, source
    assert host.plugin_cli("upgrade-all").returncode == 0
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    assert "memo" in {c["name"] for c in sa.inspect(engine).get_columns("ledger_entries", SCHEMA)}
    engine.dispose()
    checked = host.plugin_cli("check", "--database-url", url)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # A squash (replayed on SQLite) keeps the schema: a fresh PostgreSQL install builds from it, in the schema.
    squashed = host.plugin_cli("squash", "ledger")
    assert squashed.returncode == 0, squashed.stdout + squashed.stderr
    assert f"schema='{SCHEMA}'" in (host.root / "plugins/ledger/migrations/squash_schema.py").read_text()
    fresh = new_database().url
    host.create_all(fresh, tables=["sites"])
    preview = host.plugin_cli("upgrade-all", "--sql", database_url=fresh)
    assert f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}" in preview.stdout, preview.stdout + preview.stderr
    installed = host.plugin_cli("upgrade-all", database_url=fresh)
    assert installed.returncode == 0, installed.stderr
    assert tables_in(fresh)[SCHEMA] == {"ledger_entries", "alembic_version_ledger"}
    assert foreign_keys(fresh, "ledger_notes") == [(SCHEMA, "ledger_entries")]
    checked = host.plugin_cli("check", "--database-url", fresh)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # A plain plugin's foreign key into the schema holds the schema's downgrade back.
    refused = host.plugin_cli("downgrade", "ledger", "base", "--yes")
    assert refused.returncode == 1 and "referenced by table ledger_notes" in refused.stderr
    assert host.plugin_cli("downgrade", "ledger_notes", "base", "--yes").returncode == 0
    shown = host.plugin_cli("downgrade", "ledger", "base", "--sql")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.index(f"DROP SCHEMA IF EXISTS {SCHEMA};") < shown.stdout.rindex("COMMIT;")
    assert SCHEMA in tables_in(url)
    aborted = host.plugin_cli("downgrade", "ledger", "base", stdin="n\n")
    assert SCHEMA in tables_in(url) and "ledger_entries" in tables_in(url)[SCHEMA], aborted.stdout
    dropped = host.plugin_cli("downgrade", "ledger", "base", "--yes")
    assert dropped.returncode == 0, dropped.stderr
    assert f"schema {SCHEMA}" in dropped.stdout
    assert SCHEMA not in tables_in(url)


@pytest.mark.parametrize("new_database", ["postgresql"], indirect=True)
def test_a_failed_install_leaves_no_schema(schema_host_template: Path, tmp_path: Path, database: Database) -> None:
    root = tmp_path / "host"
    shutil.copytree(schema_host_template, root, symlinks=True)
    host = Host(root, database=database)  # no core tables: ledger's foreign key into sites fails
    result = host.plugin_cli("upgrade-all")
    assert result.returncode == 1 and 'plugin "ledger" failed' in result.stderr
    assert SCHEMA not in tables_in(database.url)


@pytest.mark.parametrize("new_database", ["postgresql"], indirect=True)
def test_schema_plugin_through_flask(host: Host) -> None:
    url = host.database.url
    env = {"SHOPAPP_DATABASE_URI": url}
    upgraded = host.flask_cli("upgrade-all", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert tables_in(url)[SCHEMA] == {"ledger_entries", "alembic_version_ledger"}
    checked = host.flask_cli("check", "--database-url", url, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert host.flask_cli("remove", "ledger_notes", "--yes", env=env).returncode == 0
    shown = host.flask_cli("remove", "ledger", "--sql", env=env)
    assert f"DROP SCHEMA IF EXISTS {SCHEMA};" in shown.stdout, shown.stdout + shown.stderr
    removed = host.flask_cli("remove", "ledger", "--yes", env=env)
    assert removed.returncode == 0, removed.stderr
    assert SCHEMA not in tables_in(url)
    assert not (host.root / "plugins/ledger/migrations").exists()


@pytest.mark.parametrize("new_database", ["postgresql"], indirect=True)
def test_tables_built_by_create_all_are_adopted_in_the_schema(host: Host) -> None:
    url = host.database.url
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {SCHEMA}")
    engine.dispose()
    host.create_all()  # an app that bootstrapped with create_all(), schema and all
    adopted = host.plugin_cli("upgrade-all")
    assert adopted.returncode == 0, adopted.stderr
    assert "ledger" in adopted.stdout and "adopted" in adopted.stdout, adopted.stdout
    assert tables_in(url)[SCHEMA] == {"ledger_entries", "alembic_version_ledger"}
    checked = host.plugin_cli("check", "--database-url", url)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("new_database", ["sqlite"], indirect=True)
def test_on_sqlite_the_schema_is_the_main_database(host: Host) -> None:
    url = host.database.url
    upgraded = host.plugin_cli("upgrade-all")
    assert upgraded.returncode == 0, upgraded.stderr
    assert {"ledger_entries", "alembic_version_ledger", "ledger_notes"} <= tables_in(url)[None]
    # The foreign keys across the (mapped away) schema are kept, both ways.
    assert foreign_keys(url, "ledger_entries") == [(None, "sites")]
    assert foreign_keys(url, "ledger_notes") == [(None, "ledger_entries")]
    checked = host.plugin_cli("check", "--database-url", url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    refused = host.plugin_cli("revision", "ledger_notes", "-m", "x", "--autogenerate")
    assert refused.returncode == 1, refused.stdout
    assert refused.stderr.startswith(f'Error: plugin "ledger_notes": its tables are in, or point into, the PostgreSQL schema {SCHEMA}')
    assert [p.name for p in (host.root / "plugins/ledger_notes/migrations/versions").glob("*.py")] == [
        "0001_baseline.py"
    ]
    # A revision written against PostgreSQL names the schema; on SQLite it runs, and --sql prints, without it.
    (host.root / "plugins/ledger/migrations/versions/0002_ledger.py").write_text(PG_WRITTEN_REVISION)
    preview = host.plugin_cli("upgrade-all", "--sql")
    assert preview.returncode == 0, preview.stderr
    assert "ALTER TABLE ledger_entries ADD COLUMN memo VARCHAR(80)" in preview.stdout, preview.stdout
    assert f"{SCHEMA}." not in preview.stdout, preview.stdout
    upgraded = host.plugin_cli("upgrade-all")
    assert upgraded.returncode == 0, upgraded.stderr
    assert host.database.execute("SELECT memo FROM ledger_entries") == []
    rows = host.python(
        "from shopapp.plugins import PluginManager\n"
        "print(sorted(PluginManager().upgrade_all_plugins()))\n"
    )
    assert rows.returncode == 0, rows.stderr
    # The downgrade copies the table (SQLite cannot drop a column with a foreign key): rows and key survive it.
    host.database.execute("INSERT INTO sites (id, name) VALUES (7, 'hq')")
    host.database.execute("INSERT INTO ledger_entries (id, site_id, amount, memo) VALUES (1, 7, 30, 'rent')")
    copied = host.plugin_cli("downgrade", "ledger", "0001_baseline_ledger", "--yes")
    assert copied.returncode == 0, copied.stderr
    assert host.database.execute("SELECT * FROM ledger_entries") == [(1, 7, 30)]
    assert foreign_keys(url, "ledger_entries") == [(None, "sites")]
    assert host.plugin_cli("downgrade", "ledger_notes", "base", "--yes").returncode == 0
    dropped = host.plugin_cli("downgrade", "ledger", "base", "--yes")
    assert dropped.returncode == 0, dropped.stderr
    assert "ledger_entries" not in tables_in(url)[None]


def test_a_hand_edited_schema_is_refused_before_any_database(schema_host_template: Path, tmp_path: Path) -> None:
    root = tmp_path / "host"
    shutil.copytree(schema_host_template, root, symlinks=True)
    host = Host(root)
    host.declare("ledger", schema="public")
    result = host.plugin_cli("status")
    assert result.returncode == 1
    assert 'entry "ledger": "public" is not a valid schema' in result.stderr, result.stderr
    assert not (root / "app.db").exists()
