"""Unit tests of hooks/register.py, the Copier task that keeps the owner registry."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from .helpers import TEMPLATE

_spec = importlib.util.spec_from_file_location("register", TEMPLATE / "hooks" / "register.py")
register = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(register)

EMPTY = '{\n  "plugins": {}\n}\n'


def answers(name: str = "network", tables=("subnets", "devices"), depends_on=(), host_package: str = "shopapp") -> str:
    return json.dumps(
        {
            "host_package": host_package,
            "plugins_dir": "plugins",
            "plugin_name": name,
            "tables": list(tables),
            "depends_on": list(depends_on),
        }
    )


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A destination with the host scaffold's registry and answers file, as cwd."""
    (tmp_path / "shopapp" / "plugins").mkdir(parents=True)
    (tmp_path / "shopapp" / "plugins" / "registry.json").write_text(EMPTY)
    (tmp_path / ".copier-answers.host.yml").write_text("host_package: shopapp\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def registry_text(host: Path) -> str:
    return (host / "shopapp" / "plugins" / "registry.json").read_text()


def test_the_rendered_empty_registry_is_in_the_hooks_own_format() -> None:
    assert register.render_registry({"plugins": {}}) == EMPTY
    rendered = TEMPLATE / "template" / "{% if scope == 'host' %}{{ host_package_dir }}{% endif %}" / "plugins" / "registry.json"
    assert rendered.read_text() == EMPTY


def test_adds_an_entry(host: Path) -> None:
    assert register.main([answers(depends_on=["core_net"])]) == 0
    assert json.loads(registry_text(host)) == {
        "plugins": {"network": {"tables": ["subnets", "devices"], "depends_on": ["core_net"]}}
    }


def test_one_table_per_line_for_reviewable_diffs(host: Path) -> None:
    register.main([answers()])
    assert '        "subnets",\n        "devices"\n' in registry_text(host)


def test_replaces_only_its_own_entry(host: Path) -> None:
    register.main([answers("network")])
    register.main([answers("printers", tables=["printers"], depends_on=["network"])])
    printers_before = json.loads(registry_text(host))["plugins"]["printers"]

    assert register.main([answers("network", tables=["subnets"])]) == 0
    plugins = json.loads(registry_text(host))["plugins"]
    assert plugins["network"] == {"tables": ["subnets"], "depends_on": []}
    assert plugins["printers"] == printers_before


def test_running_again_changes_nothing(host: Path) -> None:
    register.main([answers()])
    path = host / "shopapp" / "plugins" / "registry.json"
    text = path.read_text()
    os.utime(path, (1, 1))
    assert register.main([answers()]) == 0
    assert path.read_text() == text
    assert path.stat().st_mtime == 1, "an unchanged registry was rewritten"


def test_dotted_host_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = tmp_path / "myorg" / "shop" / "plugins" / "registry.json"
    registry.parent.mkdir(parents=True)
    registry.write_text(EMPTY)
    monkeypatch.chdir(tmp_path)
    assert register.main([answers(host_package="myorg.shop")]) == 0
    assert "network" in json.loads(registry.read_text())["plugins"]


def test_leaves_copiers_temporary_copies_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # During `copier update` the old and new renders hold only the plugin's files.
    (tmp_path / "plugins" / "network").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert register.main([answers()]) == 0
    assert [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")] == ["plugins", "plugins/network"]


def test_a_missing_registry_in_a_real_host_is_an_error(host: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (host / "shopapp" / "plugins" / "registry.json").unlink()
    assert register.main([answers()]) == 1
    message = capsys.readouterr().err
    assert "shopapp/plugins/registry.json is missing" in message
    assert "copier update --trust -a .copier-answers.host.yml" in message
    assert not (host / "shopapp" / "plugins" / "registry.json").exists()


def test_a_malformed_registry_is_an_error_and_kept(host: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = host / "shopapp" / "plugins" / "registry.json"
    path.write_text("{not json")
    assert register.main([answers()]) == 1
    assert "shopapp/plugins/registry.json is not valid JSON" in capsys.readouterr().err
    assert path.read_text() == "{not json"


def test_never_writes_through_a_symlink(host: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside") / "registry.json"
    outside.write_text(EMPTY)
    path = host / "shopapp" / "plugins" / "registry.json"
    path.unlink()
    path.symlink_to(outside)
    assert register.main([answers()]) == 1
    assert outside.read_text() == EMPTY


def test_usage_error_without_exactly_one_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert register.main([]) == 2
    assert "expected one JSON argument" in capsys.readouterr().err
