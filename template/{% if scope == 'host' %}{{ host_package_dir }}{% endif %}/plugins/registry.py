"""The owner registry: which plugin owns which tables, and which plugins come first.

``registry.json`` beside this module is the single source of truth. Copier
writes each plugin's entry when the plugin is scaffolded or updated
(``copier copy`` / ``copier update`` of the plugin scope); people review it in
diffs. Ownership is decided by this file alone, never by which modules happen
to be imported.
"""

from __future__ import annotations

import graphlib
import importlib
import json
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy import MetaData

from .settings import MODEL_BASE, PLUGINS_DIR

REGISTRY_PATH = Path(__file__).with_name("registry.json")

# The repository root: the folder that holds the host package (and, with it,
# PLUGINS_DIR). A module at ROOT/shopapp/plugins/registry.py is named
# "shopapp.plugins.registry": one parent per dot.
PROJECT_ROOT = Path(__file__).resolve().parents[__name__.count(".")]

PLUGINS_PACKAGE = PLUGINS_DIR.replace("/", ".")


class PluginMigrationError(Exception):
    """A failure the user can act on; the message names what failed and the fix."""


class RegistryError(PluginMigrationError):
    """registry.json is unreadable, malformed, or inconsistent."""


class LockTimeout(PluginMigrationError):
    """Another migrator kept the database locked for longer than the lock timeout."""


def error_summary(error: BaseException) -> str:
    """The first line of an error, preferring the database driver's own message."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@dataclass(frozen=True)
class PluginEntry:
    """One plugin as registered: the tables it owns and the plugins it needs first."""

    name: str
    tables: tuple[str, ...]
    depends_on: tuple[str, ...]

    @property
    def folder(self) -> Path:
        return PROJECT_ROOT / PLUGINS_DIR / self.name

    @property
    def migrations_dir(self) -> Path:
        return self.folder / "migrations"

    @property
    def alembic_ini(self) -> Path:
        return self.migrations_dir / "alembic.ini"

    @property
    def version_table(self) -> str:
        return version_table(self.name)


def version_table(plugin_name: str) -> str:
    """Name of the table in which Alembic records plugin_name's current revision."""
    return f"alembic_version_{plugin_name}"


def _string_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def load_registry(path: Path = REGISTRY_PATH) -> dict[str, PluginEntry]:
    """Read and validate the registry; raise RegistryError naming the file and entry."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(
            f"{path}: registry not found; run `copier update --trust -a .copier-answers.host.yml` to restore it"
        ) from None
    except json.JSONDecodeError as error:
        raise RegistryError(f"{path}: not valid JSON ({error}); fix the file or restore it from git") from None
    plugins = data.get("plugins") if isinstance(data, dict) else None
    if not isinstance(plugins, dict):
        raise RegistryError(f'{path}: expected an object with a "plugins" object, found {type(plugins).__name__}')
    entries: dict[str, PluginEntry] = {}
    for name, entry in plugins.items():
        if not isinstance(entry, dict):
            raise RegistryError(f'{path}: entry "{name}" must be an object with "tables" and "depends_on"')
        tables, depends_on = entry.get("tables"), entry.get("depends_on", [])
        if not _string_list(tables) or not tables:
            raise RegistryError(f'{path}: entry "{name}": "tables" must be a non-empty list of table names')
        if not _string_list(depends_on):
            raise RegistryError(f'{path}: entry "{name}": "depends_on" must be a list of plugin names')
        entries[name] = PluginEntry(name, tuple(tables), tuple(depends_on))
    return entries


_PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,17}$")
_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def table_owners(entries: dict[str, PluginEntry]) -> dict[str, list[str]]:
    """table name -> the plugins whose entries list it (one, when the registry is sound)."""
    owners: dict[str, list[str]] = {}
    for name, entry in entries.items():
        for table in entry.tables:
            owners.setdefault(table, []).append(name)
    return owners


def validate_registry(entries: dict[str, PluginEntry], path: Path = REGISTRY_PATH) -> None:
    """Refuse a registry the runtime cannot trust, naming the file and the entry; nothing is migrated then.

    Checks names, one owner per table, and that registry and plugin folders
    agree. Tables that the core models also define are checked where the
    models are loaded (``checks.ownership_problems``).
    """
    for name, entry in entries.items():
        if not _PLUGIN_NAME.match(name):
            raise RegistryError(f'{path}: entry "{name}": not a valid plugin name (lowercase identifier, at most 18 characters)')
        for table in entry.tables:
            if not _TABLE_NAME.match(table):
                raise RegistryError(f'{path}: entry "{name}": "{table}" is not a valid table name')
        if not entry.alembic_ini.is_file():
            raise RegistryError(
                f'{path}: entry "{name}" has no scaffolding ({entry.alembic_ini} is missing); restore it with '
                f"`copier recopy --trust --defaults --vcs-ref=:current: -a .copier-answers.plugin-{name}.yml`, or remove the entry"
            )
    for table, names in table_owners(entries).items():
        if len(names) > 1:
            raise RegistryError(f'{path}: table "{table}" is owned by {len(names)} plugins ({", ".join(names)}); keep it in one')
    for folder in plugin_folders():
        if (folder / "migrations" / "alembic.ini").is_file() and folder.name not in entries:
            raise RegistryError(
                f"{path}: {PLUGINS_DIR}/{folder.name} has migrations but no entry; run "
                f"`python -m {__package__} sync-registry` (from the answers files) or remove the folder"
            )


def dependency_order(entries: dict[str, PluginEntry]) -> list[str]:
    """Plugin names, every plugin after the plugins it depends on (ties alphabetical).

    Raises RegistryError for a dependency on an unregistered plugin or a cycle.
    """
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name, entry in entries.items():
        for dependency in entry.depends_on:
            if dependency not in entries:
                raise RegistryError(
                    f'{REGISTRY_PATH}: plugin "{name}" depends on "{dependency}", which is not registered; '
                    f"scaffold it or remove it from depends_on"
                )
        sorter.add(name, *entry.depends_on)
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        cycle = " -> ".join(error.args[1])
        raise RegistryError(f"{REGISTRY_PATH}: dependency cycle between plugins: {cycle}; break it in depends_on") from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order.extend(ready)
        sorter.done(*ready)
    return order


def dependency_closure(entries: dict[str, PluginEntry], name: str) -> set[str]:
    """Every plugin that ``name`` depends on, directly or through other plugins."""
    needed: set[str] = set()
    stack = list(entries[name].depends_on)
    while stack:
        dependency = stack.pop()
        if dependency in entries and dependency not in needed:
            needed.add(dependency)
            stack.extend(entries[dependency].depends_on)
    return needed


def _resolve(dotted: str) -> object:
    """Import "module:attr.attr" and return the attribute."""
    module_name, _, attr_path = dotted.partition(":")
    obj: object = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    return obj


def plugin_models_module(plugin_name: str) -> str:
    return f"{PLUGINS_PACKAGE}.{plugin_name}.models"


@cache
def load_base() -> object:
    """The object named by model_base (a declarative base or Flask-SQLAlchemy db.Model)."""
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.append(str(PROJECT_ROOT))
    try:
        return _resolve(MODEL_BASE)
    except (ImportError, AttributeError) as error:
        raise PluginMigrationError(
            f"cannot import the model base {MODEL_BASE!r} ({error}); "
            f"fix model_base with `copier update --trust -a .copier-answers.host.yml -d model_base=module:attr`"
        ) from error


@cache
def load_metadata() -> MetaData:
    """The application's MetaData, with every registered plugin's models imported.

    Importing registers the plugin's tables on the shared base; which plugin
    owns a table is still decided by registry.json, not by this import.
    """
    metadata = getattr(load_base(), "metadata", None)
    if not isinstance(metadata, MetaData):
        raise PluginMigrationError(f"{MODEL_BASE!r} has no SQLAlchemy .metadata; model_base must name a declarative base")
    for folder in plugin_folders():
        if (folder / "models.py").exists() or (folder / "models").is_dir():
            before = set(metadata.tables)
            importlib.import_module(plugin_models_module(folder.name))
            TABLES_DECLARED_BY.update(dict.fromkeys(set(metadata.tables) - before, folder.name))
    return metadata


#: table name -> the plugin whose models module declared it, as seen while
#: load_metadata() imported them. Used only by checks, never for ownership.
TABLES_DECLARED_BY: dict[str, str] = {}


def plugin_folders() -> list[Path]:
    """Folders under PLUGINS_DIR that hold a plugin package, registered or not."""
    plugins_root = PROJECT_ROOT / PLUGINS_DIR
    if not plugins_root.is_dir():
        return []
    return sorted(path for path in plugins_root.iterdir() if (path / "__init__.py").is_file())
