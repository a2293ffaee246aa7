"""`copier update`: changed answers reach the plugin's declaration, nothing else moves; hosts made from an
older template update to this one and keep migrating."""

from __future__ import annotations

import json
import re
from pathlib import Path

from demo.run import build_host

from .helpers import (
    Database,
    Host,
    commit_all,
    copier,
    copy_host,
    copy_plugin,
    git,
    make_sqlalchemy_app,
    require_commit,
    template_history,
    tree_snapshot,
)


def changed_files(root: Path) -> set[str]:
    return {line[3:] for line in git(root, "status", "--porcelain").splitlines()}


def test_changed_tables_update_only_that_plugins_declaration(tmp_path: Path, template_repo: Path) -> None:
    build_host(tmp_path, template_repo, quiet=True)
    host = Host(tmp_path)
    before = host.registry()["plugins"]

    # Without --trust: the declaration is a rendered file, so no task is needed.
    result = copier(
        tmp_path, "update", "--defaults", "-a", ".copier-answers.plugin-network.yml",
        "-d", "tables=[subnets, network_devices, vlans]", "-d", "depends_on=[equipment]",
    )

    assert result.returncode == 0, result.stderr
    assert changed_files(tmp_path) == {".copier-answers.plugin-network.yml", "plugins/network/migrations/plugin.json"}
    owners = host.python(
        "from shopapp.plugins.alembic_template import PLUGIN_TABLE_OWNERS as o; print(dict(o)['network'])"
    )
    assert owners.stdout.strip() == "('subnets', 'network_devices', 'vlans')", owners.stderr

    # The index follows with sync-registry, and only this plugin's entry moves.
    assert host.plugin_cli("sync-registry").returncode == 0
    after = host.registry()["plugins"]
    assert after["network"] == {"tables": ["subnets", "network_devices", "vlans"], "depends_on": ["equipment"]}
    assert {name: entry for name, entry in after.items() if name != "network"} == {
        name: entry for name, entry in before.items() if name != "network"
    }


def test_update_without_changes_leaves_no_diff(tmp_path: Path, template_repo: Path) -> None:
    build_host(tmp_path, template_repo, quiet=True)
    for answers_file in (".copier-answers.plugin-printers.yml", ".copier-answers.host.yml"):
        result = copier(tmp_path, "update", "--trust", "--defaults", "-a", answers_file)
        assert result.returncode == 0, result.stderr
        assert changed_files(tmp_path) == set(), answers_file
        assert not list(tmp_path.rglob("*.rej"))


def test_update_keeps_user_revisions_and_models(tmp_path: Path, template_repo: Path) -> None:
    build_host(tmp_path, template_repo, quiet=True)
    versions = tmp_path / "plugins/usb/migrations/versions"
    (versions / "0002_add_label.py").write_text('revision = "0002_add_label_usb"\ndown_revision = "0001_baseline_usb"\n')
    baseline = versions / "0001_baseline.py"
    baseline.write_text(baseline.read_text() + "# edited by hand\n")
    models = (tmp_path / "plugins/usb/models.py").read_text()
    commit_all(tmp_path, "user work")

    result = copier(tmp_path, "update", "--trust", "--defaults", "-a", ".copier-answers.plugin-usb.yml", "-d", "tables=[usb_devices, usb_ports]")

    assert result.returncode == 0, result.stderr
    assert changed_files(tmp_path) == {".copier-answers.plugin-usb.yml", "plugins/usb/migrations/plugin.json"}
    assert baseline.read_text().endswith("# edited by hand\n")
    assert (tmp_path / "plugins/usb/models.py").read_text() == models


#: The template before the runtime's restructure (3412b65): hosts made from it must update to this one.
OLD_TEMPLATE = "3412b65419e6d027805b8fa218410b2dd552e229"

MODELS_HEADER = """import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.models import Base
"""

#: (name, tables, depends_on, models.py): printers has a foreign key into network's table.
OLD_HOST_PLUGINS = [
    ("network", ["subnets"], [], MODELS_HEADER + """

class Subnet(Base):
    __tablename__ = "subnets"

    id: Mapped[int] = mapped_column(primary_key=True)
    cidr: Mapped[str] = mapped_column(sa.String(43), unique=True)
"""),
    ("printers", ["printers"], ["network"], MODELS_HEADER + """

class Printer(Base):
    __tablename__ = "printers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    subnet_id: Mapped[int] = mapped_column(sa.ForeignKey("subnets.id"))
"""),
]

CONFLICT_MARKER = re.compile(rb"^(<{7}|={7}|>{7})( |$)", re.MULTILINE)


def files_on_disk(root: Path) -> dict[str, bytes]:
    """tree_snapshot without the bytecode that running the host leaves (and .gitignore keeps out of git)."""
    return {path: data for path, data in tree_snapshot(root).items() if "__pycache__" not in Path(path).parts}


def test_a_host_made_at_3412b65_updates_to_this_template_and_keeps_migrating(tmp_path: Path) -> None:
    template = template_history(tmp_path / "template", [(require_commit(OLD_TEMPLATE), "v0.9.0"), (None, "v1.0.0")])
    root = tmp_path / "host"
    root.mkdir()
    (root / ".gitignore").write_text("__pycache__/\n")
    make_sqlalchemy_app(root, "shopapp")
    host_copy = copy_host(root, template=template, vcs_ref="v0.9.0")
    assert host_copy.returncode == 0, host_copy.stderr
    commit_all(root, "host at v0.9.0")
    for name, tables, depends_on, models in OLD_HOST_PLUGINS:
        (root / "plugins" / name).mkdir(parents=True)
        (root / "plugins" / name / "models.py").write_text(models)
        result = copy_plugin(root, template=template, vcs_ref="v0.9.0", plugin_name=name, tables=tables, depends_on=depends_on)
        assert result.returncode == 0, result.stderr
        commit_all(root, f"plugin {name} at v0.9.0")
    host = Host(root, database=Database(f"sqlite:///{tmp_path / 'shop.sqlite3'}"))
    installed = host.plugin_cli("upgrade-all")
    assert installed.returncode == 0, installed.stderr

    answers_files = [".copier-answers.host.yml", *(f".copier-answers.plugin-{name}.yml" for name, *_ in OLD_HOST_PLUGINS)]
    for answers_file in answers_files:
        # --trust, once: Copier refuses to update from a version with tasks (v0.9.0's registry task)
        # without it. From v1.0.0 on, Renovate's command needs none (test_without_trust.py).
        update = copier(root, "update", "--trust", "--defaults", "--vcs-ref", "v1.0.0", "-a", answers_file)
        assert update.returncode == 0, f"{answers_file}: {update.stderr}"
        assert "_commit: v1.0.0" in (root / answers_file).read_text().splitlines(), answers_file
        commit_all(root, f"{answers_file} updated to v1.0.0")
        # Half-way (the runtime new, some plugins not yet declaring themselves
        # in plugin.json), registry.json's old entries still count.
        halfway = host.plugin_cli("status")
        assert halfway.returncode == 0, f"after {answers_file}: {halfway.stderr}"

    files = files_on_disk(root)
    assert [path for path in files if path.endswith(".rej")] == []
    assert [path for path, data in files.items() if CONFLICT_MARKER.search(data)] == []

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    fresh_copy = copy_host(fresh, template=template, vcs_ref="v1.0.0")
    assert fresh_copy.returncode == 0, fresh_copy.stderr
    runtime, expected = files_on_disk(root / "shopapp/plugins"), files_on_disk(fresh / "shopapp/plugins")
    assert sorted(runtime) == sorted(expected), "the updated runtime's modules differ from a fresh copy's"
    assert [path for path in sorted(runtime) if path != "registry.json" and runtime[path] != expected[path]] == []

    upgrade = host.plugin_cli("upgrade-all")
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stdout.splitlines()[-1] == f"{len(OLD_HOST_PLUGINS)} plugins: {len(OLD_HOST_PLUGINS)} current"
    status = host.plugin_cli("status", "--json")
    assert status.returncode == 0, status.stderr
    assert {plugin["name"] for plugin in json.loads(status.stdout)} == {name for name, *_ in OLD_HOST_PLUGINS}
