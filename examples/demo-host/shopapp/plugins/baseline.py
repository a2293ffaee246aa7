"""Frozen baselines: a plugin's tables as its baseline revision built them, written once.

While a chain is only its baseline, ``create_plugin_tables`` builds from the
models. When the chain grows, ``revisions`` freezes the baseline into
``migrations/baseline_schema.py``, and ``create_plugin_tables`` builds from
that file from then on.

Where the frozen schema comes from. The freeze runs against a database at
the baseline revision, after the developer changed the models for the next
revision. Neither source alone is the baseline:

- the database holds exactly the tables, columns, nullability, keys,
  constraints (with their names) and indexes the baseline built, but
  reflection loses what the models said: SQLite keeps no time zone, enum or
  JSON type of its own, PostgreSQL gives its defaults back as its own SQL
  (``'new'::character varying``), and an app's ``TypeDecorator`` comes back
  as the type it stores;
- the models say all of that, but already with the next revision's changes.

So each table is frozen from the database's structure, and each column's
type and server default, each check constraint's SQL and each index from
the model wherever Alembic finds the model and the database agree on it:
what the baseline built in the first place is those Table objects. Where
they differ (what the next revisions change), the reflected form is used,
made generic and portable. A baseline frozen from either backend then
builds, on SQLite and on PostgreSQL, what ``create_all()`` of the
baseline-era models builds there; only a column that a later revision
changes keeps the reflected approximation at the baseline, and the
revisions take it to the models.

Tables registered after the baseline ran are not in that database: a later
revision creates them, so the frozen baseline leaves them out.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from sqlalchemy import BLANK_SCHEMA, Boolean, CheckConstraint, Column, Index, MetaData, Table, false, inspect, text, true
from sqlalchemy.engine import URL, Connection, Dialect, create_mock_engine
from sqlalchemy.schema import CreateIndex, CreateTable, DefaultClause, ExecutableDDLElement, sort_tables
from sqlalchemy.sql.naming import conv

from .autogen import enum_types, render_code
from .errors import PluginMigrationError
from .registry import PluginEntry
from .schemas import create_schema, effective_schema, has_schemas, without_schemas

#: (table, column, "type" or "server_default") that the models change against the database at the baseline.
Changes = set[tuple[str, str, str]]


@dataclass
class FrozenTable:
    """One table of a frozen baseline, as SQLAlchemy objects: create and drop it like the models' tables."""

    table: Table
    indexes: list[Index] = field(default_factory=list)


class _Recorder:
    """Stands in for ``alembic.op`` while a frozen baseline's functions run: it keeps what they would create."""

    def __init__(self, migration_context: MigrationContext, path: Path) -> None:
        self._context = migration_context
        self._path = path
        self.tables: list[FrozenTable] = []

    def __getattr__(self, name: str) -> Any:
        raise PluginMigrationError(
            f"{self._path}: a frozen baseline creates tables and indexes only (op.create_table, op.create_index), "
            f"not op.{name}; write that change as a revision"
        )

    def create_table(self, name: str, *columns: Any, **kw: Any) -> Table:
        table = ops.CreateTableOp(name, list(columns), **kw).to_table(self._context)
        schemas = frozenset({other.schema for other in table.metadata.tables.values()} - {None})
        if schemas and not has_schemas(self._context.dialect.name):
            # SQLite: the plugin's schema is the main database, for the table and its foreign keys (``schemas``).
            table = without_schemas(table.metadata, schemas, len(table.metadata.tables)).tables[name]
        self.tables.append(FrozenTable(table))
        return table

    def create_index(self, name: str, table_name: str, columns: Any, **kw: Any) -> Index:
        if not has_schemas(self._context.dialect.name):
            kw.pop("schema", None)
        index = ops.CreateIndexOp(name, table_name, columns, **kw).to_index(self._context)
        self.tables[-1].indexes.append(index)
        return index

    def f(self, name: str) -> conv:
        return conv(name)


def load_frozen_baseline(
    entry: PluginEntry, migration_context: MigrationContext, path: Path | None = None
) -> dict[str, FrozenTable] | None:
    """table -> its frozen form, in foreign-key order; None if the baseline is not frozen.

    ``path`` reads another file of the same form instead (a squash, ``squash.py``).
    """
    path = path or entry.frozen_baseline
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"_{path.stem}_{entry.name}", path)
    if spec is None or spec.loader is None:
        raise PluginMigrationError(f'plugin "{entry.name}": cannot load its frozen baseline {path}')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    recorder = _Recorder(migration_context, path)
    module.__dict__["op"] = recorder  # this module object is ours alone: its functions record instead of running
    frozen = {}
    for table_name, create in module.CREATE_TABLES.items():
        create()
        frozen[table_name] = recorder.tables[-1]
    return frozen


def _in_model_schemas(tables: list[Table], models: MetaData) -> list[Table]:
    """Tables reflected where schemas are mapped away (SQLite), put back in the models' schemas, and their
    foreign keys with them: the frozen file must build the same tables on PostgreSQL."""
    schema_of = {table.name: table.schema for table in models.tables.values() if table.schema}
    if not schema_of:
        return tables
    placed = MetaData(naming_convention=models.naming_convention)

    def referred(table: Table, to_schema: str | None, constraint: Any, referred_schema: str | None) -> Any:
        return referred_schema or schema_of.get(constraint.referred_table.name) or BLANK_SCHEMA

    def place(table: Table) -> Table:
        schema: dict[str, Any] = {"schema": schema_of[table.name]} if table.name in schema_of else {}
        return table.to_metadata(placed, referred_schema_fn=referred, **schema)

    placed_by_name = {table.name: place(table) for table in tables[0].metadata.sorted_tables} if tables else {}
    return [placed_by_name[table.name] for table in tables]  # the tables they point to came along


#: A PostgreSQL cast, ``::numeric`` or ``::character varying(20)[]``: how it gives back defaults and checks.
_CAST = re.compile(
    r"::(?:character varying|double precision|bit varying|(?:timestamp|time)(?:\(\d+\))? with(?:out)? time zone"
    r"|[A-Za-z_][\w.]*)(?:\(\d+(?:,\s*\d+)?\))?(?:\[\])*"
)


def without_casts(sql: str) -> str:
    """Reflected SQL without PostgreSQL's ``::type`` casts outside string literals, so SQLite accepts it too."""
    parts = re.split(r"('(?:[^']|'')*')", sql)
    return "".join(part if index % 2 else _CAST.sub("", part) for index, part in enumerate(parts))


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
    elif without_casts(text_value) != text_value:
        column.server_default = DefaultClause(text(without_casts(text_value)))


def _without_default_options(item: Any) -> None:
    """Drop reflected dialect options that only restate the default (``postgresql_include=[]``)."""
    for key, value in list(item.dialect_kwargs.items()):
        if value in ([], (), False, None):
            del item.dialect_kwargs[key]


def _generic(column: Column[Any]) -> None:
    try:
        column.type = column.type.as_generic()
    except NotImplementedError:
        pass


def _as_the_models_say(table: Table, model: Table | None, changes: Changes) -> list[Index]:
    """Give reflected ``table`` the model's types, defaults and check SQL where they agree; its indexes to create."""
    for column in table.columns:
        model_column = model.columns.get(column.name) if model is not None else None
        column.autoincrement = "auto" if model_column is None else model_column.autoincrement
        if model_column is None or (table.name, column.name, "type") in changes:
            _generic(column)
        else:
            column.type = model_column.type
        model_default = getattr(model_column, "server_default", False)
        if model_column is None or (table.name, column.name, "server_default") in changes:
            _portable_server_default(column)
        elif model_default is None or isinstance(model_default, DefaultClause):
            column.server_default = None if model_default is None else DefaultClause(model_default.arg)
    model_checks = {
        str(check.name): check for check in (model.constraints if model is not None else ())
        if isinstance(check, CheckConstraint) and isinstance(check.name, str)
    }
    for constraint in table.constraints:
        _without_default_options(constraint)
        if isinstance(constraint, CheckConstraint):
            model_check = model_checks.get(str(constraint.name))
            constraint.sqltext = model_check.sqltext if model_check is not None else text(
                without_casts(str(constraint.sqltext))
            )
    # An index on columns reflects exactly; one on expressions is the model's, where it has one by that name.
    model_indexes = {index.name: index for index in (model.indexes if model is not None else ())}
    indexes = []
    for index in sorted(table.indexes, key=lambda i: i.name or ""):
        index.unique = bool(index.unique)  # SQLite reflects 1
        _without_default_options(index)
        indexes.append(model_indexes.get(index.name, index) if not index.columns else index)
    return indexes


def render_frozen_baseline(
    entry: PluginEntry, connection: Connection, baseline_revision: str, models: MetaData, changes: Changes
) -> str:
    """The frozen baseline file: the plugin's tables as the database at its baseline holds them, typed as the models say."""
    schema = effective_schema(entry.schema, connection.dialect.name)
    present = set(inspect(connection).get_table_names(schema=schema))
    reflected = MetaData(naming_convention=models.naming_convention)
    tables = [Table(name, reflected, schema=schema, autoload_with=connection) for name in entry.tables if name in present]
    if not has_schemas(connection.dialect.name):
        tables = _in_model_schemas(tables, models)
    functions, entries, imports = [], [], {"import sqlalchemy as sa", "from alembic import op"}
    for table in sort_tables(tables):
        indexes = _as_the_models_say(table, models.tables.get(entry.key(table.name)), changes)
        operations = ops.UpgradeOps(
            ops=[ops.CreateTableOp.from_table(table), *(ops.CreateIndexOp.from_index(index) for index in indexes)]
        )
        code, needed = render_code(operations)
        imports |= needed
        body = "\n".join(line for line in code.splitlines() if not line.strip().startswith("# ###"))
        functions.append(f"def create_{table.name}() -> None:\n{body}\n")
        entries.append(f'    "{table.name}": create_{table.name},')
    header = (
        f'"""Frozen baseline of the "{entry.name}" plugin: the schema {baseline_revision} built.\n\n'
        "Written when the chain grew past its baseline. create_plugin_tables() builds from\n"
        "this file from then on, so the baseline keeps building what it built before the\n"
        "later revisions; today's models are reached through those revisions. Do not edit.\n"
        '"""\n\n'
        + "\n".join(sorted(imports, key=lambda line: (not line.startswith("import"), line)))
        + "\n"
    )
    return (
        header
        + "".join(f"\n\n{function}" for function in functions)
        + "\n\n#: owned table -> how the baseline creates it, in foreign-key order.\n"
        + "CREATE_TABLES = {\n"
        + "\n".join(entries)
        + "\n}\n"
    )


def create_tables(connection: Connection, tables: list[FrozenTable], schema: str | None) -> None:
    """Create ``schema`` (if given), the tables' enum types, then each table and its indexes, in the caller's transaction.

    How a squash and an install from the models build a plugin at once, as
    its base revision would: in the plugin's transaction, so a failure leaves
    nothing, not even the schema.
    """
    if schema:
        connection.execute(create_schema(schema))
    for enum in enum_types(frozen.table for frozen in tables):
        enum.create(connection, checkfirst=True)
    for frozen in tables:
        connection.execute(CreateTable(frozen.table))
        for index in frozen.indexes:
            connection.execute(CreateIndex(index))


def create_tables_sql(dialect: Dialect, tables: list[FrozenTable], schema: str | None) -> str:
    """What ``create_tables`` runs, as SQL statements for ``--sql``.

    The enum types come from the types themselves, run against SQLAlchemy's
    mock engine (its documented way to show DDL): what ``create`` would
    send, ``CREATE TYPE`` on PostgreSQL and nothing where a backend has none.
    """
    statements: list[ExecutableDDLElement] = [create_schema(schema)] if schema else []
    recorder = create_mock_engine(URL.create(dialect.name), lambda statement, *_, **__: statements.append(statement))
    for enum in enum_types(frozen.table for frozen in tables):
        enum.create(recorder, checkfirst=False)
    for frozen in tables:
        statements.append(CreateTable(frozen.table))
        statements.extend(CreateIndex(index) for index in frozen.indexes)
    return "".join(f"{str(statement.compile(dialect=dialect)).strip()};\n" for statement in statements)
