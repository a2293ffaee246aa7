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

from .alembic_template import model_tables
from .baseline import create_tables, create_tables_sql
from .chains import Chains
from .schemas import effective_schema


def install_from_models(chains: Chains, connection: Connection, name: str) -> None:
    """Create ``name``'s schema (if it has one), enum types, tables and indexes from its models; stamp its head."""
    dialect_name = connection.dialect.name
    schema = effective_schema(chains.registry.entry(name).schema, dialect_name)
    create_tables(connection, model_tables(chains.registry, name, dialect_name), schema)
    command.stamp(chains.stamping_config(name, connection), "head")


def install_from_models_sql(chains: Chains, name: str) -> str:
    """What ``install_from_models`` would run, as SQL for ``--sql``."""
    dialect = make_url(chains.database.url).get_dialect()()
    schema = effective_schema(chains.registry.entry(name).schema, dialect.name)
    created = create_tables_sql(dialect, model_tables(chains.registry, name, dialect.name), schema)
    buffer = io.StringIO()
    command.stamp(chains.config(name, sql_buffer=buffer), "head", sql=True)
    return f"-- plugin {name}: base -> {chains.head(name)}, from its models\n" + created + buffer.getvalue()
