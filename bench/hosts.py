"""Benchmark hosts: an application with N plugins, each with a chain of R revisions.

The scaffolding comes from real Copier runs of this template (the host scope
once, then the plugin scope once per plugin, in this process through
``copier.run_copy`` to spare 200 interpreter start-ups), so
``check-scaffolding`` and ``copier recopy`` both find it exactly as generated.
What a developer writes by hand is written here from text: each plugin's
models, its frozen baseline and its revisions 0002..R, each adding a column.

Plugins come in groups of five: the first of a group owns a table that the
other four refer to by foreign key and list in ``depends_on``, so dependency
order and cross-plugin foreign keys are part of every measurement.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HOST_PACKAGE = "benchapp"
MODEL_BASE = f"{HOST_PACKAGE}.models:Base"
GROUP = 5

CORE_MODELS = '''"""The benchmark application's core models: only the declarative base."""

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass
'''


def plugin_name(index: int) -> str:
    return f"p{index:03d}"


def table_name(index: int) -> str:
    return f"{plugin_name(index)}_item"


def parent_of(index: int) -> int | None:
    """The plugin that plugin ``index`` depends on (the first of its group), or None."""
    first = index - (index - 1) % GROUP
    return None if first == index else first


def git(dest: Path, *args: str) -> str:
    return subprocess.run(
        # gc.auto=0: a background `git gc --auto` after a commit repacks objects while the next
        # size's host is copied from this one, and the copy fails on a vanished file.
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "-c", "gc.auto=0", *args],
        cwd=dest,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def commit_all(dest: Path, message: str) -> None:
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", message, "--allow-empty")


def column_name(number: int) -> str:
    return f"c{number:02d}"


def models_source(index: int, revisions: int) -> str:
    parent = parent_of(index)
    lines = [
        f'"""Models of the {plugin_name(index)} plugin (benchmark host)."""',
        "",
        "import sqlalchemy as sa",
        "from sqlalchemy.orm import Mapped, mapped_column",
        "",
        f"from {HOST_PACKAGE}.models import Base",
        "",
        "",
        f"class Item{index:03d}(Base):",
        f'    __tablename__ = "{table_name(index)}"',
        "",
        "    id: Mapped[int] = mapped_column(primary_key=True)",
        "    name: Mapped[str] = mapped_column(sa.String(80))",
    ]
    if parent is not None:
        lines.append(f'    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("{table_name(parent)}.id"))')
    lines += [f"    {column_name(n)}: Mapped[int | None]" for n in range(2, revisions + 1)]
    return "\n".join(lines) + "\n"


def frozen_baseline_source(index: int) -> str:
    """baseline_schema.py as `plugin revision` freezes it: the table as the baseline built it."""
    parent = parent_of(index)
    table = table_name(index)
    foreign_key = (
        f'    sa.ForeignKeyConstraint(["parent_id"], ["{table_name(parent)}.id"], ),\n' if parent is not None else ""
    )
    parent_column = '    sa.Column("parent_id", sa.Integer(), nullable=True),\n' if parent is not None else ""
    return (
        f'"""Frozen baseline of the "{plugin_name(index)}" plugin: the schema 0001_baseline_{plugin_name(index)} built."""\n\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n\n"
        f"def create_{table}() -> None:\n"
        f'    op.create_table("{table}",\n'
        '    sa.Column("id", sa.Integer(), nullable=False),\n'
        '    sa.Column("name", sa.String(length=80), nullable=False),\n'
        f"{parent_column}{foreign_key}"
        '    sa.PrimaryKeyConstraint("id")\n'
        "    )\n\n\n"
        f'CREATE_TABLES = {{\n    "{table}": create_{table},\n}}\n'
    )


def revision_id(index: int, number: int) -> str:
    return f"0001_baseline_{plugin_name(index)}" if number == 1 else f"{number:04d}_{plugin_name(index)}"


def revision_source(index: int, number: int) -> str:
    name = plugin_name(index)
    down = revision_id(index, number - 1)
    column = column_name(number)
    return (
        f'"""add {column}\n\nRevision ID: {number:04d}_{name}\nRevises: {down}\n"""\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f'revision = "{number:04d}_{name}"\ndown_revision = "{down}"\nbranch_labels = None\ndepends_on = None\n\n\n'
        f'def upgrade():\n    op.add_column("{table_name(index)}", sa.Column("{column}", sa.Integer(), nullable=True))\n\n\n'
        f'def downgrade():\n    op.drop_column("{table_name(index)}", "{column}")\n'
    )


def new_host(dest: Path, template: str) -> None:
    """The core application, committed, with the host scope copied in and committed."""
    from copier import run_copy

    (dest / HOST_PACKAGE).mkdir(parents=True)
    (dest / HOST_PACKAGE / "__init__.py").write_text('"""Benchmark application."""\n')
    (dest / HOST_PACKAGE / "models.py").write_text(CORE_MODELS)
    (dest / ".gitignore").write_text("__pycache__/\n*.sqlite3\n")
    git(dest, "init", "-q")
    commit_all(dest, "The application")
    run_copy(
        template,
        dest,
        data={"scope": "host", "host_package": HOST_PACKAGE, "model_base": MODEL_BASE},
        defaults=True,
        unsafe=True,
        quiet=True,
    )
    commit_all(dest, "Add the plugin-migration runtime")


def add_plugins(dest: Path, template: str, indexes: range, revisions: int) -> None:
    """Scaffold plugins ``indexes`` with real Copier runs, then write their models and chains."""
    from copier import run_copy

    for index in indexes:
        name = plugin_name(index)
        folder = dest / "plugins" / name
        folder.mkdir(parents=True)
        (folder / "models.py").write_text(models_source(index, revisions))
        parent = parent_of(index)
        run_copy(
            template,
            dest,
            data={
                "plugin_name": name,
                "tables": [table_name(index)],
                "depends_on": [] if parent is None else [plugin_name(parent)],
            },
            defaults=True,
            unsafe=True,
            quiet=True,
        )
        versions = folder / "migrations" / "versions"
        if revisions > 1:
            (folder / "migrations" / "baseline_schema.py").write_text(frozen_baseline_source(index))
        for number in range(2, revisions + 1):
            (versions / f"{number:04d}_{name}_add_{column_name(number)}.py").write_text(revision_source(index, number))
    # As the README says after plugin copies: the registry.json index follows the plugins' plugin.json.
    subprocess.run([sys.executable, "-m", f"{HOST_PACKAGE}.plugins", "sync-registry"], cwd=dest, check=True,
                   capture_output=True)
    commit_all(dest, f"Add plugins {plugin_name(indexes.start)}..{plugin_name(indexes.stop - 1)}")


def plugin_folders(host: Path) -> list[Path]:
    return sorted(path for path in (host / "plugins").glob("*") if path.is_dir())


def build_hosts(root: Path, template: str, sizes: list[int], revisions: int) -> dict[int, Path]:
    """One host per size, each grown from a copy of the previous one (so 200 plugins cost 200 Copier runs)."""
    hosts: dict[int, Path] = {}
    previous: Path | None = None
    for size in sorted(sizes):
        dest = root / f"host-{size}"
        if previous is None:
            dest.mkdir(parents=True)
            new_host(dest, template)
            start = 1
        else:
            shutil.copytree(previous, dest, symlinks=True)
            start = max(hosts) + 1
        if size >= start:
            add_plugins(dest, template, range(start, size + 1), revisions)
        hosts[size] = previous = dest
    return hosts


BASELINE_ENV = f'''"""One Alembic environment for every plugin's chain: the benchmarks' baseline.

Alembic's generic env.py, filled in as its comments ask: the application's
metadata as target_metadata, the database from the environment.
"""

import os

from alembic import context
from sqlalchemy import create_engine, pool

from {HOST_PACKAGE}.models import Base

engine = create_engine(os.environ["DATABASE_URL"], poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
'''


def write_single_environment(env: Path, host: Path, size: int) -> Path:
    """The host's chains as branches of one Alembic environment in ``env``, with one version table."""
    env.mkdir(parents=True, exist_ok=True)
    (env / "env.py").write_text(BASELINE_ENV)
    locations = " ".join(
        str(host / "plugins" / plugin_name(index) / "migrations" / "versions") for index in range(1, size + 1)
    )
    ini = env / "alembic.ini"
    ini.write_text(
        f"[alembic]\nscript_location = {env}\nprepend_sys_path = {host}\npath_separator = space\n"
        f"version_locations = {locations}\n"
    )
    return ini
