"""`copier update` of one plugin: changed answers reach the registry, nothing else moves."""

from __future__ import annotations

import json
from pathlib import Path

from demo.run import build_host

from .helpers import commit_all, copier, git


def changed_files(root: Path) -> set[str]:
    return {line[3:] for line in git(root, "status", "--porcelain").splitlines()}


def test_changed_tables_update_only_that_plugins_registry_entry(tmp_path: Path, template_repo: Path) -> None:
    build_host(tmp_path, template_repo, quiet=True)
    registry_path = tmp_path / "shopapp/plugins/registry.json"
    before = json.loads(registry_path.read_text())["plugins"]

    result = copier(
        tmp_path, "update", "--trust", "--defaults", "-a", ".copier-answers.plugin-network.yml",
        "-d", "tables=[subnets, network_devices, vlans]", "-d", "depends_on=[equipment]",
    )

    assert result.returncode == 0, result.stderr
    assert changed_files(tmp_path) == {".copier-answers.plugin-network.yml", "shopapp/plugins/registry.json"}
    after = json.loads(registry_path.read_text())["plugins"]
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
    assert changed_files(tmp_path) == {".copier-answers.plugin-usb.yml", "shopapp/plugins/registry.json"}
    assert baseline.read_text().endswith("# edited by hand\n")
    assert (tmp_path / "plugins/usb/models.py").read_text() == models
