"""The core application's own migrations leave the plugins' tables alone, with the real tools.

The demo host's plugins are migrated first, so their tables and version
tables are in the database; then the core app's own migration tool
autogenerates. Unfiltered it proposes dropping them; given the runtime's
core_include_name / core_include_object it proposes only the core's own
table, and nothing more once that is applied. Plain Alembic env.py filters:
tests/test_lifecycle.py (test_the_core_apps_autogenerate_ignores_plugin_tables).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import Host, skip_unless_ci

#: The demo host's runtime package: the one place this file names it.
RUNTIME = "shopapp.plugins"
FILTERS = f"from {RUNTIME}.alembic_template import core_include_name, core_include_object"

FLASK_MIGRATE_APP = f"""
from flask_migrate import Migrate

from shopapp import create_app
from shopapp.extensions import db
{FILTERS}

app = create_app()
FILTERED = os.environ.get("CORE_FILTERS") != "off"
filters = dict(include_name=core_include_name, include_object=core_include_object) if FILTERED else {{}}
Migrate(app, db, **filters)
"""

# An app that loads its plugins' models itself: they are in db.metadata too.
FLASK_ALEMBIC_APP = f"""
from flask_alembic import Alembic

from shopapp import create_app
from {RUNTIME}.metadata import load_metadata
{FILTERS}

app = create_app()
load_metadata()
if os.environ.get("CORE_FILTERS") != "off":
    app.config["ALEMBIC_CONTEXT"] = {{"include_name": core_include_name, "include_object": core_include_object}}
Alembic(app)
"""


def require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        skip_unless_ci(f"{module} is not installed: run python3 dev.py test, which installs requirements.txt")


def flask(host: Host, app: str, *args: str, filters: bool = True) -> str:
    """`flask --app APP db ARGS` in the host, on the host's database; fails the test on a non-zero exit."""
    done = flask_run(host, app, *args, filters=filters)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def flask_run(host: Host, app: str, *args: str, filters: bool = True) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(SHOPAPP_DATABASE_URI=host.database.url, CORE_FILTERS="on" if filters else "off")
    return subprocess.run([sys.executable, "-m", "flask", "--app", app, "db", *args], cwd=host.root, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)


def write_app(host: Host, name: str, source: str) -> None:
    (host.root / f"{name}.py").write_text("import os\n" + source)


def revision_files(folder: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(folder.glob("*.py"))}


#: Where each tool writes the core's revisions: Flask-Migrate's `flask db init` folder; Flask-Alembic's
#: script_location, "migrations" beside the app's package (Flask's app.root_path).
FLASK_MIGRATE_VERSIONS = Path("migrations", "versions")
FLASK_ALEMBIC_VERSIONS = Path("shopapp", "migrations")


PLUGIN_TABLE_MARKERS = ("alembic_version_", "subnets", "network_devices", "computers", "usb_devices", "notifications")


def assert_core_only(revision: str) -> None:
    """The core's first revision creates its own table and drops it on the way down; nothing of a plugin."""
    upgrade, downgrade = revision.split("def downgrade")
    assert "op.create_table('sites'" in upgrade and "drop_table" not in upgrade, upgrade
    assert "op.drop_table('sites')" in downgrade and downgrade.count("drop_table") == 1, downgrade
    assert not [marker for marker in PLUGIN_TABLE_MARKERS if marker in revision], revision


@pytest.fixture
def migrated_host(demo_host: Host) -> Host:
    result = demo_host.plugin_cli("upgrade-all")
    assert result.returncode == 0, result.stderr
    return demo_host


def test_flask_migrate_with_the_filters_in_migrate(migrated_host: Host) -> None:
    require("flask_migrate")
    host = migrated_host
    write_app(host, "coreapp", FLASK_MIGRATE_APP)
    flask(host, "coreapp", "init")

    flask(host, "coreapp", "migrate", "-m", "core")
    [core] = revision_files(host.root / FLASK_MIGRATE_VERSIONS).values()
    assert_core_only(core)

    flask(host, "coreapp", "upgrade")
    assert "No changes in schema detected." in flask(host, "coreapp", "migrate", "-m", "nothing")
    assert len(revision_files(host.root / FLASK_MIGRATE_VERSIONS)) == 1
    assert {"sites", "alembic_version", "alembic_version_network", "subnets"} <= host.database.tables()
    assert host.plugin_cli("status").returncode == 0

    # The control: without the filters, Flask-Migrate's autogenerate drops every plugin table.
    flask(host, "coreapp", "migrate", "-m", "unfiltered", filters=False)
    [unfiltered] = [text for name, text in revision_files(host.root / FLASK_MIGRATE_VERSIONS).items() if name.endswith("_unfiltered.py")]
    assert "op.drop_table('subnets')" in unfiltered
    assert "op.drop_table('alembic_version_network')" in unfiltered


def test_flask_migrate_with_the_filters_in_both_places_is_a_type_error(migrated_host: Host) -> None:
    require("flask_migrate")
    host = migrated_host
    write_app(host, "coreapp", FLASK_MIGRATE_APP)
    flask(host, "coreapp", "init")
    env_py = host.root / "migrations" / "env.py"
    text = env_py.read_text()
    configure = "            target_metadata=get_metadata(),\n"
    assert text.count(configure) == 1, "Flask-Migrate's env.py template changed"
    env_py.write_text(f"{FILTERS}\n" + text.replace(
        configure, configure + "            include_name=core_include_name,\n            include_object=core_include_object,\n"))

    done = flask_run(host, "coreapp", "migrate", "-m", "core")

    assert done.returncode != 0
    assert "TypeError" in done.stderr
    assert "got multiple values for keyword argument 'include_name'" in done.stderr


def test_flask_alembic_with_the_filters_in_alembic_context(migrated_host: Host) -> None:
    require("flask_alembic")
    host = migrated_host
    write_app(host, "corealembic", FLASK_ALEMBIC_APP)

    unfiltered = flask_run(host, "corealembic", "check", filters=False)
    assert (unfiltered.returncode, unfiltered.stdout) == (1, "Changes detected.\n"), unfiltered.stderr

    flask(host, "corealembic", "revision", "core")
    [core] = revision_files(host.root / FLASK_ALEMBIC_VERSIONS).values()
    assert_core_only(core)

    flask(host, "corealembic", "upgrade")
    filtered = flask_run(host, "corealembic", "check")
    assert (filtered.returncode, filtered.stdout) == (0, "No changes detected.\n"), filtered.stderr
    assert {"sites", "alembic_version", "alembic_version_network", "subnets"} <= host.database.tables()
    assert host.plugin_cli("status").returncode == 0


def test_the_filters_import_from_where_the_readme_says() -> None:
    """The README's snippets import the filters from the runtime's alembic_template module."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert FILTERS in readme
