"""Bad input never half-writes: every rejected answer names the value and the rule, and
the destination stays byte-for-byte as it was; a broken registry stops every command.

Each case runs the real `copier copy` (or `copier update`) into a copy of one
small host that already has two plugins: network (subnets, network_devices)
and printers (printers; depends on network).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from .helpers import Database, Host, commit_all, copier, copy_host, copy_plugin, git, make_sqlalchemy_app, run, tree_snapshot


@pytest.fixture(scope="module")
def two_plugin_host(tmp_path_factory: pytest.TempPathFactory, template_repo: Path) -> Path:
    root = tmp_path_factory.mktemp("two-plugin-host")
    make_sqlalchemy_app(root, "shopapp")
    assert copy_host(root, template=template_repo).returncode == 0
    for answers in ({"plugin_name": "network", "tables": ["subnets", "network_devices"]},
                    {"plugin_name": "printers", "tables": ["printers"], "depends_on": ["network"]}):
        result = copy_plugin(root, template=template_repo, with_models=False, **answers)
        assert result.returncode == 0, result.stderr
    commit_all(root, "host and two plugins")
    return root


@pytest.fixture
def host_copy(two_plugin_host: Path, tmp_path: Path) -> Path:
    root = tmp_path / "host"
    shutil.copytree(two_plugin_host, root, symlinks=True)
    return root


LONG_TABLE = "t" * 64
HOST_CASES = [
    ("path-traversal-package", {"host_package": "../evil"},
     "'../evil' is not a valid host package: use a dotted Python import name such as shopapp or myorg.shopapp."),
    ("dash-in-package", {"host_package": "my-app"},
     "'my-app' is not a valid host package: use a dotted Python import name such as shopapp or myorg.shopapp."),
    ("space-in-package", {"host_package": "shop app"},
     "'shop app' is not a valid host package: use a dotted Python import name such as shopapp or myorg.shopapp."),
    ("keyword-in-package", {"host_package": "shopapp.class"},
     "'shopapp.class' is not a valid host package: 'class' is a Python keyword."),
    ("unicode-package", {"host_package": "café"},
     "'café' is not a valid host package: use a dotted Python import name such as shopapp or myorg.shopapp."),
    ("empty-package", {"host_package": ""},
     "'' is not a valid host package: use a dotted Python import name such as shopapp or myorg.shopapp."),
    ("model-base-without-attr", {"model_base": "shopapp.models"},
     "'shopapp.models' is not a valid model base: use module:attr, such as shopapp.models:Base or shopapp.extensions:db.Model."),
    ("model-base-code-injection", {"model_base": "shopapp.models:Base; import os"},
     "'shopapp.models:Base; import os' is not a valid model base: use module:attr, such as shopapp.models:Base or shopapp.extensions:db.Model."),
    ("plugins-dir-traversal", {"plugins_dir": "../plugins"},
     "'../plugins' is not a valid plugins folder: use a relative path of Python identifiers such as plugins or src/plugins."),
    ("plugins-dir-absolute", {"plugins_dir": "/etc/plugins"},
     "'/etc/plugins' is not a valid plugins folder: use a relative path of Python identifiers such as plugins or src/plugins."),
    ("plugins-dir-backslash", {"plugins_dir": "plugins\\evil"},
     "'plugins\\evil' is not a valid plugins folder: use a relative path of Python identifiers such as plugins or src/plugins."),
    ("table-prefix-uppercase", {"table_prefix": "Poser_"},
     "'Poser_' is not a valid table prefix: use lowercase letters, digits and _, starting with a letter (such as poser_), or nothing."),
    ("trailing-newline-package", {"host_package": "shopapp\n"},
     "is not a valid host package: use a dotted Python import name such as shopapp or myorg.shopapp."),
    ("package-shadows-a-dependency", {"host_package": "alembic"},
     "'alembic' is not a valid host package: 'alembic' is a standard-library or dependency module, which the app would "
     "shadow; choose another name."),
    ("plugins-dir-shadows-the-standard-library", {"plugins_dir": "json"},
     "'json' is not a valid plugins folder: plugins are imported as json.NAME, and 'json' is a standard-library or "
     "dependency module it would shadow; choose another folder."),
    ("python-older-than-the-runtime", {"python_version": "3.10"},
     "'3.10' is not a valid python_version: use 3.MINOR or 3.MINOR.PATCH, 3.11 or newer (the runtime needs 3.11), "
     "or nothing to follow pyproject.toml's requires-python."),
    ("python-version-as-a-range", {"python_version": ">=3.12"},
     "'>=3.12' is not a valid python_version: use 3.MINOR or 3.MINOR.PATCH, 3.11 or newer (the runtime needs 3.11), "
     "or nothing to follow pyproject.toml's requires-python."),
]
PLUGIN_CASES = [
    ("dash-in-name", {"plugin_name": "Net-Work", "tables": ["t"]},
     "'Net-Work' is not a valid plugin name: use lowercase letters, digits and _, starting with a letter."),
    ("path-traversal-name", {"plugin_name": "../../etc", "tables": ["t"]},
     "'../../etc' is not a valid plugin name: use lowercase letters, digits and _, starting with a letter."),
    ("quotes-in-name", {"plugin_name": "net'; DROP TABLE x; --", "tables": ["t"]},
     "'net'; DROP TABLE x; --' is not a valid plugin name: use lowercase letters, digits and _, starting with a letter."),
    ("backslash-in-name", {"plugin_name": "net\\work", "tables": ["t"]},
     "'net\\work' is not a valid plugin name: use lowercase letters, digits and _, starting with a letter."),
    ("unicode-name", {"plugin_name": "réseau", "tables": ["t"]},
     "'réseau' is not a valid plugin name: use lowercase letters, digits and _, starting with a letter."),
    ("keyword-name", {"plugin_name": "class", "tables": ["t"]},
     "'class' is not a valid plugin name: it is a Python keyword, and plugins are imported as packages."),
    ("name-over-the-limit", {"plugin_name": "a_very_long_plugin_name", "tables": ["t"]},
     "'a_very_long_plugin_name' is too long for a plugin name: at most 18 characters, so that its baseline id "
     "0001_baseline_a_very_long_plugin_name fits Alembic's 32-character version column."),
    ("empty-name", {"plugin_name": "", "tables": ["t"]},
     "'' is not a valid plugin name: use lowercase letters, digits and _, starting with a letter."),
    ("existing-plugin", {"plugin_name": "network", "tables": ["t"]},
     "'network' is already a plugin here (plugins/network/migrations exists): choose another plugin_name, "
     "or change it with copier update -a .copier-answers.plugin-network.yml."),
    ("table-list-is-a-string", {"plugin_name": "audit", "tables": "audit_log"},
     "'audit_log' is not a valid table list: give a YAML list such as [network_devices, subnets], or [] for a plugin "
     "with no table yet."),
    ("table-with-punctuation", {"plugin_name": "audit", "tables": ["Audit-Log!"]},
     "'Audit-Log!' is not a valid table name: use lowercase letters, digits and _, not starting with a digit."),
    ("table-with-quotes", {"plugin_name": "audit", "tables": ['log"; DROP TABLE subnets; --']},
     "'log\"; DROP TABLE subnets; --' is not a valid table name: use lowercase letters, digits and _, not starting with a digit."),
    ("unicode-table", {"plugin_name": "audit", "tables": ["journal_été"]},
     "'journal_été' is not a valid table name: use lowercase letters, digits and _, not starting with a digit."),
    ("sql-keyword-table", {"plugin_name": "audit", "tables": ["order"]},
     "'order' is not a valid table name: it is a reserved word in SQL."),
    ("table-over-63-bytes", {"plugin_name": "audit", "tables": [LONG_TABLE]},
     f"'{LONG_TABLE}' is not a valid table name: at most 63 characters (PostgreSQL's identifier limit)."),
    ("duplicate-table", {"plugin_name": "audit", "tables": ["audit_log", "audit_log"]},
     "'audit_log' is listed twice: give each table once."),
    ("table-owned-elsewhere", {"plugin_name": "audit", "tables": ["audit_log", "subnets"]},
     "'subnets' is already owned by plugin 'network': a table has one owner (see Moving a table between owners in the README)."),
    ("table-prefix-overridden", {"plugin_name": "audit", "tables": ["audit_log"], "table_prefix": "poser_"},
     "'poser_' is not this host's table_prefix: a plugin copy takes it from .copier-answers.host.yml (''); "
     "drop -d table_prefix, or change the host first with copier update -a .copier-answers.host.yml -d table_prefix=..."),
    ("self-dependency", {"plugin_name": "audit", "tables": ["audit_log"], "depends_on": ["audit"]},
     "'audit' cannot depend on itself: remove it from depends_on."),
    ("unknown-dependency", {"plugin_name": "audit", "tables": ["audit_log"], "depends_on": ["ghost"]},
     "'ghost' is not a plugin of this host: depends_on names existing plugins only (network, printers)."),
    ("dependency-list-is-a-string", {"plugin_name": "audit", "tables": ["audit_log"], "depends_on": "network"},
     "'network' is not a valid dependency list: give a YAML list of plugin names such as [network]."),
    ("dependency-with-traversal", {"plugin_name": "audit", "tables": ["audit_log"], "depends_on": ["../network"]},
     "'../network' is not a valid plugin name in depends_on: use the name of a plugin of this host."),
    ("trailing-newline-name", {"plugin_name": "evil\n", "tables": ["t"]},
     "is not a valid plugin name: use lowercase letters, digits and _, starting with a letter."),
    ("trailing-newline-table", {"plugin_name": "audit", "tables": ["'audit_log\n'"]},
     "is not a valid table name: use lowercase letters, digits and _, not starting with a digit."),
    ("alembic-version-table", {"plugin_name": "audit", "tables": ["alembic_version_network"]},
     "'alembic_version_network' is not a valid table name: names starting with alembic_version belong to Alembic's "
     "version tables."),
    ("host-package-overridden", {"plugin_name": "audit", "tables": ["audit_log"], "host_package": "otherapp"},
     "'otherapp' is not this host's host_package: a plugin copy takes it from .copier-answers.host.yml ('shopapp'); "
     "drop -d host_package, or change the host first with copier update -a .copier-answers.host.yml -d host_package=..."),
    ("plugins-dir-overridden", {"plugin_name": "audit", "tables": ["audit_log"], "plugins_dir": "elsewhere"},
     "'elsewhere' is not this host's plugins_dir: a plugin copy takes it from .copier-answers.host.yml ('plugins'); "
     "drop -d plugins_dir, or change the host first with copier update -a .copier-answers.host.yml -d plugins_dir=..."),
    ("model-base-overridden", {"plugin_name": "audit", "tables": ["audit_log"], "model_base": "otherapp.models:Base"},
     "'otherapp.models:Base' is not this host's model_base: a plugin copy takes it from .copier-answers.host.yml "
     "('shopapp.models:Base'); drop -d model_base, or change the host first with copier update -a "
     ".copier-answers.host.yml -d model_base=..."),
]


def assert_refused(result, root: Path, before: dict[str, bytes], message: str) -> None:
    """Copier failed, its last line is our message, and the destination is byte-for-byte as it was."""
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].endswith(message), result.stderr[-600:]
    assert tree_snapshot(root) == before
    assert git(root, "status", "--porcelain") == ""


@pytest.mark.parametrize(("answers", "message"), [pytest.param(a, m, id=i) for i, a, m in HOST_CASES])
def test_rejected_host_answers(tmp_path: Path, answers: dict, message: str) -> None:
    make_sqlalchemy_app(tmp_path, "shopapp")
    before = tree_snapshot(tmp_path)
    assert_refused(copy_host(tmp_path, **answers), tmp_path, before, message)


@pytest.mark.parametrize(("answers", "message"), [pytest.param(a, m, id=i) for i, a, m in PLUGIN_CASES])
def test_rejected_plugin_answers(host_copy: Path, template_repo: Path, answers: dict, message: str) -> None:
    before = tree_snapshot(host_copy)
    assert_refused(copy_plugin(host_copy, template=template_repo, **answers), host_copy, before, message)


def test_a_table_without_the_hosts_prefix_is_refused(tmp_path: Path) -> None:
    """The host's table_prefix binds every plugin; a plugin copy can neither skip nor change it."""
    make_sqlalchemy_app(tmp_path, "shopapp")
    assert copy_host(tmp_path, table_prefix="poser_").returncode == 0
    commit_all(tmp_path, "host with a table prefix")
    before = tree_snapshot(tmp_path)
    assert_refused(copy_plugin(tmp_path, plugin_name="audit", tables=["audit_log"]), tmp_path, before,
                   "'audit_log' is not a valid table name: this host requires every plugin table to start with 'poser_'.")
    assert_refused(copy_plugin(tmp_path, plugin_name="audit", tables=["audit_log"], table_prefix=""), tmp_path, before,
                   "'' is not this host's table_prefix: a plugin copy takes it from .copier-answers.host.yml ('poser_'); "
                   "drop -d table_prefix, or change the host first with copier update -a .copier-answers.host.yml "
                   "-d table_prefix=...")


def test_a_dependency_cycle_is_refused_on_update(host_copy: Path) -> None:
    before = tree_snapshot(host_copy)
    result = copier(host_copy, "update", "--trust", "--defaults", "-a", ".copier-answers.plugin-network.yml",
                    "-d", "depends_on=[printers]")
    assert_refused(result, host_copy, before, "depends_on ['printers'] would make a dependency cycle back to 'network': "
                   "a plugin cannot (indirectly) depend on itself.")


def test_a_plugin_without_a_host_scaffold_is_refused(tmp_path: Path) -> None:
    make_sqlalchemy_app(tmp_path, "shopapp")
    before = tree_snapshot(tmp_path)
    assert_refused(copy_plugin(tmp_path, plugin_name="network", tables=["subnets"]), tmp_path, before,
                   "No host runtime in this destination: .copier-answers.host.yml is missing; "
                   "run `copier copy -d scope=host ...` first.")


def test_a_symlinked_plugins_folder_is_never_written_through(host_copy: Path, tmp_path: Path, template_repo: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.move(host_copy / "plugins", outside / "plugins")
    (host_copy / "plugins").symlink_to(outside / "plugins")
    commit_all(host_copy, "plugins live elsewhere")
    outside_before = tree_snapshot(outside)
    registry_before = (host_copy / "shopapp/plugins/registry.json").read_bytes()

    result = copy_plugin(host_copy, template=template_repo, plugin_name="audit", tables=["audit_log"])

    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == 'copier.errors.ForbiddenPathError: "plugins/audit" is forbidden'
    assert tree_snapshot(outside) == outside_before, "something was written through the symlink"
    assert (host_copy / "shopapp/plugins/registry.json").read_bytes() == registry_before
    # Copier writes the new answers file before it finds the forbidden path: the one
    # thing left behind, which the README says to delete.
    leftovers = {line[3:] for line in git(host_copy, "status", "--porcelain").splitlines()}
    assert leftovers <= {".copier-answers.plugin-audit.yml"}


def test_every_hostile_case_is_counted() -> None:
    cases = len(HOST_CASES) + len(PLUGIN_CASES) + 3  # the cycle, the missing host, the symlinked folder
    assert cases >= 30


# -- a registry the runtime can trust ------------------------------------------------------------


def break_registry(root: Path, change) -> None:
    path = root / "shopapp/plugins/registry.json"
    registry = json.loads(path.read_text())
    change(registry["plugins"])
    path.write_text(json.dumps(registry))


def break_declaration(root: Path, plugin: str, change) -> None:
    """Edit the plugin's plugin.json, which the runtime reads for its tables and dependencies."""
    path = root / "plugins" / plugin / "migrations" / "plugin.json"
    declaration = json.loads(path.read_text())
    change(declaration)
    path.write_text(json.dumps(declaration))


def replace_declaration(root: Path, plugin: str, make) -> None:
    path = root / "plugins" / plugin / "migrations" / "plugin.json"
    path.unlink()
    make(path)


def forget_plugin(root: Path, plugin: str) -> None:
    """A plugin folder with migrations that nothing declares: no plugin.json, no index entry."""
    (root / "plugins" / plugin / "migrations" / "plugin.json").unlink()
    break_registry(root, lambda p: p.pop(plugin))


BROKEN_REGISTRIES = [
    pytest.param(lambda root: (root / "shopapp/plugins/registry.json").write_text("{not json"),
                 "registry.json: not valid JSON", id="malformed"),
    pytest.param(lambda root: break_registry(root, lambda p: p.update(ghost={"tables": ["ghosts"], "depends_on": []})),
                 'registry.json: entry "ghost" has no scaffolding', id="plugin-without-scaffolding"),
    pytest.param(lambda root: forget_plugin(root, "printers"),
                 "registry.json: plugins/printers has migrations but no entry", id="folder-without-entry"),
    pytest.param(lambda root: break_declaration(root, "printers", lambda d: d["tables"].append("subnets")),
                 'registry.json: table "subnets" is owned by 2 plugins (network, printers)', id="table-owned-twice"),
    pytest.param(lambda root: break_declaration(root, "network", lambda d: d.update(tables="subnets")),
                 'network/migrations/plugin.json: "tables" must be a list of table names (empty for none yet)', id="tables-not-a-list"),
    pytest.param(lambda root: break_declaration(root, "network", lambda d: d["tables"].append("x; DROP TABLE y")),
                 'registry.json: entry "network": "x; DROP TABLE y" is not a valid table name', id="hostile-table-name"),
    pytest.param(lambda root: break_registry(root, lambda p: p["network"].update(tables="subnets")),
                 'registry.json: entry "network": "tables" must be a list of table names (empty for none yet)', id="index-tables-not-a-list"),
    pytest.param(lambda root: replace_declaration(root, "printers", lambda path: path.mkdir()),
                 "printers/migrations/plugin.json: cannot be read (Is a directory)", id="declaration-a-folder"),
    pytest.param(lambda root: replace_declaration(root, "printers", lambda path: path.write_text(" " * (4 << 20) + "{}")),
                 "printers/migrations/plugin.json: larger than 4 MiB", id="declaration-too-large"),
    pytest.param(lambda root: replace_declaration(root, "printers", lambda path: path.symlink_to("/dev/zero")),
                 "printers/migrations/plugin.json: not a regular file", id="declaration-an-endless-device"),
]
COMMANDS = [["list"], ["status"], ["migrate", "network"], ["upgrade-all"], ["downgrade", "network", "base", "--yes"],
            ["history", "network"], ["stamp", "network", "head"]]


def installed_two_plugin_host(root: Path) -> tuple[Host, Path]:
    """The host with models for both plugins, every plugin installed in its SQLite database."""
    for name in ("network", "printers"):
        (root / "plugins" / name / "models.py").write_text(
            "import sqlalchemy as sa\nfrom shopapp.models import Base\n\n"
            + "".join(f"{table} = sa.Table('{table}', Base.metadata, sa.Column('id', sa.Integer, primary_key=True))\n"
                      for table in {"network": ["subnets", "network_devices"], "printers": ["printers"]}[name])
        )
    host = Host(root)
    assert host.plugin_cli("upgrade-all").returncode == 0
    return host, root / "app.db"


def assert_command_refused(host: Host, database: Path, command: list[str], message: str) -> None:
    """``command`` exits 1 with one ``Error:`` line holding ``message``, and leaves ``database`` as it was."""
    snapshot = database.read_bytes()
    result = host.plugin_cli(*command)
    assert result.returncode == 1, (command, result.stdout, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and message in line, (command, line)
    assert database.read_bytes() == snapshot, f"{command} touched the database"


@pytest.mark.parametrize(("breakage", "message"), BROKEN_REGISTRIES)
def test_a_broken_registry_stops_every_command_before_the_database(host_copy: Path, breakage, message: str) -> None:
    host, database = installed_two_plugin_host(host_copy)
    breakage(host_copy)
    for command in COMMANDS:
        assert_command_refused(host, database, command, message)
    assert os.path.exists(database)


CORE_CONFLICT = ('registry.json: table "accounts" is owned twice: registered to plugin "printers" and defined by the '
                 "core models (shopapp.models)")


def test_a_core_table_registered_to_a_plugin_stops_every_change(host_copy: Path) -> None:
    """Refused before anything could create, adopt or drop the core's table; reading stays possible.

    Reading the registry is cheap, but knowing the core's tables means
    importing the app's models: ``status`` and an ``upgrade-all`` with
    nothing to do skip that (bench/README.md), ``check`` reports it.
    """
    host, database = installed_two_plugin_host(host_copy)
    break_declaration(host_copy, "printers", lambda d: d["tables"].append("accounts"))
    for command in (["downgrade", "printers", "base", "--yes"], ["downgrade", "network", "base", "--yes"],
                    ["downgrade", "printers", "base", "--sql"], ["stamp", "network", "base"],
                    ["remove", "printers", "--yes"], ["revision", "printers", "-m", "more"]):
        assert_command_refused(host, database, command, CORE_CONFLICT)
    assert (host_copy / "plugins/printers/migrations/plugin.json").is_file()
    assert sorted(path.name for path in (host_copy / "plugins/printers/migrations/versions").glob("*.py")) == [
        "0001_baseline.py"]

    for command in (["status"], ["upgrade-all"], ["list"], ["history", "printers"]):
        result = host.plugin_cli(*command)
        assert result.returncode == 0, (command, result.stderr)
    check = host.plugin_cli("check")
    assert check.returncode == 1 and CORE_CONFLICT in check.stdout + check.stderr

    # A database where the plugin has work to do: refused before its first step, and for --sql too.
    fresh = host_copy / "fresh.db"
    fresh_url = f"sqlite:///{fresh}"
    sql = host.plugin_cli("upgrade-all", "--sql", database_url=fresh_url)
    assert sql.returncode == 1 and CORE_CONFLICT in sql.stderr and not fresh.exists()
    result = host.plugin_cli("upgrade-all", database_url=fresh_url)
    [line] = result.stderr.strip().splitlines()
    assert result.returncode == 1 and line.startswith("Error: ") and CORE_CONFLICT in line
    assert Database(fresh_url).tables() == set()


def test_a_plugin_with_no_table_yet_is_registered_and_migrates(host_copy: Path, template_repo: Path) -> None:
    result = copy_plugin(host_copy, template=template_repo, plugin_name="audit", tables=[])
    assert result.returncode == 0, result.stderr
    assert json.loads((host_copy / "shopapp/plugins/registry.json").read_text())["plugins"]["audit"] == {
        "tables": [], "depends_on": []
    }
    host = Host(host_copy)
    upgrade = host.plugin_cli("migrate", "audit")
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stdout.splitlines()[1].split() == ["audit", "installed", "installed", "at", "0001_baseline_audit"]
    assert host.database.version_of("audit") == ["0001_baseline_audit"]
    lint = run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "F,E9,B", "plugins/audit"], host_copy)
    assert lint.returncode == 0, lint.stdout
