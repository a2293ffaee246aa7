"""Frozen baselines: a plugin's tables as its baseline revision built them, written once.

While a chain is only its baseline, ``create_plugin_tables`` builds from the
models. When the chain grows, ``revisions`` freezes the baseline into
``migrations/baseline_schema.py`` (rendered here from the database at the
baseline), and ``create_plugin_tables`` builds from that file from then on.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any, Literal

from alembic.autogenerate import render_python_code
from alembic.autogenerate.api import AutogenContext
from alembic.operations import ops
from sqlalchemy import Boolean, Column, MetaData, Table, false, inspect, true
from sqlalchemy.engine import Connection
from sqlalchemy.schema import DefaultClause, sort_tables
from sqlalchemy.sql.elements import False_, True_

from .errors import PluginMigrationError
from .registry import PluginEntry


def load_frozen_baseline(entry: PluginEntry) -> dict[str, Callable[[], None]] | None:
    """table -> function that creates it as the baseline did, in foreign-key order; None if not frozen."""
    path = entry.frozen_baseline
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"_frozen_baseline_{entry.name}", path)
    if spec is None or spec.loader is None:
        raise PluginMigrationError(f'plugin "{entry.name}": cannot load its frozen baseline {path}')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.CREATE_TABLES)


def _portable_server_default(column: Column[Any]) -> None:
    """Make a reflected server default one every backend accepts, as the models would emit it."""
    default = column.server_default
    text_value = getattr(getattr(default, "arg", None), "text", getattr(default, "arg", None))
    if not isinstance(text_value, str):
        return
    value = text_value.strip().strip("'").lower()
    if value.startswith("nextval("):
        column.server_default = None  # PostgreSQL's SERIAL sequence: implied by an integer primary key
    elif isinstance(column.type, Boolean) and value in ("1", "true", "0", "false"):
        column.server_default = DefaultClause(true() if value in ("1", "true") else false())


def _render_boolean_default(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    if type_ == "server_default" and isinstance(getattr(obj, "arg", None), (True_, False_)):
        return "sa.true()" if isinstance(obj.arg, True_) else "sa.false()"
    return False


def render_frozen_baseline(entry: PluginEntry, connection: Connection, baseline_revision: str) -> str:
    """The frozen baseline file: the plugin's tables as the database at its baseline holds them.

    Types become their generic SQLAlchemy forms and defaults portable ones,
    so a baseline frozen on one backend builds the same schema on another.
    """
    present = set(inspect(connection).get_table_names())
    # A table registered after the baseline ran is not there: a later revision creates it.
    reflected = MetaData()
    tables = [Table(name, reflected, autoload_with=connection) for name in entry.tables if name in present]
    functions, entries = [], []
    for table in sort_tables(tables):
        for column in table.columns:
            try:
                column.type = column.type.as_generic()
            except NotImplementedError:
                pass
            _portable_server_default(column)
        operations = ops.UpgradeOps(
            ops=[
                ops.CreateTableOp.from_table(table),
                *(ops.CreateIndexOp.from_index(index) for index in sorted(table.indexes, key=lambda i: i.name or "")),
            ]
        )
        code = render_python_code(operations, render_item=_render_boolean_default)
        body = "\n".join(line for line in code.splitlines() if not line.strip().startswith("# ###"))
        functions.append(f"def create_{table.name}() -> None:\n{body}\n")
        entries.append(f'    "{table.name}": create_{table.name},')
    header = (
        f'"""Frozen baseline of the "{entry.name}" plugin: the schema {baseline_revision} built.\n\n'
        "Written when the chain grew past its baseline. create_plugin_tables() builds from\n"
        "this file from then on, so the baseline keeps building what it built before the\n"
        "later revisions; today's models are reached through those revisions. Do not edit.\n"
        '"""\n\n'
        "import sqlalchemy as sa\n"
        "from alembic import op\n"
    )
    return (
        header
        + "".join(f"\n\n{function}" for function in functions)
        + "\n\n#: owned table -> how the baseline creates it, in foreign-key order.\n"
        + "CREATE_TABLES = {\n"
        + "\n".join(entries)
        + "\n}\n"
    )
