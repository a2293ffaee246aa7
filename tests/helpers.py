"""Plain helpers for the tests: processes, git, Copier runs, hosts and databases.

Fixtures live in conftest.py and build on these; test modules import from here.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa
import yaml
from pytest_copie.plugin import Copie, Result

TEMPLATE = Path(__file__).resolve().parents[1]

#: An existing PostgreSQL server for the tests; `python3 dev.py test` starts one and sets it.
PG_URL = os.environ.get("PLUGIN_MIGRATIONS_TEST_PG_URL")


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run a command as a user would, capturing its output; never raises on failure."""
    return subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def copier(dest: Path, *args: str) -> subprocess.CompletedProcess:
    """`copier ARGS` run in dest, with this checkout as the template when no source is given."""
    return run([sys.executable, "-m", "copier", *args], dest)


def answer_args(answers: dict[str, object]) -> list[str]:
    """Answers as `-d key=value` arguments, values written the way a user types them."""
    def typed(value: object) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(map(str, value)) + "]"
        return str(value)

    return [arg for key, value in answers.items() for arg in ("-d", f"{key}={typed(value)}")]


#: Keyword arguments of copy_host/copy_plugin/copie_host/copie_plugin that are not answers.
COPY_OPTIONS = {"template", "vcs_ref", "app"}

#: The host scope's answers for the shop app, under each test's own.
HOST_ANSWERS = {"scope": "host", "host_package": "shopapp", "model_base": "shopapp.models:Base"}


def _copy(dest: Path, answers: dict[str, object], template: Path = TEMPLATE, vcs_ref: str | None = None) -> subprocess.CompletedProcess:
    version = ["--vcs-ref", vcs_ref] if vcs_ref else []
    return copier(dest, "copy", "--trust", "--defaults", *version, *answer_args(answers), str(template), ".")


def copy_host(dest: Path, template: Path = TEMPLATE, vcs_ref: str | None = None, **answers: object) -> subprocess.CompletedProcess:
    """`copier copy --trust --defaults -d scope=host ...` into dest."""
    return _copy(dest, {**HOST_ANSWERS, **answers}, template, vcs_ref)


def copy_plugin(dest: Path, template: Path = TEMPLATE, vcs_ref: str | None = None, **answers: object) -> subprocess.CompletedProcess:
    """`copier copy --trust --defaults -d plugin_name=... ...` into dest, then `sync-registry`, as the README says."""
    result = _copy(dest, answers, template, vcs_ref)
    if result.returncode == 0:
        sync_registry(dest)
    return result


def sync_registry(dest: Path) -> None:
    """`python -m RUNTIME sync-registry` in the host at dest: the index the next copy's validators read."""
    host = yaml.safe_load((dest / ".copier-answers.host.yml").read_text())
    runtime = host.get("runtime_package") or f"{host['host_package']}.plugins"
    result = run([sys.executable, "-m", runtime, "sync-registry"], dest)
    assert result.returncode == 0, result.stderr


def copie_host(copie: Callable[..., Copie], template: Path, app: Path | None = None, **answers: object) -> Result:
    """copy_host in process, through pytest-copie's ``copie`` fixture: a new folder (a copy of app's, if given)."""
    return _copie(copie, None if app is None else Result(project_dir=app), template, {**HOST_ANSWERS, **answers})


def copie_plugin(copie: Callable[..., Copie], host: Result, template: Path, **answers: object) -> Result:
    """copy_plugin in process: a new folder, a copy of host's with the plugin scaffolded (pytest-copie's parent_result=)."""
    return _copie(copie, host, template, answers)


def _copie(copie: Callable[..., Copie], parent: Result | None, template: Path, answers: dict[str, object]) -> Result:
    # Copier in process: the same validators and files as `copier copy --defaults` (then sync-registry),
    # the answers as values; a refusal is result.exception instead of an exit code and stderr.
    result = copie(parent_result=parent, child_tpl=template).copy(extra_answers=answers)
    assert result.exit_code == 0, result.exception
    if answers.get("scope", "plugin") == "plugin":
        sync_registry(result.project_dir)
    return result


def git(dest: Path, *args: str) -> str:
    result = run(["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args], dest)
    assert result.returncode == 0, result.stderr
    return result.stdout


def commit_all(dest: Path, message: str = "test") -> None:
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", message, "--allow-empty")


def snapshot_template(source: Path, dest: Path, tag: str = "v1.0.0") -> Path:
    """A git copy of the template as it is on disk (tracked and untracked, not ignored), tagged."""
    return template_history(dest, [(None, tag)], source)


def template_history(dest: Path, versions: list[tuple[str | None, str]], source: Path = TEMPLATE) -> Path:
    """A git repository in dest with one tagged commit per version of the template, oldest first.

    A version is (ref, tag): ref is a commit of source's repository, whose tree
    `git archive` gives, or None for the template as it is on disk now.
    """
    dest.mkdir(parents=True, exist_ok=True)
    git(dest, "init", "-q")
    for ref, tag in versions:
        for child in dest.iterdir():  # the previous version goes, so that its deleted files do too
            if child.is_dir() and not child.is_symlink():
                if child.name != ".git":
                    shutil.rmtree(child)
            else:
                child.unlink()
        if ref is None:
            _copy_working_tree(source, dest)
        else:
            _extract_commit(source, ref, dest)
        commit_all(dest, "template" if ref is None else f"template at {ref}")
        git(dest, "tag", tag)
    return dest


def _copy_working_tree(source: Path, dest: Path) -> None:
    """source's files as they are on disk: tracked and untracked, not ignored."""
    listed = git(source, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for relative in filter(None, listed):
        if (source / relative).is_file():
            (dest / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / relative, dest / relative)


def _extract_commit(source: Path, ref: str, dest: Path) -> None:
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=source, capture_output=True)
    assert archive.returncode == 0, archive.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        # The "data" filter where Python has it (3.11.4 and later), which 3.14 makes the default.
        tar.extractall(dest, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))


def make_sqlalchemy_app(root: Path, package: str) -> None:
    """A plain SQLAlchemy application (no Flask) with one core table, as a git repo."""
    package_dir = root.joinpath(*package.split("."))
    package_dir.mkdir(parents=True)
    for depth in range(1, package.count(".") + 2):
        (root.joinpath(*package.split(".")[:depth]) / "__init__.py").write_text("")
    (package_dir / "models.py").write_text(
        "from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column\n\n\n"
        "class Base(DeclarativeBase):\n    pass\n\n\n"
        "class Account(Base):\n    __tablename__ = 'accounts'\n\n"
        "    id: Mapped[int] = mapped_column(primary_key=True)\n"
    )
    # As every Python repository's: running the app writes bytecode, which must not dirty the tree
    # (update-scaffolding, like `copier update`, refuses a dirty one).
    (root / ".gitignore").write_text("__pycache__/\n")
    git(root, "init", "-q")
    commit_all(root, "app")


def tree_snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root (but .git and Python's caches, the runtime's chain cache among them) with its bytes:
    compare two to prove nothing changed."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not {".git", "__pycache__"} & set(path.relative_to(root).parts)
    }


def reflected_schema(url: str) -> dict:
    """Everything a migration can get wrong, per table: columns, keys, constraints, indexes."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        inspector = sa.inspect(engine)
        schema = {}
        for table in sorted(inspector.get_table_names()):
            if table.startswith("alembic_version"):
                continue
            schema[table] = {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], str(c.get("default")), bool(c.get("autoincrement")))
                    for c in inspector.get_columns(table)
                ],
                "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
                "unique": sorted(
                    (u["name"] or "", tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)
                ),
                "foreign_keys": sorted(
                    (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]),
                     str(f.get("options", {}).get("ondelete")))
                    for f in inspector.get_foreign_keys(table)
                ),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)
                ),
            }
        return schema
    finally:
        engine.dispose()


class Database:
    """One empty test database, looked at through SQLAlchemy's inspector."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.backend = sa.make_url(url).get_backend_name()

    def _engine(self) -> sa.Engine:
        return sa.create_engine(self.url, poolclass=sa.pool.NullPool)

    def tables(self) -> set[str]:
        engine = self._engine()
        try:
            return set(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()

    def version_of(self, plugin: str) -> list[str]:
        """The revisions in plugin's version table ([] when the table is missing)."""
        if f"alembic_version_{plugin}" not in self.tables():
            return []
        return [row[0] for row in self.execute(f"SELECT version_num FROM alembic_version_{plugin}")]

    def run_script(self, script: str) -> None:
        """Run a whole ``--sql`` script as its client would (psql, sqlite3): every statement, in order."""
        engine = self._engine()
        try:
            connection = engine.raw_connection()
            try:
                if self.backend == "sqlite":
                    connection.driver_connection.executescript(script)
                else:  # psycopg sends a script without parameters as one simple query, as psql does
                    connection.driver_connection.autocommit = True
                    connection.driver_connection.execute(script)
            finally:
                connection.close()
        finally:
            engine.dispose()

    def execute(self, sql: str) -> list[tuple]:
        engine = self._engine()
        try:
            with engine.begin() as connection:
                result = connection.exec_driver_sql(sql)
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            engine.dispose()


def skip_unless_ci(reason: str) -> NoReturn:
    """Skip the calling test, or fail it under CI=true: CI must run every test."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def require_postgresql() -> str:
    """The PostgreSQL server's URL; without one, skip the calling test (fail it under CI=true)."""
    if not PG_URL:
        skip_unless_ci("no PostgreSQL server: run `python3 dev.py test`, or set PLUGIN_MIGRATIONS_TEST_PG_URL")
    return PG_URL


def require_commit(commit: str) -> str:
    """commit, if this repository has it; else skip the calling test (fail it under CI=true)."""
    if run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], TEMPLATE).returncode != 0:
        skip_unless_ci(f"commit {commit} is not in this clone (a shallow one?): `git fetch --unshallow` brings it")
    return commit


class Host:
    """A generated host application on disk, driven through its own commands."""

    def __init__(self, root: Path, package: str = "shopapp", database: Database | None = None, runtime: str | None = None) -> None:
        self.root = root
        self.package = package
        self.runtime = runtime or f"{package}.plugins"
        self.database = database or Database(f"sqlite:///{root / 'app.db'}")

    @property
    def registry_path(self) -> Path:
        return self.root.joinpath(*self.runtime.split("."), "registry.json")

    def registry(self) -> dict:
        return json.loads(self.registry_path.read_text())

    def declaration_path(self, plugin: str) -> Path:
        """The plugin's migrations/plugin.json: its tables and depends_on, as the runtime reads them."""
        return self.root / "plugins" / plugin / "migrations" / "plugin.json"

    def declare(self, plugin: str, **fields: object) -> None:
        """Change fields of the plugin's plugin.json, as an edit by hand (or a bad merge) would."""
        path = self.declaration_path(plugin)
        path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))

    def plugin_cli(self, *args: str, database_url: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
        """`python -m PKG.plugins ARGS` with DATABASE_URL set (default: the host's database)."""
        env = {"DATABASE_URL": database_url or self.database.url}
        return run([sys.executable, "-m", self.runtime, *args], self.root, env, stdin)

    def flask_cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """`flask --app shopapp:create_app plugin ARGS` (the demo app's Flask door)."""
        environment = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
        environment.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "shopapp:create_app", "plugin", *args],
            cwd=self.root, env=environment, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
        )

    def create_all(self, database_url: str | None = None, tables: list[str] | None = None) -> None:
        """create_all() of the host's metadata (or of ``tables`` only), as an app bootstrapping without migrations does."""
        result = self.python(
            "import os, sqlalchemy as sa\n"
            "from shopapp.plugins.metadata import load_metadata\n"
            "metadata = load_metadata()\n"
            f"names = {tables!r}\n"
            "tables = None if names is None else [metadata.tables[name] for name in names]\n"
            "metadata.create_all(sa.create_engine(os.environ['DATABASE_URL']), tables=tables)\n",
            database_url,
        )
        assert result.returncode == 0, result.stderr

    def python(self, code: str, database_url: str | None = None) -> subprocess.CompletedProcess:
        """Run Python code inside the host (its root on sys.path), DATABASE_URL set."""
        env = {"DATABASE_URL": database_url or self.database.url}
        return run([sys.executable, "-c", code], self.root, env)


#: Runs `python -m RUNTIME ARGS` with an audit hook that counts revision files executed and alembic.ini files opened,
#: and says which of Alembic's and Copier's modules the run loaded.
PROBE = '''
import json, os, runpy, sys
root = os.path.realpath("plugins") + os.sep
executed, opened = [], []
def hook(event, args):
    if event == "exec" and getattr(args[0], "co_filename", "").startswith(root):
        executed.append(os.path.relpath(args[0].co_filename, root))
    elif event == "open" and isinstance(args[0], (str, os.PathLike)) and os.fspath(args[0]).endswith("alembic.ini"):
        opened.append(os.fspath(args[0]))
sys.addaudithook(hook)
sys.argv = ["{runtime}", *{args!r}]
try:
    runpy.run_module("{runtime}", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    assert not exit.code, exit.code
finally:
    loaded = sorted(name for name in sys.modules if name.partition(".")[0] in ("alembic", "copier"))
    print(json.dumps({{"executed": [p for p in executed if "/versions/" in p], "opened": opened, "loaded": loaded}}),
          file=sys.stderr)
'''


def probe(host: Host, *args: str, database_url: str | None = None) -> tuple[str, dict[str, list[str]]]:
    """Run a command; its output and what it executed of the plugins' revision files and opened of alembic.ini."""
    result = host.python(PROBE.format(args=list(args), runtime=host.runtime), database_url)
    *_, counts = result.stderr.strip().splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, json.loads(counts)
