"""Render tests: run Copier for real, then parse what it wrote (ast, configparser, yaml, json)."""

from __future__ import annotations

import ast
import configparser
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from .helpers import COPY_OPTIONS, TEMPLATE, Database, Host, copie_host, copie_plugin, make_sqlalchemy_app, run

# GitHub Actions expressions (${{ ... }}) in the generated workflow are not Jinja.
JINJA_LEFTOVER = re.compile(r"(?<!\$){{|{%")
RUNTIME_FILES = {
    "__init__.py",
    "__main__.py",
    "alembic_template.py",
    "answers.py",
    "autogen.py",
    "baseline.py",
    "binds.py",
    "branches.py",
    "chains.py",
    "checks.py",
    "cli.py",
    "cli_options.py",
    "cli_scaffolding.py",
    "cli_squash.py",
    "compare.py",
    "conflicts.py",
    "declarations.py",
    "database.py",
    "downgrade.py",
    "errors.py",
    "fetching.py",
    "fleet.py",
    "from_models.py",
    "graphcache.py",
    "importing.py",
    "metadata.py",
    "naming.py",
    "outcomes.py",
    "output.py",
    "paths.py",
    "plan.py",
    "registry.json",
    "registry.py",
    "removal.py",
    "rendering.py",
    "replay.py",
    "review.py",
    "revisions.py",
    "rows.py",
    "scaffolding.py",
    "schemas.py",
    "settings.py",
    "shared_versions.py",
    "squash.py",
    "survival.py",
    "updating.py",
    "upgrade.py",
    "versions.py",
}
SCAFFOLD_FILES = {"alembic.ini", "env.py", "plugin.json", "script.py.mako", "versions/0001_baseline.py"}


def generated_files(root: Path) -> list[Path]:
    return [
        p for p in sorted(root.rglob("*"))
        if p.is_file() and not {".git", "__pycache__"} & set(p.relative_to(root).parts)
    ]


def assert_no_jinja_left(root: Path) -> None:
    for path in generated_files(root):
        text = path.read_text()
        if path.name == "script.py.mako":
            continue  # Mako's ${...} is Alembic's, and it has no Jinja markers to find
        assert not JINJA_LEFTOVER.search(text), f"Jinja left in {path.relative_to(root)}"


def test_host_scope_renders_the_runtime(copie, template_repo: Path) -> None:
    root = copie_host(copie, template_repo, model_base="shopapp.models:db.Model").project_dir

    assert {p.name for p in (root / "shopapp" / "plugins").iterdir() if p.is_file()} == RUNTIME_FILES
    assert (root / "tests" / "test_plugin_migrations.py").is_file()
    workflow = yaml.safe_load((root / ".github/workflows/plugin-migrations.yml").read_text())
    commands = [step.get("run", "") for step in workflow["jobs"]["check"]["steps"]]
    assert "python -m shopapp.plugins check-scaffolding" in commands
    assert "python -m pytest tests/test_plugin_migrations.py" in commands
    hooks = yaml.safe_load((root / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    assert [hook["args"] for hook in hooks] == [
        ["-m", "shopapp.plugins", "check-scaffolding"],
        ["-m", "pytest", "-q", "tests/test_plugin_migrations.py"],
    ]
    assert not (root / "plugins").exists(), "the host scope wrote plugin files"
    assert_no_jinja_left(root)
    for path in generated_files(root):
        if path.suffix == ".py":
            ast.parse(path.read_text(), filename=str(path))

    settings = ast.parse((root / "shopapp/plugins/settings.py").read_text())
    values = {node.targets[0].id: ast.literal_eval(node.value) for node in settings.body if isinstance(node, ast.Assign)}
    assert values == {"MODEL_BASE": "shopapp.models:db.Model", "PLUGINS_DIR": "plugins"}
    assert json.loads((root / "shopapp/plugins/registry.json").read_text()) == {"plugins": {}}

    answers = yaml.safe_load((root / ".copier-answers.host.yml").read_text())
    assert {k: v for k, v in answers.items() if not k.startswith("_")} == {
        "scope": "host",
        "host_package": "shopapp",
        "model_base": "shopapp.models:db.Model",
        "plugins_dir": "plugins",
        "runtime_package": "shopapp.plugins",
        "table_prefix": "",
        "python_version": "",
    }


def test_the_runtime_is_plain_python_copied_verbatim() -> None:
    # Only settings.py is rendered; everything else ships as is, so linters
    # and type checkers can read the runtime in place.
    runtime = TEMPLATE / "template" / "{% if scope == 'host' %}{{ runtime_package_dir }}{% endif %}"
    rendered = {p.name for p in runtime.iterdir() if p.suffix == ".jinja"}
    assert rendered == {"settings.py.jinja"}
    for path in runtime.glob("*.py"):
        assert not JINJA_LEFTOVER.search(path.read_text()), path.name


LAYOUTS = [
    pytest.param(("shopapp", "plugins"), id="flat"),
    pytest.param(("myorg.shop", "src/plugins"), id="dotted-package-nested-plugins-dir"),
]


@pytest.fixture(params=LAYOUTS)
def sqlalchemy_host(request: pytest.FixtureRequest, tmp_path: Path, copie, template_repo: Path) -> tuple[Host, str]:
    """A plain SQLAlchemy app with the host scope and three plugins, as the README's steps make it.

    Copier runs in process (pytest-copie), each step in a new folder holding
    a copy of the previous one; the host's own commands then run as processes.
    """
    package, plugins_dir = request.param
    make_sqlalchemy_app(tmp_path / "app", package)
    host = copie_host(copie, template_repo, tmp_path / "app",
                      host_package=package, model_base=f"{package}.models:Base", plugins_dir=plugins_dir)

    network = copie_plugin(copie, host, template_repo, plugin_name="network", tables=["subnets", "hosts"])
    # printers gets hand-written models with a foreign key into network's table.
    printers_dir = network.project_dir / plugins_dir / "printers"
    printers_dir.mkdir(parents=True)
    (printers_dir / "models.py").write_text(
        f"import sqlalchemy as sa\nfrom sqlalchemy.orm import Mapped, mapped_column\n\nfrom {package}.models import Base\n\n\n"
        "class Printer(Base):\n    __tablename__ = 'printers'\n\n"
        "    id: Mapped[int] = mapped_column(primary_key=True)\n"
        "    host_id: Mapped[int] = mapped_column(sa.ForeignKey('hosts.id'))\n"
    )
    printers = copie_plugin(copie, network, template_repo,
                            plugin_name="printers", tables=["printers"], depends_on=["network"])
    # audit declares a plain Table and asks for no model skeleton.
    audit = copie_plugin(copie, printers, template_repo, plugin_name="audit", tables=["audit_log"], with_models=False)
    (audit.project_dir / plugins_dir / "audit" / "models.py").write_text(
        f"import sqlalchemy as sa\n\nfrom {package}.models import Base\n\n"
        "audit_log = sa.Table('audit_log', Base.metadata, sa.Column('id', sa.Integer, primary_key=True),"
        " sa.Column('at', sa.DateTime, index=True))\n"
    )
    return Host(audit.project_dir, package), plugins_dir


def test_plugin_scope_renders_parseable_scaffolding(sqlalchemy_host: tuple[Host, str]) -> None:
    host, plugins_dir = sqlalchemy_host
    assert_no_jinja_left(host.root)
    package_dir = host.package.replace(".", "/")
    for name in ("network", "printers", "audit"):
        migrations = host.root / plugins_dir / name / "migrations"
        assert {str(p.relative_to(migrations)) for p in migrations.rglob("*") if p.is_file()} == SCAFFOLD_FILES

        env_lines = [line for line in (migrations / "env.py").read_text().splitlines() if line.strip()]
        assert len(env_lines) <= 5, env_lines
        env = ast.parse("\n".join(env_lines))
        assert any(
            isinstance(node, ast.Assign) and node.targets[0].id == "PLUGIN_NAME" and node.value.value == name
            for node in env.body
        )
        assert f"from {host.package}.plugins.alembic_template import run_plugin_migrations" in env_lines

        ini = configparser.ConfigParser(defaults={"here": str(migrations)})
        ini.read(migrations / "alembic.ini")
        assert Path(ini["alembic"]["script_location"]) == migrations
        assert Path(ini["alembic"]["prepend_sys_path"]).resolve() == host.root.resolve()
        assert "sqlalchemy.url" not in ini["alembic"]

        baseline = ast.parse((migrations / "versions" / "0001_baseline.py").read_text())
        assigned = {n.targets[0].id: ast.literal_eval(n.value) for n in baseline.body if isinstance(n, ast.Assign)}
        assert assigned["revision"] == f"0001_baseline_{name}"
        assert assigned["down_revision"] is None
        calls = {
            fn.name: ast.unparse(fn.body[0])
            for fn in baseline.body
            if isinstance(fn, ast.FunctionDef)
        }
        assert calls == {"upgrade": f"create_plugin_tables('{name}')", "downgrade": f"drop_plugin_tables('{name}')"}

        answers = yaml.safe_load((host.root / f".copier-answers.plugin-{name}.yml").read_text())
        assert answers["plugin_name"] == name
        # Recorded, so that `copier update` can render without the host's files.
        assert (answers["host_package"], answers["plugins_dir"]) == (host.package, plugins_dir)
        assert answers["model_base"] == f"{host.package}.models:Base"

    registry = json.loads((host.root / package_dir / "plugins" / "registry.json").read_text())
    assert registry == {
        "plugins": {
            "audit": {"tables": ["audit_log"], "depends_on": []},
            "network": {"tables": ["subnets", "hosts"], "depends_on": []},
            "printers": {"tables": ["printers"], "depends_on": ["network"]},
        }
    }

    skeleton = ast.parse((host.root / plugins_dir / "network" / "models.py").read_text())
    classes = {node.name: node for node in skeleton.body if isinstance(node, ast.ClassDef)}
    assert set(classes) == {"Subnets", "Hosts"}
    assert ast.unparse(classes["Hosts"].bases[0]) == "Base"
    assert "Printer" in (host.root / plugins_dir / "printers" / "models.py").read_text(), "models.py was overwritten"
    assert (host.root / plugins_dir / "network" / "__init__.py").is_file()


def test_plain_sqlalchemy_app_migrates_with_python_m(sqlalchemy_host: tuple[Host, str], database: Database) -> None:
    host, plugins_dir = sqlalchemy_host
    host.database = database
    result = host.plugin_cli("upgrade-all")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "3 plugins: 3 installed"
    order = [line.split()[0] for line in result.stdout.splitlines()[1:-1]]
    assert order.index("network") < order.index("printers")

    alembic = run(
        [sys.executable, "-m", "alembic", "-c", f"{plugins_dir}/audit/migrations/alembic.ini", "current"],
        host.root,
        {"DATABASE_URL": host.database.url},
    )
    assert alembic.returncode == 0, alembic.stderr
    assert "0001_baseline_audit (head)" in alembic.stdout
    assert database.tables() == {"subnets", "hosts", "printers", "audit_log"} | {
        f"alembic_version_{name}" for name in ("network", "printers", "audit")
    }

    generated_tests = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], host.root)
    assert generated_tests.returncode == 0, generated_tests.stdout


def test_generated_python_passes_ruff(sqlalchemy_host: tuple[Host, str]) -> None:
    """The runtime, the scaffold and the host's tests, as generated: no undefined or unused names."""
    host, _ = sqlalchemy_host
    result = run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "F,E9,B", "."], host.root)
    assert result.returncode == 0, result.stdout


def test_generated_runtime_passes_mypy_strict(sqlalchemy_host: tuple[Host, str]) -> None:
    """Hosts' CI may run mypy --strict over the vendored runtime; it must pass as generated.

    ``--follow-imports=silent``: the runtime is checked, not the host's own modules it imports.
    """
    host, _ = sqlalchemy_host
    runtime = host.package.replace(".", "/") + "/plugins"
    result = run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental", runtime], host.root)
    assert result.returncode == 0, result.stdout + result.stderr


def test_with_models_false_writes_no_models(copie, template_repo: Path) -> None:
    host = copie_host(copie, template_repo)
    plugin = copie_plugin(copie, host, template_repo, plugin_name="audit", tables=["audit_log"], with_models=False)
    root = plugin.project_dir
    assert not (root / "plugins" / "audit" / "models.py").exists()
    assert (root / "plugins" / "audit" / "migrations" / "env.py").is_file()


#: The helpers whose keyword arguments (but COPY_OPTIONS) are answers.
COPY_HELPERS = ("copy_host", "copy_plugin", "copie_host", "copie_plugin")


def test_every_answer_key_used_in_tests_is_a_question() -> None:
    """Copier silently ignores unknown -d keys; then a test would test nothing."""
    questions = {key for key in yaml.safe_load((TEMPLATE / "copier.yml").read_text()) if not key.startswith("_")}
    used: set[str] = set()
    sources = [*Path(__file__).parent.glob("*.py"), TEMPLATE / "demo" / "run.py"]
    for source in sources:
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in COPY_HELPERS:
                used.update(keyword.arg for keyword in node.keywords if keyword.arg and keyword.arg not in COPY_OPTIONS)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "copy":
                for keyword in node.keywords:
                    if keyword.arg == "extra_answers" and isinstance(keyword.value, ast.Dict):
                        used.update(key.value for key in keyword.value.keys)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "param":
                used.update(k.value for arg in node.args if isinstance(arg, ast.Dict) for k in arg.keys)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "param":
                used.update(k.value for arg in node.args if isinstance(arg, ast.Dict) for k in arg.keys)
        for node in tree.body:
            # Module-level answer tables (REJECTED, HOST_CASES, HOST_ANSWERS, ...): every dict in them is answers.
            if isinstance(node, ast.Assign) and re.search(r"(CASES|REJECTED|ANSWERS)$", getattr(node.targets[0], "id", "")):
                for inner in ast.walk(node.value):
                    if isinstance(inner, ast.Dict):
                        used.update(key.value for key in inner.keys if isinstance(key, ast.Constant))
        for match in re.finditer(r'"-d",\s*f?"([a-z_]+)=', source.read_text()):
            used.add(match.group(1))
    assert used, "the guard found no answers at all: its patterns are stale"
    assert {"plugin_name", "tables", "depends_on", "with_models", "host_package", "model_base", "plugins_dir", "table_prefix"} <= used
    assert used - questions == set()
