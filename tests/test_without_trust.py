"""Copier without --trust: no tasks, migrations or Jinja extensions, so Renovate's own command works.

A plugin declares itself in its rendered migrations/plugin.json; the runtime
reads that file, and `sync-registry` keeps the registry.json index the
validators read. The runtime's location is the host answer runtime_package.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import (
    Host,
    answer_args,
    commit_all,
    copier,
    git,
    make_sqlalchemy_app,
    template_history,
    tree_snapshot,
)

#: Renovate's Copier manager runs exactly this for each answers file (no --trust).
RENOVATE_UPDATE = ("update", "--skip-answered", "--defaults", "--answers-file")

#: The tested Renovate configuration the README ships: one branch per answers file.
RENOVATE_CONFIG = Path(__file__).parents[1] / "examples" / "renovate.json"

PRINTERS_MODELS = """import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.models import Base


class Printer(Base):
    __tablename__ = "printers"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"))
"""


def copy_untrusted(root: Path, template: Path, *, vcs_ref: str | None = None, **answers: object) -> None:
    version = ["--vcs-ref", vcs_ref] if vcs_ref else []
    result = copier(root, "copy", "--defaults", *version, *answer_args(answers), str(template), ".")
    assert result.returncode == 0, result.stderr


@pytest.fixture
def template_versions(tmp_path: Path) -> Path:
    """This template as v1.0.0, and v1.1.0 changing one file of each scope."""
    template = template_history(tmp_path / "template", [(None, "v1.0.0")])
    mako = next(template.glob("template/*/migrations/script.py.mako"))
    mako.write_text(mako.read_text() + "# v1.1.0\n")
    errors = next(template.glob("template/*/errors.py"))
    errors.write_text(errors.read_text() + "# v1.1.0\n")
    commit_all(template, "v1.1.0")
    git(template, "tag", "v1.1.0")
    return template


def test_renovates_command_updates_each_scaffold_on_its_own_branch(tmp_path: Path, template_versions: Path) -> None:
    root = tmp_path / "app"
    root.mkdir()
    make_sqlalchemy_app(root, "shopapp")
    copy_untrusted(root, template_versions, vcs_ref="v1.0.0", scope="host", host_package="shopapp")
    copy_untrusted(root, template_versions, vcs_ref="v1.0.0", plugin_name="network", tables=["subnets"])
    copy_untrusted(root, template_versions, vcs_ref="v1.0.0", plugin_name="printers", tables=["printers"],
                   depends_on=["network"], with_models=False)
    (root / "plugins/printers/models.py").write_text(PRINTERS_MODELS)
    host = Host(root)
    assert host.plugin_cli("sync-registry").returncode == 0
    commit_all(root, "host and two plugins at v1.0.0")

    config = json.loads(RENOVATE_CONFIG.read_text())
    (rule,) = [rule for rule in config["packageRules"] if rule.get("matchManagers") == ["copier"]]
    assert "{{packageFile}}" in rule["additionalBranchPrefix"]
    answers_files = sorted(path.name for path in root.glob(".copier-answers*.yml"))
    branches = {name: "renovate/" + rule["additionalBranchPrefix"].replace("{{packageFile}}", name).lstrip(".") + "v1.1.0"
                for name in answers_files}
    assert len(set(branches.values())) == len(answers_files) == 3

    for answers_file, branch in branches.items():
        git(root, "checkout", "-q", "-b", branch, "main" if "main" in git(root, "branch") else "master")
        update = copier(root, *RENOVATE_UPDATE, answers_file, "--vcs-ref", "v1.1.0")
        assert update.returncode == 0, f"{answers_file}: {update.stderr}"
        changed = {line[3:] for line in git(root, "status", "--porcelain").splitlines()}
        scaffold = "shopapp/plugins/" if answers_file.endswith("host.yml") else f"plugins/{answers_file.split('-')[-1][:-4]}/"
        assert changed and all(path == answers_file or path.startswith(scaffold) for path in changed), changed
        commit_all(root, f"update {answers_file} to v1.1.0")
        git(root, "checkout", "-q", "-")

    for branch in branches.values():  # every pull request merges, in any order, without conflicts
        git(root, "merge", "-q", "--no-edit", branch)
    assert host.plugin_cli("check-scaffolding").returncode == 0
    upgrade = host.plugin_cli("upgrade-all")
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stdout.splitlines()[-1] == "2 plugins: 2 installed"


def test_a_plugin_copied_without_trust_owns_its_tables_at_once(tmp_path: Path, template_repo: Path) -> None:
    root = tmp_path / "app"
    root.mkdir()
    make_sqlalchemy_app(root, "shopapp")
    copy_untrusted(root, template_repo, scope="host", host_package="shopapp")
    copy_untrusted(root, template_repo, plugin_name="network", tables=["subnets", "vlans"])
    host = Host(root)

    declared = json.loads((root / "plugins/network/migrations/plugin.json").read_text())
    assert declared == {"name": "network", "tables": ["subnets", "vlans"], "depends_on": []}
    owners = host.python("from shopapp.plugins.alembic_template import PLUGIN_TABLE_OWNERS as o; print(o['network'])")
    assert owners.stdout.strip() == "('subnets', 'vlans')", owners.stderr
    assert host.plugin_cli("upgrade-all").returncode == 0
    assert host.database.tables() >= {"subnets", "vlans", "alembic_version_network"}

    # The index lags until sync-registry; check-scaffolding says so and names the fix.
    commit_all(root, "network plugin")
    stale = host.plugin_cli("check-scaffolding")
    assert stale.returncode == 1
    assert "registry.json: is out of date" in stale.stdout and "sync-registry" in stale.stdout
    assert host.plugin_cli("sync-registry").returncode == 0
    assert host.registry()["plugins"]["network"] == {"tables": ["subnets", "vlans"], "depends_on": []}
    assert host.plugin_cli("check-scaffolding").returncode == 0

    # Once indexed, a second plugin claiming the table is refused before anything is written.
    before = tree_snapshot(root)
    refused = copier(root, "copy", "--defaults", *answer_args({"plugin_name": "wifi", "tables": ["vlans"]}), str(template_repo), ".")
    assert refused.returncode != 0
    assert "'vlans' is already owned by plugin 'network'" in refused.stderr
    assert tree_snapshot(root) == before


@pytest.mark.parametrize(
    "declaration, problem",
    [
        pytest.param('{"name": "other", "tables": [], "depends_on": []}', 'declares plugin "other", but its folder is network', id="name"),
        pytest.param('{"name": "network", "tables": "subnets"}', '"tables" must be a list of table names', id="tables"),
        pytest.param("[" * 100_000, "nested too deeply", id="deep"),
        pytest.param('{"name": ', "not valid JSON", id="truncated"),
    ],
)
def test_a_hostile_declaration_is_refused_in_one_line(tmp_path: Path, template_repo: Path, declaration: str, problem: str) -> None:
    root = tmp_path / "app"
    root.mkdir()
    make_sqlalchemy_app(root, "shopapp")
    copy_untrusted(root, template_repo, scope="host", host_package="shopapp")
    copy_untrusted(root, template_repo, plugin_name="network", tables=["subnets"])
    (root / "plugins/network/migrations/plugin.json").write_text(declaration)
    host = Host(root)

    result = host.plugin_cli("upgrade-all")

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ") and problem in result.stderr, result.stderr
    assert "alembic_version_network" not in host.database.tables()


def test_the_runtime_goes_where_runtime_package_says(tmp_path: Path, template_repo: Path) -> None:
    root = tmp_path / "app"
    root.mkdir()
    make_sqlalchemy_app(root, "shopapp")
    # The app already has a plugins package of its own.
    (root / "shopapp/plugins").mkdir()
    (root / "shopapp/plugins/__init__.py").write_text("LOADED = []\n")
    commit_all(root, "the app's own plugins package")
    before = tree_snapshot(root)

    refused = copier(root, "copy", "--defaults", *answer_args({"scope": "host", "host_package": "shopapp"}), str(template_repo), ".")

    assert refused.returncode != 0
    assert ("'shopapp.plugins' is not a free runtime package: shopapp/plugins/ already holds shopapp/plugins/__init__.py"
            in refused.stderr), refused.stderr
    assert "-d runtime_package=shopapp.plugin_migrations" in refused.stderr
    assert tree_snapshot(root) == before

    copy_untrusted(root, template_repo, scope="host", host_package="shopapp", runtime_package="shopapp.plugin_migrations")
    copy_untrusted(root, template_repo, plugin_name="network", tables=["subnets"])
    host = Host(root, runtime="shopapp.plugin_migrations")
    assert (root / "shopapp/plugins/__init__.py").read_text() == "LOADED = []\n"
    assert "from shopapp.plugin_migrations.alembic_template import" in (root / "plugins/network/migrations/env.py").read_text()
    assert "runtime_package: shopapp.plugin_migrations" in (root / ".copier-answers.plugin-network.yml").read_text()

    upgrade = host.plugin_cli("upgrade-all")
    assert upgrade.returncode == 0, upgrade.stderr
    assert host.database.version_of("network") == ["0001_baseline_network"]
    assert host.plugin_cli("sync-registry").returncode == 0
    assert json.loads((root / "shopapp/plugin_migrations/registry.json").read_text())["plugins"]["network"]["tables"] == ["subnets"]
    commit_all(root, "runtime and plugin")
    assert host.plugin_cli("check-scaffolding").returncode == 0
    # Re-copying the host in place is not a conflict: the runtime there is its own.
    copy_untrusted(root, template_repo, scope="host", host_package="shopapp", runtime_package="shopapp.plugin_migrations")
