"""Unit tests of extensions/validators.jinja, the rules behind copier.yml's validators.

Rendered directly with Jinja set up as Copier sets it up (with the Ansible
filters Copier loads), so each rule is tested without a Copier run.
"""

from __future__ import annotations

import pytest
from jinja2 import FileSystemLoader
from jinja2.sandbox import SandboxedEnvironment

from .helpers import TEMPLATE

ENV = SandboxedEnvironment(
    loader=FileSystemLoader(str(TEMPLATE)),
    extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"],
    keep_trailing_newline=True,
)
CHECK = ENV.get_template("extensions/validators.jinja").module

REGISTRY = {
    "plugins": {
        "network": {"tables": ["subnets"], "depends_on": []},
        "computers": {"tables": ["computers"], "depends_on": ["network"]},
        "usb": {"tables": ["usb_devices"], "depends_on": ["computers"]},
    }
}


def rule(macro: str, *args) -> str:
    return str(getattr(CHECK, macro)(*args)).strip()


@pytest.mark.parametrize(
    ("macro", "args"),
    [
        ("host_package", ("shopapp", "host")),
        ("host_package", ("myorg.shopapp", "host")),
        ("model_base", ("shopapp.extensions:db.Model",)),
        ("plugins_dir", ("src/plugins",)),
        ("table_prefix", ("",)),
        ("table_prefix", ("poser_",)),
        ("plugin_name", ("network2",)),
        ("tables", (["poser_widgets", "poser_parts"], "widgets", "poser_", REGISTRY, False)),
        ("depends_on", (["usb", "network"], "printers", REGISTRY)),
        ("depends_on", ([], "printers", {})),
        ("python_version", ("",)),
        ("python_version", ("3.11",)),
        ("python_version", ("3.13.2",)),
    ],
    ids=lambda value: repr(value)[:30],
)
def test_good_values_render_nothing(macro: str, args: tuple) -> None:
    assert rule(macro, *args) == ""


def test_an_indirect_cycle_is_found() -> None:
    # network -> usb -> computers -> network
    assert rule("depends_on", ["usb"], "network", REGISTRY) == (
        "depends_on ['usb'] would make a dependency cycle back to 'network': a plugin cannot (indirectly) depend on itself."
    )


def test_an_update_keeps_its_own_entry_and_tables() -> None:
    # copier update of "network" itself: its own name and tables are not someone else's.
    assert rule("tables", ["subnets", "vlans"], "network", "", REGISTRY, True) == ""
    assert rule("depends_on", [], "network", REGISTRY) == ""


def test_the_same_name_on_copy_is_an_existing_plugin() -> None:
    assert rule("tables", ["vlans"], "network", "", REGISTRY, False).startswith("'network' is already a plugin in this host")


def test_without_a_registry_only_the_shape_is_checked() -> None:
    # Copier's temporary copies during `copier update` have no registry.json.
    assert rule("depends_on", ["anything"], "network", {}) == ""
    assert rule("tables", ["subnets"], "audit", "", {}, True) == ""
    assert rule("tables", ["Bad!"], "audit", "", {}, True).startswith("'Bad!' is not a valid table name")


def test_a_table_owned_elsewhere_names_its_owner() -> None:
    assert rule("tables", ["usb_devices"], "audit", "", REGISTRY, False) == (
        "'usb_devices' is already owned by plugin 'usb': a table has one owner (see Moving a table between owners in the README)."
    )


def test_only_the_first_problem_is_reported() -> None:
    message = rule("tables", ["ok_table", "Bad!", "order"], "audit", "", REGISTRY, False)
    assert message == "'Bad!' is not a valid table name: use lowercase letters, digits and _, not starting with a digit."


def test_trailing_newlines_never_pass() -> None:
    """Python's `$` matches before a final newline; the rules must match the whole value."""
    assert rule("plugin_name", "evil\n") != ""
    assert rule("host_package", "shopapp\n", "host") != ""
    assert rule("plugins_dir", "plugins\n") != ""
    assert rule("model_base", "shopapp.models:Base\n") != ""
    assert rule("table_prefix", "poser_\n") != ""
    assert rule("tables", ["audit_log\n"], "audit", "", {}, False) != ""
    assert rule("depends_on", ["network\n"], "audit", {}) != ""
    assert rule("python_version", "3.12\n") != ""


def test_a_plugin_inside_the_runtime_folder_cannot_take_a_runtime_module_name() -> None:
    assert rule("plugin_name", "registry", "shopapp/plugins", "shopapp.plugins") == (
        "'registry' is not a valid plugin name here: plugins_dir shopapp/plugins is the runtime's own folder, "
        "where registry.py is a runtime module; choose another name."
    )
    assert rule("plugin_name", "registry", "plugins", "shopapp.plugins") == ""
    assert rule("plugin_name", "registry", "shopapp/plugins", "shopapp.plugin_migrations") == ""


def test_the_validators_know_every_runtime_module_and_standard_library_name() -> None:
    """The lists in validators.jinja are data about the runtime and Python: keep them complete."""
    import sys

    runtime = TEMPLATE / "template" / "{% if scope == 'host' %}{{ runtime_package_dir }}{% endif %}"
    modules = {path.name.removesuffix(".jinja").removesuffix(".py") for path in runtime.glob("*.py*")}
    assert set(CHECK.runtime_modules) == modules
    assert set(sys.stdlib_module_names) <= set(CHECK.shadowed_modules)
    assert {"alembic", "sqlalchemy", "flask", "click", "copier"} <= set(CHECK.shadowed_modules)


def test_host_settings_of_a_plugin_copy_come_from_the_host() -> None:
    recorded = {"host_package": "shopapp", "plugins_dir": "plugins", "model_base": "shopapp.models:Base", "table_prefix": ""}
    assert rule("host_package", "shopapp", "plugin", recorded) == ""
    assert rule("plugins_dir", "plugins", "plugin", recorded) == ""
    assert rule("table_prefix", "poser_", "plugin", recorded).startswith("'poser_' is not this host's table_prefix")
    # Copier's temporary copies during an update have no host answers: nothing to compare with.
    assert rule("host_package", "otherapp", "plugin", {}) == ""
    # The host's own update may change its settings.
    assert rule("plugins_dir", "src/plugins", "host", recorded) == ""


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("shopapp.plugin_migrations", ""),
        ("", "'' is not a valid runtime package: use a dotted Python import name"),
        ("shopapp..plugins", "'shopapp..plugins' is not a valid runtime package"),
        ("os.plugins", "'os' is a standard-library or dependency module"),
        ("shopapp.class", "'class' is a Python keyword"),
    ],
)
def test_runtime_package_rules(value: str, message: str) -> None:
    result = rule("runtime_package", value, "host", {}, "")
    assert (message in result) if message else result == ""


def test_runtime_package_refuses_a_folder_holding_the_apps_own_files(tmp_path) -> None:
    (tmp_path / "shopapp/plugins").mkdir(parents=True)
    (tmp_path / "shopapp/plugins/loader.py").write_text("")
    assert rule("runtime_package", "shopapp.plugins", "host", {}, str(tmp_path)) == ""  # no file the runtime writes
    (tmp_path / "shopapp/plugins/__init__.py").write_text("")
    assert rule("runtime_package", "shopapp.plugins", "host", {}, str(tmp_path)).startswith(
        "'shopapp.plugins' is not a free runtime package: shopapp/plugins/ already holds shopapp/plugins/__init__.py"
    )
    # The runtime already there (a re-copy or an update) is not a conflict.
    assert rule("runtime_package", "shopapp.plugins", "host", {"host_package": "shopapp"}, str(tmp_path)) == ""
    (tmp_path / "shopapp/extras.py").write_text("")
    assert "shopapp/extras.py of the app's own" in rule("runtime_package", "shopapp.extras", "host", {}, str(tmp_path))
    # Glob wildcards in the destination's own path match nothing but themselves.
    odd = tmp_path / "app[1]"
    (odd / "shopapp/plugins").mkdir(parents=True)
    (odd / "shopapp/plugins/cli.py").write_text("")
    assert "shopapp/plugins/cli.py" in rule("runtime_package", "shopapp.plugins", "host", {}, str(odd))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", ""),
        ("shop_network", ""),
        ("acme.shop_network", ""),
        ("shop-network", "'shop-network' is not a valid plugin package"),
        ("json", "'json' is a standard-library or dependency module"),
        ("acme.import", "'import' is a Python keyword"),
    ],
)
def test_plugin_package_rules(value: str, message: str) -> None:
    result = rule("plugin_package", value)
    assert (message in result) if message else result == ""


def test_a_plugin_package_copy_asks_for_the_hosts_settings() -> None:
    assert rule("host_package", "", "plugin", {}, "shop_network").startswith(
        "A plugin package needs its host's settings, as there is no .copier-answers.host.yml here: give -d host_package=PKG"
    )
