"""The proof host of a real plugin application (issue 14): everything an existing app brings, at once.

- The app already has a `shopapp.plugins` package of its own, so the runtime
  goes to `runtime_package=shopapp.plugin_migrations`.
- Two plugins ship as their own distributions, scaffolded with plugin_package
  and found through entry points: network installed editable
  (`pip install -e`), printers from a built wheel. Their tables have foreign
  keys into the core and into each other, and the app imports network's models
  itself, as an app that loads its plugins its own way does.
- A third plugin, badges, was a branch of the app's one shared
  `alembic_version` table (Alembic's multiple bases, as Rattail keeps them)
  and is imported with `import-history`.

Every command runs in a virtual environment of its own, through both doors,
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from .helpers import Database, answer_args, commit_all, copier, git, run

APP_MODELS = """from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)


# The app loads its installed plugin's models its own way; the runtime then
# imports the very same module, so no table is defined twice.
import shop_network.models  # noqa: E402,F401
"""

APP_FACTORY = """import os

from flask import Flask


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["APP_DATABASE_URL"]
    from .plugin_migrations import init_app

    init_app(app)
    return app
"""

#: The app's own plugin loader, which the runtime must not touch.
APP_PLUGINS = "LOADED = []\n"

RUNTIME = "shopapp.plugin_migrations"

#: The app's Alembic history before: a core branch, and the badges plugin's branch with its label.
LEGACY_ENV = """import os

from alembic import context
from sqlalchemy import create_engine

with create_engine(os.environ["DATABASE_URL"]).begin() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
"""

LEGACY_REVISIONS = {
    "c1_accounts.py": ("c1core", None, ("core",), None,
                       'op.create_table("accounts", sa.Column("id", sa.Integer(), primary_key=True))'),
    "b1_badges.py": ("b1badge", None, ("badges",), "c1core",
                     'op.create_table("badges", sa.Column("id", sa.Integer(), primary_key=True), '
                     'sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False))'),
    "b2_badge_label.py": ("b2badge", "b1badge", None, None,
                          'op.add_column("badges", sa.Column("label", sa.String(40), nullable=True))'),
}

BADGE_MODELS = """import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.models import Base


class Badge(Base):
    __tablename__ = "badges"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"))
    label: Mapped[str | None] = mapped_column(sa.String(40))
"""

PYPROJECT = """[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "{distribution}"
version = "1.0.0"

[project.entry-points.plugin_migrations]
{plugin} = "{package}"

[tool.setuptools.packages.find]
include = ["{package}*"]

[tool.setuptools.package-data]
"*" = ["*.ini", "*.json", "*.mako"]
"""

NETWORK_MODELS = """import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.models import Base


class Subnet(Base):
    __tablename__ = "subnets"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"))
"""

PRINTERS_MODELS = """import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.models import Base


class Printer(Base):
    __tablename__ = "printers"

    id: Mapped[int] = mapped_column(primary_key=True)
    subnet_id: Mapped[int] = mapped_column(sa.ForeignKey("subnets.id"))
"""


def plugin_repository(root: Path, template: Path, plugin: str, package: str, models: str, **answers: object) -> Path:
    """A plugin's own repository, scaffolded with plugin_package, as its author makes it."""
    repository = root / f"shop-{plugin}"
    (repository / package).mkdir(parents=True)
    (repository / package / "__init__.py").write_text(f'"""The {plugin} plugin."""\n')
    (repository / "pyproject.toml").write_text(
        PYPROJECT.format(distribution=f"shop-{plugin}", plugin=plugin, package=package)
    )
    git(repository, "init", "-q")
    commit_all(repository, "the plugin package")
    result = copier(
        repository, "copy", "--defaults",
        *answer_args({"plugin_name": plugin, "plugin_package": package, "host_package": "shopapp",
                      "runtime_package": RUNTIME, "with_models": False, **answers}),
        str(template), ".",
    )
    assert result.returncode == 0, result.stderr
    (repository / package / "models.py").write_text(models)
    commit_all(repository, "plugin migrations")
    return repository


class PackagedHost:
    """The host app, with its own virtual environment holding the two plugin distributions."""

    def __init__(self, root: Path, python: Path) -> None:
        self.root = root
        self.python = python

    def module(self, *args: str, database: Database) -> subprocess.CompletedProcess:
        return run([str(self.python), "-m", RUNTIME, *args], self.root, {"DATABASE_URL": database.url})

    def flask(self, *args: str, database: Database) -> subprocess.CompletedProcess:
        environment = {"APP_DATABASE_URL": database.url}
        return run([str(self.python), "-m", "flask", "--app", "shopapp:create_app", "plugin", *args], self.root, environment)

    def legacy_alembic(self, *args: str, database: Database) -> subprocess.CompletedProcess:
        """The app's own Alembic, on its one shared alembic_version table."""
        return run([str(self.python), "-m", "alembic", "-c", "legacy/alembic.ini", *args], self.root,
                   {"DATABASE_URL": database.url})


@pytest.fixture(scope="module")
def packaged_host(tmp_path_factory: pytest.TempPathFactory, template_repo: Path) -> PackagedHost:
    workspace = tmp_path_factory.mktemp("packaged")
    root = workspace / "app"
    (root / "shopapp").mkdir(parents=True)
    (root / "shopapp/__init__.py").write_text(APP_FACTORY)
    (root / "shopapp/models.py").write_text(APP_MODELS)
    (root / "shopapp/plugins").mkdir()
    (root / "shopapp/plugins/__init__.py").write_text(APP_PLUGINS)
    (root / "legacy/versions").mkdir(parents=True)
    (root / "legacy/env.py").write_text(LEGACY_ENV)
    (root / "legacy/alembic.ini").write_text("[alembic]\nscript_location = %(here)s\npath_separator = os\n")
    for file, (revision, down, labels, depends, upgrade) in LEGACY_REVISIONS.items():
        (root / "legacy/versions" / file).write_text(
            f"from alembic import op\nimport sqlalchemy as sa\n\nrevision = {revision!r}\ndown_revision = {down!r}\n"
            f"branch_labels = {labels!r}\ndepends_on = {depends!r}\n\n\ndef upgrade():\n    {upgrade}\n\n\n"
            "def downgrade():\n    pass\n"
        )
    git(root, "init", "-q")
    commit_all(root, "app, with its own plugins package and its one Alembic history")
    host = copier(root, "copy", "--defaults",
                  *answer_args({"scope": "host", "host_package": "shopapp", "runtime_package": RUNTIME}), str(template_repo), ".")
    assert host.returncode == 0, host.stderr
    assert (root / "shopapp/plugins/__init__.py").read_text() == APP_PLUGINS
    # badges stays in the app's repository: scaffolded there, its history imported per database later.
    badges = copier(root, "copy", "--defaults", *answer_args({"plugin_name": "badges", "tables": ["badges"],
                                                             "with_models": False}), str(template_repo), ".")
    assert badges.returncode == 0, badges.stderr
    (root / "plugins/badges/models.py").write_text(BADGE_MODELS)
    commit_all(root, "host and badges")

    network = plugin_repository(workspace, template_repo, "network", "shop_network", NETWORK_MODELS, tables=["subnets"])
    printers = plugin_repository(workspace, template_repo, "printers", "shop_printers", PRINTERS_MODELS,
                                 tables=["printers"], depends_on=["network"])

    # A virtual environment of its own, so that these entry points reach no other test;
    # a .pth file lends it the test environment's packages (the runtime's dependencies).
    venv = workspace / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site_packages = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    Path(site_packages, "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check", "-q"]
    wheels = workspace / "wheels"
    for command in (
        [*pip, "install", "--no-deps", "--no-build-isolation", "-e", str(network)],
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(printers)],
    ):
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    (wheel,) = wheels.glob("shop_printers-1.0.0-*.whl")
    installed = subprocess.run([*pip, "install", "--no-deps", str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    return PackagedHost(root, python)


def test_installed_plugins_migrate_through_both_doors(packaged_host: PackagedHost, database: Database) -> None:
    host = packaged_host
    listed = host.module("list", database=database)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[:2] for line in listed.stdout.splitlines()[1:]] == [
        ["badges", "badges"], ["network", "subnets"], ["printers", "printers"],
    ]
    # The database as the app had it: its one shared history, badges a branch there, holding a row.
    assert host.legacy_alembic("upgrade", "heads", database=database).returncode == 0
    database.execute("INSERT INTO accounts (id) VALUES (1)")
    database.execute("INSERT INTO badges (id, account_id, label) VALUES (7, 1, 'gold')")
    imported = host.module("import-history", "badges", "--from", "legacy/alembic.ini", database=database)
    assert imported.returncode == 0, imported.stderr
    assert database.version_of("badges") == ["b2badge"]

    upgrade = host.flask("upgrade-all", database=database)

    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stdout.splitlines()[-1] == "3 plugins: 2 installed, 1 current"
    assert database.tables() >= {"subnets", "printers", "alembic_version_network", "alembic_version_printers"}
    assert database.execute("SELECT id, account_id, label FROM badges") == [(7, 1, "gold")]
    assert "c1core" in host.legacy_alembic("current", database=database).stdout
    check = host.module("check", database=database)
    assert check.returncode == 0, check.stdout + check.stderr
    status = json.loads(host.flask("status", "--json", database=database).stdout)
    assert {plugin["name"]: plugin["current"] for plugin in status} == {
        "badges": "b2badge", "network": "0001_baseline_network", "printers": "0001_baseline_printers",
    }

    down = host.module("downgrade", "printers", "base", "--yes", database=database)
    assert down.returncode == 0, down.stderr
    assert "printers" not in database.tables()
    assert host.flask("upgrade-all", database=database).returncode == 0
    assert "printers" in database.tables()

    # network cannot go while printers (still installed) depends on it; nothing changes.
    refused = host.module("remove", "network", "--yes", database=database)
    assert refused.returncode == 1 and "printers depend on it" in refused.stderr, refused.stderr
    assert "subnets" in database.tables()

    removed = host.flask("remove", "printers", "--yes", database=database)
    assert removed.returncode == 0, removed.stderr
    assert "`pip uninstall shop-printers`" in removed.stdout
    assert not {"printers", "alembic_version_printers"} & database.tables()
    assert database.version_of("network") == ["0001_baseline_network"]


def test_the_hosts_index_and_regeneration_check_include_installed_plugins(packaged_host: PackagedHost, tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'app.db'}")
    synced = packaged_host.module("sync-registry", database=database)
    assert synced.returncode == 0, synced.stderr
    index = json.loads((packaged_host.root / "shopapp/plugin_migrations/registry.json").read_text())
    assert index["plugins"]["printers"] == {"tables": ["printers"], "depends_on": ["network"]}
    assert index["plugins"]["badges"] == {"tables": ["badges"], "depends_on": []}
    git(packaged_host.root, "checkout", "--", "shopapp/plugin_migrations/registry.json")


def test_a_plugin_both_installed_and_in_the_plugins_folder_is_refused(packaged_host: PackagedHost, tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'app.db'}")
    folder = packaged_host.root / "plugins/network/migrations"
    folder.mkdir(parents=True)
    try:
        (folder / "plugin.json").write_text('{"name": "network", "tables": ["subnets"], "depends_on": []}')
        result = packaged_host.module("upgrade-all", database=database)
    finally:
        shutil.rmtree(packaged_host.root / "plugins/network")
    assert result.returncode == 1
    assert result.stderr.startswith('Error: plugin "network" is both the folder plugins/network and the installed package '
                                    "shop_network (shop-network)"), result.stderr
    assert result.stderr.count("\n") == 1
    assert database.tables() == set()
