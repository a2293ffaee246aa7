"""Template versions over time: `update-scaffolding`, `check-scaffolding`, `sync-registry`.

Each test scaffolds hosts from a throwaway git copy of this template tagged
v1.0.0 and v2.0.0, where v2 changes every kind of scaffold file (and the
baseline, which an update must never touch).
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from demo.run import build_host

from .helpers import Host, commit_all, copy_host, copy_plugin, git, make_sqlalchemy_app, run

PLUGIN_DIR = "template/{% if scope == 'plugin' %}{{ plugin_folder }}{% endif %}/migrations"
RUNTIME_DIR = "template/{% if scope == 'host' %}{{ runtime_package_dir }}{% endif %}"
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
    assert "fix: copier update --defaults -a .copier-answers.plugin-printers.yml" in behind.stdout
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


BREAKAGES = [
    pytest.param(break_env, "plugins/network/migrations/env.py: edited, but it is generated by plugin \"network\"",
                 "+run_plugin_migrations(PLUGIN_NAME)  # patched", id="edited-env-py"),
    pytest.param(delete_mako, "plugins/usb/migrations/script.py.mako: deleted, but plugin \"usb\"'s template generates it",
                 "fix: copier recopy --defaults --overwrite --vcs-ref=:current: -a .copier-answers.plugin-usb.yml",
                 id="deleted-script-py-mako"),
    pytest.param(leave_conflict, "plugins/printers/migrations/alembic.ini: holds conflict markers from an update",
                 "+<<<<<<< before updating", id="conflict-marker"),
    pytest.param(leave_rej, "plugins/printers/migrations/env.py.rej: rejected update hunks of plugin \"printers\"",
                 "fix: apply what plugins/printers/migrations/env.py.rej holds", id="rej-file"),
    pytest.param(edit_registry, "shopapp/plugins/registry.json: is out of date: the plugins' plugin.json files say otherwise",
                 '+        "hand_added"', id="registry-edited-by-hand"),
    pytest.param(orphan_answers, ".copier-answers.plugin-ghost.yml: answers file without its plugin folder plugins/ghost",
                 "fix: `git rm .copier-answers.plugin-ghost.yml` if the plugin is gone", id="orphan-answers-file"),
    pytest.param(orphan_plugin, "plugins/notifications: plugin folder without an answers file",
                 "fix: record its answers with `copier copy --defaults --overwrite -d plugin_name=notifications", id="plugin-without-answers"),
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
    # One clone of the template source; one rev-parse and one archive of its single recorded version;
    # no Copier render, as nothing differs.
    assert six.stdout.split() == ["3", "0"]
    assert three.stdout.split() == ["3", "0"]


# -- Hostile answers files and template versions (issue 12) ------------------------------------------------------


def copy_of(clean_host: Path, tmp_path: Path, name: str = "host") -> Path:
    root = tmp_path / name
    root.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(clean_host, root, symlinks=True)
    return root


def set_answer(root: Path, answers_file: str, key: str, value: str) -> None:
    """Rewrite one top-level answer, as a one-line edit in a pull request would."""
    path = root / answers_file
    lines = [line for line in path.read_text().splitlines(keepends=True) if not line.startswith(f"{key}:")]
    path.write_text("".join(lines) + f"{key}: {json.dumps(value)}\n")


def template_variant(template_repo: Path, dest: Path, tag: str, change) -> Path:
    """A git copy of template_repo with ``change(dest)`` committed on top and tagged ``tag``."""
    shutil.copytree(template_repo, dest)
    change(dest)
    commit_all(dest, f"variant {tag}")
    git(dest, "tag", tag)
    return dest


SPAWNED = """
import json, subprocess
spawned = []
original = subprocess.Popen.__init__
def recording(self, args, *rest, **kwargs):
    spawned.append([str(arg) for arg in args])
    original(self, args, *rest, **kwargs)
subprocess.Popen.__init__ = recording
from shopapp.plugins.scaffolding import check_scaffolding
print(json.dumps(spawned))
check_scaffolding()
print(json.dumps(spawned))
"""


def test_a_plugin_whose_answers_name_another_template_is_reported_and_never_updated(
    clean_host: Path, template_repo: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "task-ran"

    def add_task(repo: Path) -> None:
        config = repo / "copier.yml"
        task = f'  - command: ["{{{{ _copier_python }}}}", "-c", "open({str(marker)!r}, \\"w\\")"]\n'
        config.write_text(config.read_text().replace("_tasks:\n", "_tasks:\n" + task, 1))

    evil = template_variant(template_repo, tmp_path / "evil", "v1.0.1", add_task)
    root = copy_of(clean_host, tmp_path)
    set_answer(root, ".copier-answers.plugin-usb.yml", "_src_path", str(evil))
    commit_all(root, "a one-line edit")
    before = commits(Host(root))

    check = plugin_command(Host(root), "check-scaffolding")
    spawned = Host(root).python(SPAWNED)
    update = plugin_command(Host(root), "update-scaffolding")

    assert check.returncode == 1
    assert check.stdout.startswith(
        f".copier-answers.plugin-usb.yml: records template source '{evil}', not the host's '{template_repo}' "
        f"(from .copier-answers.host.yml)"
    ), check.stdout
    assert f"fix: if you did not mean to change it, set `_src_path: {template_repo}`" in check.stdout
    assert spawned.returncode == 0, spawned.stderr
    assert not [args for args in json.loads(spawned.stdout.splitlines()[-1]) if str(evil) in " ".join(args)]
    assert update.returncode == 1
    assert update.stderr.strip() == (
        f"Error: .copier-answers.plugin-usb.yml records template source '{evil}', not the host's '{template_repo}' "
        f"(from .copier-answers.host.yml): refusing to update it, as `copier update --trust` would run that template's "
        f"tasks as you; set its _src_path back to the host's and commit, then run update-scaffolding again"
    )
    assert not marker.exists(), "the other template's task ran"
    assert commits(Host(root)) == before, "update-scaffolding updated something before refusing"


GIT_OPTIONS = [
    pytest.param("_commit", "--output={written}", "template '{template}' has no version '--output={written}'",
                 id="commit-as-git-archive-output"),
    pytest.param("_src_path", "--upload-pack=touch {written};",
                 "fatal: repository '--upload-pack=touch {written};' does not exist", id="source-as-git-clone-option"),
]


@pytest.mark.parametrize(("key", "value", "message"), GIT_OPTIONS)
def test_recorded_values_are_never_read_as_git_options(
    clean_host: Path, template_repo: Path, tmp_path: Path, key: str, value: str, message: str
) -> None:
    written = tmp_path / "written-by-git"
    root = copy_of(clean_host, tmp_path)
    for answers_file in root.glob(".copier-answers*.yml"):  # every file, so that the host's trusts it too
        set_answer(root, answers_file.name, key, value.format(written=written))

    result = plugin_command(Host(root), "check-scaffolding")

    assert result.returncode == 1
    assert message.format(written=written, template=template_repo) in result.stdout, result.stdout
    assert "Traceback" not in result.stderr
    assert not written.exists(), "git read a recorded value as an option"


SECRET = "SECRET-7f3a9c"


def plant_secret(path: Path, text: str = SECRET) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def link_outside(root: Path, relative: str, target: Path) -> str:
    """Replace a file of the host by a symbolic link to ``target``; the finding that names it."""
    (root / relative).unlink()
    (root / relative).symlink_to(target)
    return f"{relative}: is a symbolic link that leads outside the repository; it was not read"


def point_plugins_dir_outside(root: Path) -> str:
    """plugins_dir: ../../.. in one plugin's answers (the host is at OUTSIDE/a/b/host)."""
    plant_secret(root.parents[2] / "usb/migrations/env.py")
    set_answer(root, ".copier-answers.plugin-usb.yml", "plugins_dir", "../../..")
    return ".copier-answers.plugin-usb.yml: its answers put generated files outside the repository (../../../usb/"


def name_a_plugin_with_a_path(root: Path) -> str:
    """plugin_name: ../../../usb, whose folder plugins/../../../usb exists outside (at OUTSIDE/a/usb)."""
    plant_secret(root.parents[1] / "usb/migrations/env.py")
    set_answer(root, ".copier-answers.plugin-usb.yml", "plugin_name", "../../../usb")
    return ".copier-answers.plugin-usb.yml: plugin_name '../../../usb' is not a valid plugin name"


def link_a_generated_file_outside(root: Path) -> str:
    return link_outside(root, "plugins/network/migrations/env.py", plant_secret(root.parents[2] / "secret.txt"))


def link_the_registry_outside(root: Path) -> str:
    secret = plant_secret(root.parents[2] / "secret.json", json.dumps({"plugins": {}, "secret": SECRET}))
    return link_outside(root, "shopapp/plugins/registry.json", secret)


OUTSIDE_READS = [
    pytest.param(point_plugins_dir_outside, id="plugins-dir-up-three"),
    pytest.param(name_a_plugin_with_a_path, id="plugin-name-a-path"),
    pytest.param(link_a_generated_file_outside, id="generated-file-symlinked-out"),
    pytest.param(link_the_registry_outside, id="registry-symlinked-out"),
]


@pytest.mark.parametrize("breakage", OUTSIDE_READS)
def test_check_scaffolding_reads_nothing_outside_the_repository(clean_host: Path, tmp_path: Path, breakage) -> None:
    root = copy_of(clean_host, tmp_path, "outside/a/b/host")
    finding = breakage(root)

    result = plugin_command(Host(root), "check-scaffolding")

    assert result.returncode == 1
    assert SECRET not in result.stdout + result.stderr
    assert finding in result.stdout, result.stdout
    assert "Traceback" not in result.stderr


def test_a_template_version_whose_subdirectory_leads_out_is_not_read(
    clean_host: Path, template_repo: Path, tmp_path: Path
) -> None:
    def subdirectory_up(repo: Path) -> None:
        config = repo / "copier.yml"
        config.write_text(config.read_text().replace("_subdirectory: template\n", "_subdirectory: ../..\n"))

    hostile = template_variant(template_repo, tmp_path / "hostile", "v1.0.1", subdirectory_up)
    root = copy_of(clean_host, tmp_path)
    for answers_file in root.glob(".copier-answers*.yml"):
        set_answer(root, answers_file.name, "_src_path", str(hostile))
    set_answer(root, ".copier-answers.host.yml", "_commit", "v1.0.1")
    # The check's temporary folder is TMPDIR/check-scaffolding-*/, so ../.. from its export is TMPDIR.
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    (tmpdir / "leak.txt").write_text(SECRET)
    (root / "leak.txt").write_text("the working tree's own\n")

    result = run([sys.executable, "-m", "shopapp.plugins", "check-scaffolding"], root, env={"TMPDIR": str(tmpdir)})

    assert result.returncode == 1
    assert SECRET not in result.stdout + result.stderr
    assert result.stdout.startswith(
        ".copier-answers.host.yml: this template version cannot be read: ../.. leads outside the template "
        "(copier.yml's _subdirectory: '../..'); nothing outside it was read"
    ), result.stdout


BILLION_LAUGHS = """\
scope: plugin
plugin_name: bomb
a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
tables: *i
"""

HOSTILE_YAML = [
    pytest.param(BILLION_LAUGHS, "refused, its YAML expands to more than 100000 values (aliases counted)", id="alias-bomb"),
    pytest.param("scope: plugin\nplugin_name: bomb\ntables: " + "[" * 200_000 + "]" * 200_000 + "\n",
                 "refused, its YAML nests deeper than 64 levels", id="deep-nesting"),
    pytest.param("scope: plugin\nplugin_name: bomb\ntables: []\n# " + "x" * (2 << 20) + "\n",
                 "refused, larger than 1048576 bytes", id="two-megabytes"),
]


def run_bounded(command: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    """Run command with 2 GiB of address space and 60 s at most (a regression must not take the machine down)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60, preexec_fn=limit,
                            stdin=subprocess.DEVNULL)
    return result, time.perf_counter() - started


@pytest.mark.parametrize(("text", "message"), HOSTILE_YAML)
def test_a_hostile_answers_file_is_refused_in_one_line_at_once(clean_host: Path, tmp_path: Path, text: str, message: str) -> None:
    root = copy_of(clean_host, tmp_path)
    (root / "plugins/bomb").mkdir()  # so that sync-registry would write the bomb's tables out
    (root / ".copier-answers.plugin-bomb.yml").write_text(text)

    sync, seconds = run_bounded([sys.executable, "-m", "shopapp.plugins", "sync-registry"], root)
    check, _ = run_bounded([sys.executable, "-m", "shopapp.plugins", "check-scaffolding"], root)

    # Not a speed target: a bound far below the old 46 s (and the memory limit above) that a loaded CI
    # machine's process start-up cannot reach; refusing in process takes about 0.01 s.
    assert seconds < 15, f"sync-registry took {seconds:.1f} s"
    assert (sync.returncode, sync.stderr) == (1, f"Error: .copier-answers.plugin-bomb.yml: {message}\n")
    assert check.returncode == 1
    assert f".copier-answers.plugin-bomb.yml: {message}\n  fix: restore .copier-answers.plugin-bomb.yml from git" in check.stdout


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


HOSTILE_TAR = """
import io, json, sys, tarfile
from pathlib import Path
from shopapp.plugins.fetching import TemplateUnusable, extract_plain

def member(name, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info

refusals = {}
for case in [member("../escaped"), member(sys.argv[1] + "/absolute"), member("link", tarfile.SYMTYPE, "/etc/passwd"),
             member("hardlink", tarfile.LNKTYPE, "ok.txt"), member("device", tarfile.CHRTYPE)]:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.addfile(member("ok.txt"), io.BytesIO(b""))
        tar.addfile(case)
    target = Path(sys.argv[1]) / "export" / case.name.replace("/", "_")
    target.mkdir(parents=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive.getvalue())) as tar:
            extract_plain(tar, target)
    except TemplateUnusable as error:
        refusals[case.name] = [str(error), sorted(p.name for p in target.iterdir())]
print(json.dumps(refusals))
"""


def test_the_tar_fallback_refuses_anything_but_files_and_folders_inside(clean_host: Path, tmp_path: Path) -> None:
    result = run([sys.executable, "-c", HOSTILE_TAR, str(tmp_path)], clean_host)

    assert result.returncode == 0, result.stderr
    refusals = json.loads(result.stdout)
    absolute = f"{tmp_path}/absolute"
    assert refusals == {
        "../escaped": ["the template's archive holds '../escaped', a path through ..", []],
        absolute: [f"the template's archive holds '{absolute}', an absolute path", []],
        **{
            name: [f"the template's archive holds '{name}', which is not a regular file or a folder "
                   "(links and devices are not extracted)", []]
            for name in ("link", "hardlink", "device")
        },
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


WITHOUT_TAR_FILTERS = """
import tarfile
# Python before 3.11.4 (Debian 12's 3.11.2): no data_filter, and extractall() takes no filter argument.
# On such a Python this is the real thing; on a newer one, make it so.
if hasattr(tarfile, "data_filter"):
    del tarfile.data_filter
    plain_extractall = tarfile.TarFile.extractall
    def extractall(self, path=".", members=None, *, numeric_owner=False):
        return plain_extractall(self, path, members, numeric_owner=numeric_owner)
    tarfile.TarFile.extractall = extractall
from shopapp.plugins.scaffolding import check_scaffolding
print(check_scaffolding().exit_code)
"""


def test_check_scaffolding_works_with_a_tarfile_without_extraction_filters(clean_host: Path, tmp_path: Path) -> None:
    root = copy_of(clean_host, tmp_path)
    assert Host(root).python(WITHOUT_TAR_FILTERS).stdout == "0\n"
    break_env(root)
    result = Host(root).python(WITHOUT_TAR_FILTERS)
    assert result.stdout == "1\n", result.stderr


def _add_plugin_file(repo: Path, name: str, text: str) -> None:
    folder = repo / PLUGIN_DIR / ".."
    (folder / name).write_text(text)


def copier_conf_sep(repo: Path) -> str:
    _add_plugin_file(repo, "path.txt.jinja", "{{ plugins_dir }}{{ _copier_conf.sep }}{{ plugin_name }}\n")
    return "plugins/network/path.txt"


def exclude_a_file(repo: Path) -> str:
    _add_plugin_file(repo, "NOTES.draft", "not generated\n")
    config = repo / "copier.yml"
    config.write_text(config.read_text().replace("_templates_suffix: .jinja\n", "_templates_suffix: .jinja\n_exclude: ['*.draft']\n"))
    return "plugins/network/migrations/env.py"


def jinja_extension(repo: Path) -> str:
    _add_plugin_file(repo, "names.txt.jinja", "{% set names = [] %}{% do names.append(plugin_name) %}{{ names | join(',') }}\n")
    config = repo / "copier.yml"
    config.write_text(config.read_text().replace("_templates_suffix: .jinja\n", "_templates_suffix: .jinja\n_jinja_extensions: [jinja2.ext.do]\n"))
    return "plugins/network/names.txt"


COPIER_FEATURES = [
    pytest.param(copier_conf_sep, id="copier-conf-sep"),
    pytest.param(exclude_a_file, id="exclude"),
    pytest.param(jinja_extension, id="jinja-extension"),
]


@pytest.mark.parametrize("feature", COPIER_FEATURES)
def test_check_scaffolding_reports_only_what_copier_would(template_repo: Path, tmp_path: Path, feature) -> None:
    edited: list[str] = []
    template = template_variant(template_repo, tmp_path / "template", "v1.1.0", lambda repo: edited.append(feature(repo)))
    root = tmp_path / "host"
    make_sqlalchemy_app(root, "shopapp")
    assert copy_host(root, template=template).returncode == 0
    assert copy_plugin(root, template=template, plugin_name="network", tables=["subnets"]).returncode == 0
    commit_all(root, "scaffolded")

    fresh = plugin_command(Host(root), "check-scaffolding")
    (root / edited[0]).write_text((root / edited[0]).read_text() + "# edited\n")
    edit = plugin_command(Host(root), "check-scaffolding")

    assert (fresh.returncode, fresh.stdout) == (0, "scaffolding matches the template\n"), fresh.stdout + fresh.stderr
    assert edit.returncode == 1
    assert edit.stdout.startswith(f'{edited[0]}: edited, but it is generated by plugin "network"\'s template at v1.1.0'), edit.stdout
    assert "\n+# edited\n" in edit.stdout
    assert edit.stdout.count("\n  fix: ") == 1
