"""The CI wiring a host gets: its GitHub Actions workflow and its pre-commit hooks, run for real.

The workflow is not only parsed: its `run:` steps run in order, on a clone of
the demo host in a fresh virtual environment, the way GitHub's runner runs
them (bash -e, the workflow's env, $GITHUB_OUTPUT between steps). The two
`uses:` steps are stood in for: actions/checkout by the clone, and
actions/setup-python by a new venv of the interpreter running these tests,
put first on PATH.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from demo.run import build_host

from .helpers import TEMPLATE, copie_host, git, skip_unless_ci

WORKFLOW = ".github/workflows/plugin-migrations.yml"
#: What the runtime imports from outside the standard library, or runs: each must be pinned in the workflow.
RUNTIME_TOOLS = {"copier", "alembic", "sqlalchemy", "click", "pytest"}
#: The test process's own settings that a runner would not have, and that would leak into the host's commands.
NOT_ON_A_RUNNER = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "DATABASE_URL", "PLUGIN_MIGRATIONS_")
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def requirement_pins() -> dict[str, str]:
    """requirements.txt's pins, by normalised project name."""
    pins = {}
    for line in (TEMPLATE / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def runner_env(workspace: Path, workflow: dict) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(NOT_ON_A_RUNNER)}
    env.update(CI="true", GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(workspace))
    env.update({key: str(value) for key, value in workflow.get("env", {}).items()})
    return env


def substitute(text: str, outputs: dict[str, dict[str, str]]) -> str:
    """GitHub's ${{ steps.ID.outputs.KEY }}; any other expression fails the test (the stand-in would not know it)."""
    def value(match: re.Match[str]) -> str:
        found = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", match.group(1))
        assert found, f"the workflow uses an expression this stand-in runner does not know: {match.group(0)}"
        return outputs[found.group(1)][found.group(2)]

    return EXPRESSION.sub(value, text)


@dataclass
class StepResult:
    name: str
    returncode: int
    output: str


@dataclass
class Run:
    """What the stand-in runner did: each step's result, and setup-python's resolved version."""

    steps: list[StepResult] = field(default_factory=list)
    python_version: str | None = None

    def failures(self) -> str:
        return "\n".join(f"step {s.name!r} exited {s.returncode}:\n{s.output[-3000:]}" for s in self.steps if s.returncode)


def run_step(script: str, workspace: Path, env: dict[str, str], outputs_file: Path) -> subprocess.CompletedProcess:
    """One `run:` step as GitHub's runner runs it with no `shell:` given: `bash -e` on a script file."""
    script_file = outputs_file.with_suffix(".sh")
    script_file.write_text(script)
    outputs_file.write_text("")
    return subprocess.run(["bash", "-e", str(script_file)], cwd=workspace, env={**env, "GITHUB_OUTPUT": str(outputs_file)},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)


def run_workflow(workspace: Path, workflow: dict, venv: Path, scratch: Path) -> Run:
    """Run the job's steps in order, as the runner would, stopping at the first failure."""
    env = runner_env(workspace, workflow)
    outputs: dict[str, dict[str, str]] = {}
    result = Run()
    [job] = workflow["jobs"].values()
    env.update({key: str(value) for key, value in job.get("env", {}).items()})
    for number, step in enumerate(job["steps"]):
        uses = step.get("uses", "")
        name = step.get("name") or uses or step["run"].splitlines()[0]
        if uses.startswith("actions/checkout@"):
            continue  # the workspace is the clone
        if uses.startswith("actions/setup-python@"):
            result.python_version = substitute(step["with"]["python-version"], outputs)
            made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
            result.steps.append(StepResult(name, made.returncode, made.stdout + made.stderr))
            env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
            continue
        assert not uses, f"the workflow uses {uses}, which this stand-in runner does not know"
        outputs_file = scratch / f"step{number}.out"
        done = run_step(substitute(step["run"], outputs), workspace, {**env, **step.get("env", {})}, outputs_file)
        result.steps.append(StepResult(name, done.returncode, done.stdout + done.stderr))
        if done.returncode:
            break
        if "id" in step:
            outputs[step["id"]] = dict(line.split("=", 1) for line in outputs_file.read_text().splitlines() if line)
    return result


# -- the generated files, rendered ----------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_origin(tmp_path_factory: pytest.TempPathFactory, template_repo: Path) -> Path:
    """The demo host, with its pyproject.toml, as a git repository; the default answers (python_version empty)."""
    root = tmp_path_factory.mktemp("ci") / "origin"
    build_host(root, template_repo, quiet=True)
    return root


@pytest.fixture(scope="module")
def rendered_workflow(demo_origin: Path) -> dict:
    return yaml.safe_load((demo_origin / WORKFLOW).read_text())


def test_the_workflow_pins_the_runtime_tools_as_requirements_txt_does(rendered_workflow: dict) -> None:
    tools = dict(pin.split("==") for pin in rendered_workflow["env"]["PLUGIN_MIGRATIONS_TOOLS"].split())
    assert RUNTIME_TOOLS <= set(tools), f"the workflow installs no {RUNTIME_TOOLS - set(tools)}"
    pins = requirement_pins()
    drifted = {name: (version, pins.get(name)) for name, version in tools.items() if pins.get(name) != version}
    assert not drifted, f"the workflow's pins differ from requirements.txt (workflow, requirements.txt): {drifted}"


def test_the_workflow_uses_current_actions_and_reads_only(rendered_workflow: dict) -> None:
    assert rendered_workflow["permissions"] == {"contents": "read"}
    steps = rendered_workflow["jobs"]["check"]["steps"]
    uses = [step["uses"] for step in steps if "uses" in step]
    # Node 24 majors: v5 of both ran on the deprecated Node 20.
    assert uses == ["actions/checkout@v6", "actions/setup-python@v6"]
    [setup] = [step for step in steps if step.get("uses", "").startswith("actions/setup-python@")]
    assert setup["with"]["cache"] == "pip"
    assert WORKFLOW in setup["with"]["cache-dependency-path"].split(), "the tools' pins must key the pip cache"


#: requires-python -> the version the workflow's first step picks. None: no pyproject.toml at all.
REQUIRES_PYTHON = [
    pytest.param(None, "3.12", id="no-pyproject"),
    pytest.param("", "3.12", id="no-requires-python"),
    pytest.param(">=3.12", "3.12", id="at-least"),
    pytest.param(">= 3.13, <4", "3.13", id="range-with-spaces"),
    pytest.param("<3.15,>=3.12", "3.12", id="upper-bound-first"),
    pytest.param("~=3.13", "3.13", id="compatible"),
    pytest.param("==3.12.*", "3.12", id="wildcard"),
    pytest.param(">3.12", "3.13", id="above-minor"),
    pytest.param(">3.12.1", "3.12", id="above-patch"),
    pytest.param(">=3.12,!=3.12.1", "3.12", id="exclusion"),
    pytest.param(">=3.8", "3.11", id="older-than-the-runtime"),
]


@pytest.mark.parametrize(("requires_python", "expected"), REQUIRES_PYTHON)
def test_the_python_version_follows_requires_python(rendered_workflow: dict, tmp_path: Path,
                                                     requires_python: str | None, expected: str) -> None:
    [step] = [step for step in rendered_workflow["jobs"]["check"]["steps"] if step.get("id") == "python"]
    workspace = tmp_path / "app"
    workspace.mkdir()
    if requires_python is not None:
        line = f'requires-python = "{requires_python}"\n' if requires_python else ""
        (workspace / "pyproject.toml").write_text(f'[project]\nname = "app"\n{line}')
    done = run_step(step["run"], workspace, runner_env(workspace, rendered_workflow), tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out").read_text() == f"version={expected}\n"


def test_an_answered_python_version_is_pinned_and_recorded(copie, template_repo: Path) -> None:
    root = copie_host(copie, template_repo, python_version="3.13").project_dir
    steps = yaml.safe_load((root / WORKFLOW).read_text())["jobs"]["check"]["steps"]
    assert [step["with"]["python-version"] for step in steps if "with" in step] == ["3.13"]
    assert not [step for step in steps if step.get("id") == "python"]
    assert yaml.safe_load((root / ".copier-answers.host.yml").read_text())["python_version"] == "3.13"


# -- the workflow and the hooks, run on a clone of the demo host -----------------------------------


@dataclass
class CiHost:
    clone: Path
    venv: Path
    workflow: dict
    run: Run


@pytest.fixture(scope="module")
def ci_host(demo_origin: Path) -> CiHost:
    """The demo host cloned, as actions/checkout would, and the workflow run on the clone.

    The fresh venv is the clone's .venv/, where the pre-commit hooks look for it.
    The first run downloads the pinned tools; later ones take them from pip's cache.
    """
    base = demo_origin.parent
    clone = base / "clone"
    git(base, "clone", "--quiet", str(demo_origin), str(clone))
    workflow = yaml.safe_load((clone / WORKFLOW).read_text())
    scratch = base / "runner"
    scratch.mkdir()
    return CiHost(clone, clone / ".venv", workflow, run_workflow(clone, workflow, clone / ".venv", scratch))


def test_the_workflow_runs_green_on_the_demo_host(ci_host: CiHost) -> None:
    assert not ci_host.run.failures(), ci_host.run.failures()
    names = [step.name for step in ci_host.run.steps]
    assert names[-2:] == ["Scaffolding matches the template",
                          "Plugin-migration tests (registry, ownership, migrations build the models' tables)"]
    assert ci_host.run.python_version == "3.11", "the demo's requires-python is >=3.11"
    assert "scaffolding matches the template" in ci_host.run.steps[-2].output
    assert re.search(r"\d+ passed", ci_host.run.steps[-1].output), ci_host.run.steps[-1].output
    installed = subprocess.run([str(ci_host.venv / "bin/python"), "-m", "pip", "freeze"], capture_output=True, text=True)
    frozen = {line.split("==")[0].lower(): line.split("==")[1] for line in installed.stdout.splitlines() if "==" in line}
    assert frozen["flask-sqlalchemy"], "the app's own dependencies come from its pyproject.toml"
    assert {name: frozen[name] for name in RUNTIME_TOOLS} == {name: requirement_pins()[name] for name in RUNTIME_TOOLS}


def test_without_the_install_step_the_checks_fail(ci_host: CiHost, tmp_path: Path) -> None:
    """The stand-in runner reports a failing step, and the install step is what the checks need."""
    workflow = {**ci_host.workflow, "jobs": {"check": {"steps": [
        step for step in ci_host.workflow["jobs"]["check"]["steps"] if not step.get("name", "").startswith("Install")
    ]}}}
    result = run_workflow(ci_host.clone, workflow, tmp_path / "bare-venv", tmp_path)
    assert result.steps[-1].name == "Scaffolding matches the template"
    assert result.steps[-1].returncode == 1
    assert "No module named" in result.steps[-1].output


@pytest.fixture(scope="module")
def pre_commit() -> list[str]:
    """The pre-commit client pinned in requirements.txt."""
    if importlib.util.find_spec("pre_commit") is None:
        skip_unless_ci("pre-commit is not installed: run python3 dev.py test, which installs requirements.txt")
    return [sys.executable, "-m", "pre_commit"]


def test_the_pre_commit_hooks_find_the_venv_without_it_being_activated(ci_host: CiHost, pre_commit: list[str],
                                                                       tmp_path: Path) -> None:
    assert not ci_host.run.failures(), "the workflow failed: no installed .venv to find"
    # python3 on PATH is the hooks' last resort: here it fails, so passing hooks found .venv/.
    stand_in = tmp_path / "bin"
    stand_in.mkdir()
    (stand_in / "python3").write_text("#!/bin/sh\necho 'the hook fell back to python3 on PATH' >&2\nexit 97\n")
    (stand_in / "python3").chmod(0o755)
    env = runner_env(ci_host.clone, {})
    env.update(PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"), PATH=f"{stand_in}{os.pathsep}{env['PATH']}")
    done = subprocess.run([*pre_commit, "run", "--all-files"], cwd=ci_host.clone, env=env, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.findall(r"^(plugin.*?)\.+Passed$", done.stdout, re.MULTILINE) == [
        "plugin scaffolding matches the template", "plugin-migration tests"]
