"""Template versions over time: `update-scaffolding`, `check-scaffolding`, `sync-registry`.

Each test scaffolds hosts from a throwaway git copy of this template tagged
v1.0.0 and v2.0.0, where v2 changes every kind of scaffold file (and the
baseline, which an update must never touch).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from demo.run import build_host

from .conftest import TEMPLATE, Host, commit_all, copy_host, copy_plugin, git, run
from .test_render import make_sqlalchemy_app

PLUGIN_DIR = "template/{% if scope == 'plugin' %}{{ plugins_dir }}{% endif %}/{{ plugin_name }}/migrations"
RUNTIME_DIR = "template/{% if scope == 'host' %}{{ host_package_dir }}{% endif %}/plugins"
V2_ENV_FIRST_LINE = '# Alembic env for the "{{ plugin_name }}" plugin (template v2); the logic is shared.\n'


@pytest.fixture(scope="session")
def two_versions(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """template_repo plus a v2.0.0 that changes env.py, alembic.ini, script.py.mako, the baseline and the runtime."""
    repo = tmp_path_factory.mktemp("template-v2")
    shutil.copytree(template_repo, repo, dirs_exist_ok=True)
    env = repo / PLUGIN_DIR / "env.py.jinja"
    lines = env.read_text().splitlines(keepends=True)
    env.write_text(V2_ENV_FIRST_LINE + "".join(lines[1:]))
    ini = repo / PLUGIN_DIR / "alembic.ini.jinja"
    ini.write_text(ini.read_text().replace("[alembic]\n", "[alembic]\n# template v2\n"))
    mako = repo / PLUGIN_DIR / "script.py.mako"
    mako.write_text(mako.read_text().replace('"""Upgrade schema."""', '"""Upgrade schema (template v2)."""'))
    baseline = repo / PLUGIN_DIR / "versions" / "0001_baseline.py.jinja"
    baseline.write_text(baseline.read_text().replace("baseline schema", "baseline schema (v2)"))
    runtime = repo / RUNTIME_DIR / "alembic_template.py"
    runtime.write_text(runtime.read_text() + "\n# template v2\n")
    commit_all(repo, "v2")
    git(repo, "tag", "v2.0.0")
    return repo


def make_host_at(root: Path, template: Path, vcs_ref: str | None) -> Host:
    """A plain SQLAlchemy app with the host scope and three plugins, committed."""
    make_sqlalchemy_app(root, "shopapp")
    assert copy_host(root, template=template, vcs_ref=vcs_ref).returncode == 0
    commit_all(root, "host")
    for name, tables, depends_on in (
        ("network", ["subnets"], []),
        ("printers", ["printers"], ["network"]),
        ("audit", ["audit_log"], []),
    ):
        result = copy_plugin(root, template=template, vcs_ref=vcs_ref, plugin_name=name, tables=tables, depends_on=depends_on)
        assert result.returncode == 0, result.stderr
        commit_all(root, f"plugin {name}")
    return Host(root)


def plugin_command(host: Host, *args: str):
    return run([sys.executable, "-m", "shopapp.plugins", *args], host.root)


def commits(host: Host) -> list[str]:
    return git(host.root, "log", "--format=%s").splitlines()


def test_update_scaffolding_refreshes_every_scaffold_and_keeps_the_users_work(tmp_path: Path, two_versions: Path) -> None:
    host = make_host_at(tmp_path, two_versions, "v1.0.0")
    versions = tmp_path / "plugins/network/migrations/versions"
    revision = versions / "0002_add_vlan.py"
    revision.write_bytes(b'revision = "0002_add_vlan_network"\ndown_revision = "0001_baseline_network"\n')
    baseline = (versions / "0001_baseline.py").read_bytes()
    env = tmp_path / "plugins/network/migrations/env.py"
    env.write_text(env.read_text() + "# local tweak\n")
    commit_all(tmp_path, "user work")
    assert plugin_command(host, "check-scaffolding", "--latest").returncode == 1  # the env.py edit, and behind

    result = plugin_command(host, "update-scaffolding")

    assert result.returncode == 0, result.stderr
    assert commits(host)[:4] == [
        'Update plugin "printers" scaffolding to template v2.0.0',
        'Update plugin "network" scaffolding to template v2.0.0',
        'Update plugin "audit" scaffolding to template v2.0.0',
        "Update the host scaffolding to template v2.0.0",
    ]
    assert git(tmp_path, "status", "--porcelain") == ""
    assert revision.read_bytes() == b'revision = "0002_add_vlan_network"\ndown_revision = "0001_baseline_network"\n'
    assert (versions / "0001_baseline.py").read_bytes() == baseline, "an update touched the baseline"
    merged = env.read_text()
    assert merged.startswith('# Alembic env for the "network" plugin (template v2)') and merged.endswith("# local tweak\n")
    for name in ("network", "printers", "audit"):
        assert "# template v2\n" in (tmp_path / f"plugins/{name}/migrations/alembic.ini").read_text()
        assert "(template v2)" in (tmp_path / f"plugins/{name}/migrations/script.py.mako").read_text()
    assert (tmp_path / "shopapp/plugins/alembic_template.py").read_text().endswith("# template v2\n")
    assert json.loads((tmp_path / "shopapp/plugins/registry.json").read_text())["plugins"] == {
        "network": {"tables": ["subnets"], "depends_on": []},
        "printers": {"tables": ["printers"], "depends_on": ["network"]},
        "audit": {"tables": ["audit_log"], "depends_on": []},
    }

    # The merged hand edit is still a hand edit of a generated file, and the check says so.
    check = plugin_command(host, "check-scaffolding", "--latest")
    assert check.returncode == 1
    assert check.stdout.startswith('plugins/network/migrations/env.py: edited, but it is generated by plugin "network"')
    assert "+# local tweak" in check.stdout
    assert check.stdout.count("\n  fix: ") == 1

    again = plugin_command(host, "update-scaffolding")
    assert again.returncode == 0 and "0 scaffold(s) updated" in again.stdout


def test_update_scaffolding_stops_at_a_conflict_and_resumes(tmp_path: Path, two_versions: Path) -> None:
    host = make_host_at(tmp_path, two_versions, "v1.0.0")
    env = tmp_path / "plugins/network/migrations/env.py"
    env.write_text("# my own first line\n" + "".join(env.read_text().splitlines(keepends=True)[1:]))
    commit_all(tmp_path, "edit the line v2 changes")

    stopped = plugin_command(host, "update-scaffolding")

    assert stopped.returncode == 1
    assert stopped.stderr.strip() == (
        'Error: updating plugin "network" left conflicts in plugins/network/migrations/env.py: resolve the <<<<<<< '
        "markers (and apply then delete any .rej files), commit, then run `python -m shopapp.plugins "
        "update-scaffolding` again to update the rest"
    )
    check = plugin_command(host, "check-scaffolding")
    assert "plugins/network/migrations/env.py: holds conflict markers from an update" in check.stdout
    assert commits(host)[:2] == ['Update plugin "audit" scaffolding to template v2.0.0', "Update the host scaffolding to template v2.0.0"]

    env.write_text("".join(line for line in env.read_text().splitlines(keepends=True) if not line.startswith(("<<<<<<<", "=======", ">>>>>>>", "# my own"))))
    commit_all(tmp_path, "resolve")
    resumed = plugin_command(host, "update-scaffolding")
    assert resumed.returncode == 0, resumed.stderr
    assert commits(host)[0] == 'Update plugin "printers" scaffolding to template v2.0.0'
    assert plugin_command(host, "check-scaffolding").returncode == 0


def test_update_scaffolding_needs_a_clean_tree(tmp_path: Path, two_versions: Path) -> None:
    host = make_host_at(tmp_path, two_versions, "v1.0.0")
    (tmp_path / "scratch.txt").write_text("uncommitted")
    result = plugin_command(host, "update-scaffolding")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: the working tree has uncommitted changes; commit or stash them first (copier update needs a clean tree)"
    )


def test_latest_reports_scaffolds_behind_with_exit_2(tmp_path: Path, two_versions: Path) -> None:
    host = make_host_at(tmp_path, two_versions, "v1.0.0")
    assert plugin_command(host, "check-scaffolding").returncode == 0

    behind = plugin_command(host, "check-scaffolding", "--latest")

    assert behind.returncode == 2
    assert behind.stdout.count("is at template v1.0.0, the newest is v2.0.0") == 4
    assert "fix: copier update --trust --defaults -a .copier-answers.plugin-printers.yml" in behind.stdout
    assert plugin_command(host, "update-scaffolding").returncode == 0
    assert plugin_command(host, "check-scaffolding", "--latest").returncode == 0


def break_env(root: Path) -> None:
    env = root / "plugins/network/migrations/env.py"
    env.write_text(env.read_text().replace("run_plugin_migrations(PLUGIN_NAME)", "run_plugin_migrations(PLUGIN_NAME)  # patched"))


def delete_mako(root: Path) -> None:
    (root / "plugins/usb/migrations/script.py.mako").unlink()


def leave_conflict(root: Path) -> None:
    ini = root / "plugins/printers/migrations/alembic.ini"
    ini.write_text(ini.read_text() + "<<<<<<< before updating\na = 1\n=======\na = 2\n>>>>>>> after updating\n")


def leave_rej(root: Path) -> None:
    (root / "plugins/printers/migrations/env.py.rej").write_text("@@ -1 +1 @@\n")


def edit_registry(root: Path) -> None:
    path = root / "shopapp/plugins/registry.json"
    registry = json.loads(path.read_text())
    registry["plugins"]["network"]["tables"].append("hand_added")
    path.write_text(json.dumps(registry, indent=2, sort_keys=True) + "\n")


def orphan_answers(root: Path) -> None:
    text = (root / ".copier-answers.plugin-usb.yml").read_text().replace("plugin_name: usb", "plugin_name: ghost")
    (root / ".copier-answers.plugin-ghost.yml").write_text(text)


def orphan_plugin(root: Path) -> None:
    (root / ".copier-answers.plugin-notifications.yml").unlink()
    path = root / "shopapp/plugins/registry.json"
    registry = json.loads(path.read_text())
    del registry["plugins"]["notifications"]
    path.write_text(json.dumps(registry, indent=2, sort_keys=True) + "\n")


BREAKAGES = [
    pytest.param(break_env, "plugins/network/migrations/env.py: edited, but it is generated by plugin \"network\"",
                 "+run_plugin_migrations(PLUGIN_NAME)  # patched", id="edited-env-py"),
    pytest.param(delete_mako, "plugins/usb/migrations/script.py.mako: deleted, but plugin \"usb\"'s template generates it",
                 "fix: copier recopy --trust --defaults --overwrite --vcs-ref=:current: -a .copier-answers.plugin-usb.yml",
                 id="deleted-script-py-mako"),
    pytest.param(leave_conflict, "plugins/printers/migrations/alembic.ini: holds conflict markers from an update",
                 "+<<<<<<< before updating", id="conflict-marker"),
    pytest.param(leave_rej, "plugins/printers/migrations/env.py.rej: rejected update hunks of plugin \"printers\"",
                 "fix: apply what plugins/printers/migrations/env.py.rej holds", id="rej-file"),
    pytest.param(edit_registry, "shopapp/plugins/registry.json: differs from what the plugins' answers files say",
                 '+        "hand_added"', id="registry-edited-by-hand"),
    pytest.param(orphan_answers, ".copier-answers.plugin-ghost.yml: answers file without its plugin folder plugins/ghost",
                 "fix: `git rm .copier-answers.plugin-ghost.yml` if the plugin is gone", id="orphan-answers-file"),
    pytest.param(orphan_plugin, "plugins/notifications: plugin folder without an answers file",
                 "fix: record its answers with `copier copy --trust --defaults -d plugin_name=notifications", id="plugin-without-answers"),
]


@pytest.fixture(scope="module")
def clean_host(tmp_path_factory: pytest.TempPathFactory, template_repo: Path) -> Path:
    root = tmp_path_factory.mktemp("clean-host")
    build_host(root, template_repo, quiet=True)
    return root


def test_check_scaffolding_passes_on_a_clean_host(clean_host: Path) -> None:
    result = plugin_command(Host(clean_host), "check-scaffolding")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "scaffolding matches the template\n"


@pytest.mark.parametrize(("breakage", "finding", "detail"), BREAKAGES)
def test_check_scaffolding_reports_each_kind_of_drift(clean_host: Path, tmp_path: Path, breakage, finding: str, detail: str) -> None:
    root = tmp_path / "host"
    shutil.copytree(clean_host, root, symlinks=True)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    breakage(root)
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    result = plugin_command(Host(root), "check-scaffolding")

    assert result.returncode == 1
    assert result.stdout.startswith(finding), result.stdout
    assert detail in result.stdout
    assert result.stdout.count("\n  fix: ") == 1, result.stdout
    assert result.stderr.strip() == "Error: 1 scaffolding problem(s), each with its fix above"
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == after, "the check wrote to the working tree"
    assert before != after


def test_sync_registry_rewrites_it_from_the_answers_in_the_hooks_format(clean_host: Path, tmp_path: Path) -> None:
    root = tmp_path / "host"
    shutil.copytree(clean_host, root, symlinks=True)
    registry = root / "shopapp/plugins/registry.json"
    written_by_hook = registry.read_text()
    edit_registry(root)

    result = plugin_command(Host(root), "sync-registry")

    assert result.returncode == 0, result.stderr
    assert registry.read_text() == written_by_hook
    assert plugin_command(Host(root), "check-scaffolding").returncode == 0


def test_the_registry_format_is_the_same_in_hook_and_runtime(clean_host: Path) -> None:
    spec = importlib.util.spec_from_file_location("register", TEMPLATE / "hooks" / "register.py")
    register = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(register)
    data = {"plugins": {"b": {"tables": ["t2", "t1"], "depends_on": ["a"]}, "a": {"tables": ["t0"], "depends_on": []}}}
    result = Host(clean_host).python(
        "import json, sys; from shopapp.plugins.scaffolding import render_registry; "
        f"sys.stdout.write(render_registry(json.loads({json.dumps(json.dumps(data))})))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == register.render_registry(data)


COUNT_PROCESSES = """
import subprocess, sys
spawned = []
original = subprocess.Popen.__init__
def counting(self, args, *rest, **kwargs):
    spawned.append(args)
    original(self, args, *rest, **kwargs)
subprocess.Popen.__init__ = counting
from shopapp.plugins.scaffolding import check_scaffolding
report = check_scaffolding()
print(len(spawned), report.exit_code)
"""


def test_check_scaffolding_fetches_each_version_once_and_starts_no_process_per_plugin(
    clean_host: Path, tmp_path: Path, template_repo: Path
) -> None:
    six = Host(clean_host).python(COUNT_PROCESSES)
    three = make_host_at(tmp_path, template_repo, None).python(COUNT_PROCESSES)
    assert six.returncode == 0 and three.returncode == 0, six.stderr + three.stderr
    # One clone of the template source and one archive of its single recorded version.
    assert six.stdout.split() == ["2", "0"]
    assert three.stdout.split() == ["2", "0"]


# -- Hostile answers files and template versions (issue 12) ------------------------------------------------------


def copy_of(clean_host: Path, tmp_path: Path, name: str = "host") -> Path:
    root = tmp_path / name
    root.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(clean_host, root, symlinks=True)
    return root


MARKERS = "<<<<<<< before updating\nX = 1\n=======\nX = 2\n>>>>>>> after updating\n"


@pytest.mark.parametrize("module", ["cli.py", "scaffolding.py"])
def test_conflict_markers_in_a_runtime_module_are_a_finding_not_a_traceback(clean_host: Path, tmp_path: Path, module: str) -> None:
    root = copy_of(clean_host, tmp_path)
    path = root / "shopapp/plugins" / module
    path.write_text(path.read_text() + MARKERS)

    result = plugin_command(Host(root), "check-scaffolding")

    assert result.returncode == 1
    assert result.stdout == (
        f"shopapp/plugins/{module}: holds conflict markers from an update\n"
        f"  fix: resolve the <<<<<<< ... >>>>>>> blocks in shopapp/plugins/{module} and commit\n"
    )
    assert result.stderr == "Error: 1 scaffolding problem(s), each with its fix above\n"


def test_another_syntax_error_in_the_cli_is_one_line_naming_file_and_line(clean_host: Path, tmp_path: Path) -> None:
    root = copy_of(clean_host, tmp_path)
    cli = root / "shopapp/plugins/cli.py"
    lines = cli.read_text().splitlines(keepends=True)
    cli.write_text("".join(lines[:20]) + "def (\n" + "".join(lines[20:]))

    result = plugin_command(Host(root), "list")

    assert result.returncode == 1
    assert result.stderr == (
        "Error: shopapp/plugins/cli.py:21: invalid syntax; fix it (or restore the file from git) and run the command again\n"
    )
