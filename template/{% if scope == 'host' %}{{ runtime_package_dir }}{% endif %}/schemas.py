"""A PostgreSQL schema per plugin: the plugin answer ``schema``, and what it means on each backend.

On PostgreSQL the plugin's tables (its models declare ``__table_args__ =
{"schema": ...}``) and its version table live in that schema; the plugin's
first migration creates it, and a downgrade to base (or ``remove``) drops it
once nothing else is left in it.

On SQLite, which has no schemas, the schema is mapped away: the tables live in
the main database (SQLAlchemy's ``schema_translate_map`` {schema: None}), so a
team can develop on SQLite and deploy on PostgreSQL. Table names are unique
across plugins (the registry refuses a table owned twice), so nothing collides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from sqlalchemy import BLANK_SCHEMA, Column, MetaData, Table, inspect
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.ddl import CreateSchema, DDLElement, DropSchema, DropTable, ExecutableDDLElement
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.sqltypes import NullType

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

#: Where the schema rules are written once for the registry's refusal (copier.yml's validator says the same).
SCHEMA_RULE = "a lowercase SQL identifier of at most 63 characters, not public, information_schema or pg_*"


def is_schema_name(name: str) -> bool:
    """Whether ``name`` may be a plugin's schema: a plain lowercase identifier that PostgreSQL does not reserve."""
    return (
        _SCHEMA_NAME.fullmatch(name) is not None
        and name not in ("public", "information_schema")
        and not name.startswith("pg_")
    )


def has_schemas(dialect_name: str) -> bool:
    """Whether the backend keeps a plugin's schema; SQLite maps it away (the main database)."""
    return dialect_name != "sqlite"


def effective_schema(schema: str, dialect_name: str) -> str | None:
    """The schema a plugin's objects live in on this backend; None for the default one."""
    return schema if schema and has_schemas(dialect_name) else None


def translate_map(schemas: Iterable[str], dialect_name: str) -> dict[str | None, str | None]:
    """``schema_translate_map`` for a connection: on SQLite every plugin schema becomes the main database."""
    if has_schemas(dialect_name):
        return {}
    return {schema: None for schema in schemas if schema}


def translated(connection: Connection, schemas: Iterable[str]) -> Connection:
    """``connection`` with plugin schemas mapped away where the backend has none (in place: SQLAlchemy 2)."""
    mapping = translate_map(schemas, connection.dialect.name)
    return connection.execution_options(schema_translate_map=mapping) if mapping else connection


def table_names(connection: Connection, schemas: Iterable[str]) -> set[str]:
    """The tables of the default schema and of every plugin schema that exists, unqualified.

    Unqualified is enough: the registry keeps a table name to one owner, and a
    version table names its plugin.
    """
    inspector = inspect(connection)
    names = set(inspector.get_table_names())
    if has_schemas(connection.dialect.name):
        present = set(inspector.get_schema_names())
        for schema in sorted(set(schemas) & present):
            names.update(inspector.get_table_names(schema=schema))
    return names


def create_schema(schema: str) -> CreateSchema:
    """``CREATE SCHEMA IF NOT EXISTS``: a plugin's first migration runs it, in its own transaction."""
    return CreateSchema(schema, if_not_exists=True)


def drop_if_empty(connection: Connection, schema: str) -> bool:
    """Drop ``schema`` if nothing is left in it; True when dropped.

    PostgreSQL decides what "empty" means (``DROP SCHEMA`` restricts by
    default), inside a savepoint, so a schema still holding something else
    (a view, a function, a table a person added) is kept and the transaction
    goes on.
    """
    if not has_schemas(connection.dialect.name) or schema not in inspect(connection).get_schema_names():
        return False
    savepoint = connection.begin_nested()
    try:
        connection.execute(DropSchema(schema))
    except Exception:  # noqa: BLE001 - a dependent object: keep the schema, as the docstring says
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def ddl_sql(dialect: Dialect, *statements: ExecutableDDLElement) -> str:
    """DDL as ``--sql`` shows it: compiled by the dialect (which quotes), each statement ended and followed by a blank line."""
    return "".join(f"{str(statement.compile(dialect=dialect)).strip()};\n\n" for statement in statements)


def drop_version_table_sql(dialect: Dialect, version_table: str, schema: str | None, if_exists: bool = False) -> str:
    """What ``--sql`` shows for dropping a plugin's version table, then its schema if it has one."""
    drops: list[ExecutableDDLElement] = [DropTable(Table(version_table, MetaData(), schema=schema), if_exists=if_exists)]
    if schema:
        drops.append(DropSchema(schema, if_exists=True))
    return ddl_sql(dialect, *drops)


# Keyed by the table count too: importing another plugin's models adds tables to the same MetaData.
@lru_cache(maxsize=8)
def without_schemas(metadata: MetaData, schemas: frozenset[str | None], _tables: int) -> MetaData:
    """A copy of ``metadata`` whose tables in ``schemas`` (and foreign keys into them) have no schema.

    What Alembic compares on SQLite: it reflects the main database's tables
    without a schema, and has no ``schema_translate_map`` of its own.
    """
    copy = MetaData(naming_convention=metadata.naming_convention)

    def referred(table: Table, to_schema: str | None, constraint: object, referred_schema: str | None) -> Any:
        return BLANK_SCHEMA if referred_schema in schemas else referred_schema  # None would keep the schema

    for table in metadata.sorted_tables:
        # schema=None is SQLAlchemy's "no schema" (its annotation names only a str or RETAIN_SCHEMA).
        mapped_away: dict[str, Any] = {"schema": None} if table.schema in schemas else {}
        table.to_metadata(copy, referred_schema_fn=referred, **mapped_away)
    return copy


def drop_plugin_schema(connection: Connection, schema: str, version_table: str) -> bool:
    """After a downgrade to base: the plugin's (empty) version table, then its schema if nothing else is in it."""
    if not has_schemas(connection.dialect.name):
        return False
    if version_table in inspect(connection).get_table_names(schema=schema):
        Table(version_table, MetaData(), schema=schema).drop(connection)
    return drop_if_empty(connection, schema)


def map_away_in_operations(migration_context: Any, schemas: Iterable[str]) -> None:
    """Make a SQLite migration context drop plugin schemas from the statements Alembic's ``op`` emits.

    ``schema_translate_map`` covers SQLAlchemy's own constructs (CREATE TABLE,
    INSERT, reflection), but Alembic writes a table's schema into ALTER and
    RENAME statements itself; a revision written against PostgreSQL says
    ``schema="plugin_x"``, and must run on SQLite too. Alembic has no option
    for it, so each statement's ``schema`` is cleared on its way to the database.
    Offline (``--sql``) no connection applies the translate map, so each
    statement is compiled with it here, as Alembic's own ``_exec`` would
    compile it otherwise. A batch copy of a table in the schema gets the
    tables its foreign keys point at (``refer_within``).
    """
    mapping = translate_map(schemas, migration_context.dialect.name)
    if not mapping:
        return
    impl = migration_context.impl
    execute = impl._exec

    def _exec(construct: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(construct, "schema", None) in mapping:
            construct.schema = None
        if not (impl.as_sql and isinstance(construct, ClauseElement)):
            return execute(construct, *args, **kwargs)
        literal = impl.literal_binds and not isinstance(construct, DDLElement)
        compiled = construct.compile(
            dialect=impl.dialect, schema_translate_map=mapping, render_schema_translate=True,
            compile_kwargs={"literal_binds": True} if literal else {},
        )
        impl.static_output(str(compiled).replace("\t", "    ").strip() + impl.command_terminator)
        return None

    prep_table_for_batch = impl.prep_table_for_batch

    def _prep_table_for_batch(batch: Any, table: Table) -> Any:
        if batch.new_table is not None and batch.new_table.schema in mapping:
            refer_within(batch.new_table)
        return prep_table_for_batch(batch, table)

    impl._exec = _exec
    impl.prep_table_for_batch = _prep_table_for_batch


def refer_within(copy: Table) -> None:
    """Give each foreign key of ``copy`` (Alembic's batch copy of a table) the table it names, as a stand-in.

    Alembic copies a table of schema S with every foreign key moved into S
    (``sites.id`` becomes ``S.sites.id``) but adds stand-ins only under the
    names the keys had, so a key that leaves the schema (into the core's
    ``sites``) names a table its metadata lacks, and SQLAlchemy refuses the
    CREATE TABLE. With S mapped away both names are the main database's
    ``sites``, so a stand-in for ``S.sites`` is what the copy needs; the
    translate map then renders ``REFERENCES sites (id)``.
    """
    metadata = copy.metadata
    for foreign_key in copy.foreign_keys:
        parts = foreign_key.target_fullname.split(".")
        if len(parts) != 3:
            continue
        schema, name, column = parts
        stand_in = metadata.tables.get(f"{schema}.{name}")
        if stand_in is None:
            stand_in = Table(name, metadata, schema=schema)
        if column not in stand_in.c:
            stand_in.append_column(Column(column, NullType()))
