"""What every plugin's ``env.py`` shim and revisions call: the shared Alembic environment.

Each plugin's ``migrations/env.py`` calls ``run_plugin_migrations(PLUGIN_NAME)``;
its baseline calls ``create_plugin_tables`` / ``drop_plugin_tables``; the core
app's own ``env.py`` may use ``core_include_name`` / ``core_include_object``.

- the version table is ``alembic_version_NAME``, so chains never collide;
- the target metadata is the application's, but ``include_name`` and
  ``include_object`` let a plugin see only the tables that registry.json
  gives it: never core tables, other plugins' tables or ``alembic_version*``;
- a connection handed in through ``config.attributes["connection"]`` is used
  as is (and its transaction is the caller's), so the CLI, PluginManager and
  tests share one transaction per plugin; ``config.attributes["registry"]``
  hands in the registry the command already read;
- ``create_plugin_tables`` / ``drop_plugin_tables`` emit DDL from the models
  themselves (SQLAlchemy ``CreateTable``), or from the frozen baseline once
  the chain has grown, so baselines never copy column definitions.

A little over 300 lines: the contract names this module as what env.py and
revisions import, and a plugin's schema (``schemas``) adds to each of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from logging.config import fileConfig
from typing import Any

from alembic import context, op
from alembic.util import CommandError
from sqlalchemy import MetaData, Table, inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import CreateIndex, CreateTable, DropTable, sort_tables

from .autogen import enum_types, prepare_revision, render_item
from .baseline import FrozenTable, load_frozen_baseline
from .chains import confine
from .database import backend_name, bind_url, make_engine, resolve_url
from .errors import PluginMigrationError
from .metadata import load_metadata
from .naming import NAMING_CONVENTION, unnamed_uniques
from .registry import Registry, default_registry
from .schemas import (
    create_schema,
    effective_schema,
    map_away_in_operations,
    table_names,
    translate_map,
    translated,
    without_schemas,
)
from .settings import MODEL_BASE

__all__ = [
    "NAMING_CONVENTION",
    "PLUGIN_TABLE_OWNERS",
    "configure_options",
    "core_include_name",
    "core_include_object",
    "create_plugin_tables",
    "drop_plugin_tables",
    "get_plugin_metadata",
    "include_name_for",
    "include_object_for",
    "plugin_tables",
    "run_plugin_migrations",
]


def _registry() -> Registry:
    """The registry the running command handed in, else the default one (only inside a migration)."""
    handed_in = context.config.attributes.get("registry")
    return handed_in if isinstance(handed_in, Registry) else default_registry()


class _TableOwners(Mapping[str, tuple[str, ...]]):
    """plugin name -> the tables it owns, read from registry.json on first use (not at import)."""

    def __getitem__(self, name: str) -> tuple[str, ...]:
        return default_registry().table_owners[name]

    def __iter__(self) -> Iterator[str]:
        return iter(default_registry().table_owners)

    def __len__(self) -> int:
        return len(default_registry().table_owners)

    def __repr__(self) -> str:
        return repr(dict(self))


#: plugin name -> the tables it owns, exactly as registry.json says.
PLUGIN_TABLE_OWNERS: Mapping[str, tuple[str, ...]] = _TableOwners()


def _owned(registry: Registry, plugin_name: str) -> tuple[str, ...]:
    try:
        return registry.table_owners[plugin_name]
    except KeyError:
        raise PluginMigrationError(
            f'plugin "{plugin_name}" is not in registry.json; scaffold it with '
            f"`copier copy -d plugin_name={plugin_name} ...`"
        ) from None


def plugin_tables(plugin_name: str, registry: Registry | None = None) -> list[Table]:
    """The plugin's Table objects from the shared metadata, in foreign-key order."""
    registry = registry or default_registry()
    owned = _owned(registry, plugin_name)
    entry = registry.entry(plugin_name)
    metadata = load_metadata(registry, entry.bind)
    missing = [name for name in owned if entry.key(name) not in metadata.tables]
    if missing:
        raise PluginMigrationError(
            f'plugin "{plugin_name}": registered tables {", ".join(missing)} are not defined by any model; '
            f"declare them in the plugin's models.py or remove them from its tables answer"
        )
    tables = [metadata.tables[entry.key(name)] for name in owned]
    for table in tables:
        for foreign_key in table.foreign_keys:
            referred = foreign_key.target_fullname.rpartition(".")[0]
            if referred not in metadata.tables:
                raise PluginMigrationError(
                    f'plugin "{plugin_name}": table "{table.name}" has a foreign key to "{referred}", which no '
                    f"imported model defines; the module of model_base ({MODEL_BASE}) must import every core "
                    f"model that plugin tables refer to"
                )
    return sort_tables(tables)


def get_plugin_metadata(plugin_name: str, registry: Registry | None = None) -> MetaData:
    """A new MetaData holding copies of exactly the plugin's tables.

    For inspection and tests; migrations use the shared metadata filtered by
    ``include_object`` so that foreign keys into other plugins still resolve.
    """
    filtered = MetaData()
    for table in plugin_tables(plugin_name, registry):
        table.to_metadata(filtered)
    return filtered


def include_name_for(plugin_name: str, registry: Registry | None = None, dialect_name: str = "") -> Callable[..., bool]:
    """Alembic ``include_name`` hook: reflect only the plugin's own tables, in its own schema."""
    registry = registry or default_registry()
    owned = frozenset(_owned(registry, plugin_name))
    schema = effective_schema(registry.entry(plugin_name).schema, dialect_name)

    def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
        if type_ == "schema":
            return name in (None, schema)
        if type_ == "table":
            return name in owned and parent_names.get("schema_name") == schema
        return True

    return include_name


def include_object_for(
    plugin_name: str, registry: Registry | None = None, connection: Connection | None = None, dialect_name: str = ""
) -> Callable[..., bool]:
    """Alembic ``include_object`` hook: compare only the plugin's own tables.

    With a SQLite ``connection``, a unique constraint the models name is not
    reported missing where the table holds it unnamed (SQLite databases built
    before constraints were named): batch mode names it when it next copies
    the table.
    """
    registry = registry or default_registry()
    owned = frozenset(_owned(registry, plugin_name))
    unnamed = unnamed_uniques(connection) if connection is not None and connection.dialect.name == "sqlite" else None
    schema = effective_schema(registry.entry(plugin_name).schema, connection.dialect.name if connection else dialect_name)

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table":
            return name in owned and obj.schema == schema
        table = getattr(obj, "table", None)
        if table is not None and type_ in ("column", "index", "unique_constraint", "foreign_key_constraint"):
            if type_ == "unique_constraint" and not reflected and unnamed is not None:
                return table.name in owned and tuple(c.name for c in obj.columns) not in unnamed(table.name)
            return bool(table.name in owned)
        return True

    return include_object


def target_metadata(registry: Registry, dialect_name: str, bind: str | None = None) -> MetaData:
    """The models' MetaData of ``bind`` as this backend sees it: on SQLite, plugin schemas mapped away."""
    metadata = load_metadata(registry, bind)
    mapping = translate_map(registry.schemas, dialect_name)
    return without_schemas(metadata, frozenset(mapping), len(metadata.tables)) if mapping else metadata


def configure_options(
    registry: Registry, plugin_name: str, dialect_name: str, connection: Connection | None = None
) -> dict[str, Any]:
    """The ``context.configure()`` options of plugin_name's environment (autogenerate and checks use them too).

    A plugin with a schema keeps its version table there and compares only
    that schema's tables; on SQLite the schema is mapped away (``schemas``).
    """
    schema = effective_schema(registry.entry(plugin_name).schema, dialect_name)
    return {
        "target_metadata": target_metadata(registry, dialect_name, registry.entry(plugin_name).bind),
        "version_table": registry.entry(plugin_name).version_table,
        "version_table_schema": schema,
        "include_schemas": schema is not None,
        "include_name": include_name_for(plugin_name, registry, dialect_name),
        "include_object": include_object_for(plugin_name, registry, connection, dialect_name),
        "compare_type": True,
        "compare_server_default": True,
        # SQLite cannot ALTER most things in place; batch mode copies the table there and
        # is a plain ALTER elsewhere, so a revision written against either backend runs on both.
        "render_as_batch": True,
        "render_item": render_item,
        "process_revision_directives": prepare_revision,
    }


def run_plugin_migrations(plugin_name: str) -> None:
    """The body of every plugin's env.py: run Alembic online or offline for plugin_name."""
    try:
        _run_plugin_migrations(plugin_name)
    except PluginMigrationError as error:
        # Plain `alembic` prints a CommandError as one "FAILED: ..." line, not a traceback.
        raise CommandError(str(error)) from None


def _run_plugin_migrations(plugin_name: str) -> None:
    config = context.config
    registry = _registry()
    confine(context.script, config.attributes.get("revision_map"))  # depends_on another plugin's revision
    if config.config_file_name is not None and "registry" not in config.attributes:
        # Plain `alembic -c .../alembic.ini` (the plugin commands hand in the registry, online and with --sql,
        # and keep Alembic quiet unless -v): honour the ini's logging setup.
        fileConfig(config.config_file_name, disable_existing_loggers=False)

    def database_url() -> str:
        bind, handed_in = registry.entry(plugin_name).bind, config.attributes.get("database_url")
        if bind is not None and not handed_in:  # plain `alembic -c .../alembic.ini` of a plugin in a bind
            return bind_url(bind)
        return resolve_url(handed_in, ini_url=config.get_main_option("sqlalchemy.url"))

    if context.is_offline_mode():
        url = database_url()
        context.configure(
            url=url,
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
            **configure_options(registry, plugin_name, backend_name(url)),
        )
        map_away_in_operations(context.get_context(), registry.schemas)
        schema = effective_schema(registry.entry(plugin_name).schema, backend_name(url))
        with context.begin_transaction():
            if schema and context.get_starting_revision_argument() in (None, "base"):
                context.execute(create_schema(schema))  # an install: the version table goes into it first
            context.run_migrations()
        return

    def run(connection: Connection) -> None:
        connection = translated(connection, registry.schemas)
        options = configure_options(registry, plugin_name, connection.dialect.name, connection)
        context.configure(connection=connection, **options)
        map_away_in_operations(context.get_context(), registry.schemas)
        with context.begin_transaction():
            schema = options["version_table_schema"]
            if schema and schema not in inspect(connection).get_schema_names():
                # Before Alembic makes the version table in it; in the plugin's transaction, so a failure leaves none.
                connection.execute(create_schema(schema))
            context.run_migrations()

    connectable = config.attributes.get("connection")
    if isinstance(connectable, Connection):
        run(connectable)  # the caller's transaction (PluginManager, the CLI, tests)
        return
    engine = connectable if isinstance(connectable, Engine) else make_engine(database_url())  # an Engine: pytest-alembic
    try:
        with engine.connect() as connection:
            run(connection)
            connection.commit()
    finally:
        if engine is not connectable:
            engine.dispose()


def _baseline_tables(registry: Registry, plugin_name: str) -> list[FrozenTable]:
    """The tables the baseline builds, in foreign-key order: its frozen form once the chain grew, else the models'."""
    frozen = load_frozen_baseline(registry.entry(plugin_name), op.get_context())
    if frozen is not None:
        # Still built: a table a later revision dropped (no owner, no model now), or its drop_table fails.
        taken = set(registry.owners) | {table.name for table in load_metadata(registry).tables.values()}
        return [table for name, table in frozen.items() if name not in taken - set(_owned(registry, plugin_name))]
    return model_tables(registry, plugin_name, op.get_context().dialect.name)


def model_tables(registry: Registry, plugin_name: str, dialect_name: str) -> list[FrozenTable]:
    """The plugin's tables as its models define them now, with their indexes, in foreign-key order."""
    # SQLite's DDL compiler leaves out a foreign key between two schemas, so there it builds from the
    # models with the schemas mapped away (what schema_translate_map does to the rest of the SQL).
    models = target_metadata(registry, dialect_name, registry.entry(plugin_name).bind)
    tables = [models.tables[table.key if table.key in models.tables else table.name]
              for table in plugin_tables(plugin_name, registry)]
    return [FrozenTable(table, sorted(table.indexes, key=lambda index: index.name or "")) for table in tables]


def create_plugin_tables(plugin_name: str) -> None:
    """Create the plugin's tables, the enum types they use (PostgreSQL) and their indexes, in foreign-key order.

    While the chain is only its baseline, the tables come from the models
    (SQLAlchemy ``CreateTable``), in lockstep with them. Once the chain has
    grown, from its frozen baseline (``migrations/baseline_schema.py``), so the
    baseline keeps building what it built before the next revisions.
    Online, only missing tables (and types) are created; offline (``--sql``) all are.
    """
    registry = _registry()
    offline = context.is_offline_mode()
    existing = set() if offline else table_names(op.get_bind(), registry.schemas)
    missing = [frozen for frozen in _baseline_tables(registry, plugin_name) if frozen.table.name not in existing]
    for enum in enum_types(frozen.table for frozen in missing):
        enum.create(op.get_bind(), checkfirst=not offline)
    for frozen in missing:
        op.execute(CreateTable(frozen.table))
        for index in frozen.indexes:
            op.execute(CreateIndex(index))


def drop_plugin_tables(plugin_name: str) -> None:
    """Drop the plugin's tables, dependents first, then their enum types; online, only those that exist."""
    registry = _registry()
    offline = context.is_offline_mode()
    existing = set() if offline else table_names(op.get_bind(), registry.schemas)
    dropped = [f.table for f in reversed(_baseline_tables(registry, plugin_name)) if offline or f.table.name in existing]
    for table in dropped:
        op.execute(DropTable(table))
    for enum in enum_types(dropped):
        enum.drop(op.get_bind(), checkfirst=not offline)


# -- helpers for the core application's own migrations -----------------------


def _is_plugin_table(name: str | None) -> bool:
    return name is not None and (name.startswith("alembic_version_") or name in default_registry().owners)


def core_include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """``include_name`` for the core app's env.py: skip every plugin table and plugin version table."""
    return not (type_ == "table" and _is_plugin_table(name))


def core_include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """``include_object`` for the core app's env.py (Alembic or Flask-Migrate): core tables only."""
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return not _is_plugin_table(table)
