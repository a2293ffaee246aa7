"""A fresh install from the models: the plugin's tables as its models define them, then its head stamped.

What Alembic's cookbook ("Building an Up to Date Database from Scratch") and
Rails' ``db:schema:load`` do for a new database: a long history is run only
to reach what the models already say, at about 30 ms per plugin of ten
revisions on SQLite (bench/README.md, row 4). It is opt-in
(``upgrade-all --install-from-models``) because no revision runs: rows a
revision inserts and objects the models do not describe (views, triggers,
functions, data fixes) are not made. ``check`` proves that the models and the
chain's head build the same schema; the README says when to use it.

Only a plugin with nothing installed (no version row, none of its tables)
is installed this way, and only to its head; every other runs its
revisions. The head is stamped from the cached graph, so no revision file
is imported (``Chains.stamping_config``).
"""

from __future__ import annotations

import io

from alembic import command
from sqlalchemy import make_url
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateIndex, CreateTable

from .alembic_template import model_tables
from .autogen import enum_types
from .chains import Chains
from .schemas import create_schema, effective_schema


def install_from_models(chains: Chains, connection: Connection, name: str) -> None:
    """Create ``name``'s schema (if it has one), enum types, tables and indexes from its models; stamp its head."""
    entry = chains.registry.entry(name)
    tables = model_tables(chains.registry, name, connection.dialect.name)
    if schema := effective_schema(entry.schema, connection.dialect.name):
        connection.execute(create_schema(schema))  # in the plugin's transaction, as an install from its base does
    for enum in enum_types(frozen.table for frozen in tables):
        enum.create(connection, checkfirst=True)
    for frozen in tables:
        connection.execute(CreateTable(frozen.table))
        for index in frozen.indexes:
            connection.execute(CreateIndex(index))
    command.stamp(chains.stamping_config(name, connection), "head")


def install_from_models_sql(chains: Chains, name: str) -> str:
    """What ``install_from_models`` would run, as SQL for ``--sql``."""
    entry = chains.registry.entry(name)
    dialect = make_url(chains.database.url).get_dialect()()
    statements: list[str] = []
    if schema := effective_schema(entry.schema, dialect.name):
        statements.append(f"{str(create_schema(schema).compile(dialect=dialect)).strip()};\n")
    for frozen in model_tables(chains.registry, name, dialect.name):
        statements.append(f"{str(CreateTable(frozen.table).compile(dialect=dialect)).strip()};\n")
        statements.extend(f"{str(CreateIndex(index).compile(dialect=dialect)).strip()};\n" for index in frozen.indexes)
    buffer = io.StringIO()
    command.stamp(chains.config(name, sql_buffer=buffer), "head", sql=True)
    return f"-- plugin {name}: base -> {chains.head(name)}, from its models\n" + "".join(statements) + buffer.getvalue()
