"""Where plugins declare themselves: each plugin's plugin.json, and the registry.json index.

``migrations/plugin.json`` is rendered by Copier from the plugin's answers
(name, tables, depends_on), so it follows every ``copier copy`` and
``copier update`` without a task. It lives in one of two places:

- ``PLUGINS_DIR/NAME/migrations/`` for a plugin kept in the app's repository;
- ``PACKAGE/migrations/`` for a plugin shipped as its own distribution, which
  names PACKAGE in the entry point group ``plugin_migrations`` (entry NAME).

``registry.json`` is the index ``sync-registry`` writes from them; it also
carries plugins scaffolded before plugin.json existed. All are read as
possibly hostile: bounded in size and depth, and checked for shape before
anything trusts them.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from .errors import RegistryError

#: File beside a plugin's versions/ folder declaring its tables and dependencies.
DECLARATION = "plugin.json"

#: The entry point group through which installed distributions offer plugins (entry name: the plugin's).
ENTRY_POINT_GROUP = "plugin_migrations"

#: Far above any real registry or declaration; a larger file is refused unread.
_MAX_JSON_BYTES = 4 << 20

_BIND_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class Declared:
    """One plugin as a file declares it; ``folder`` is None where the index cannot say (it lists names only)."""

    tables: tuple[str, ...]
    depends_on: tuple[str, ...]
    folder: Path | None = None
    #: The installed distribution that ships the plugin; None for a plugin in the app's repository.
    distribution: str | None = None
    #: The plugin's import package where its folder does not say it (an installed one).
    package: str | None = None
    #: The PostgreSQL schema holding the plugin's tables and version table; "" for the default one.
    schema: str = ""
    #: The Flask-SQLAlchemy bind key whose database holds the plugin's tables; None for the default database.
    bind: str | None = None


def render_index(index: dict[str, object]) -> str:
    """registry.json's text, as ``sync-registry`` and ``remove`` write it: sorted keys, indented, for reviewable diffs."""
    return json.dumps(index, indent=2, sort_keys=True) + "\n"


def read_index(path: Path) -> dict[str, Declared]:
    """registry.json's entries as (tables, depends_on) by plugin name; none when the file is absent."""
    data = _read_json(path, missing={"plugins": {}})
    plugins = data.get("plugins") if isinstance(data, dict) else None
    if not isinstance(plugins, dict):
        raise RegistryError(f'{path}: expected an object with a "plugins" object, found {type(plugins).__name__}')
    entries: dict[str, Declared] = {}
    for name, entry in plugins.items():
        if not isinstance(entry, dict):
            raise RegistryError(f'{path}: entry "{name}" must be an object with "tables" and "depends_on"')
        where = f'{path}: entry "{name}"'
        entries[name] = Declared(
            *_tables_and_dependencies(entry, where), schema=_schema(entry, where), bind=_bind(entry, where)
        )
    return entries


def read_declarations(plugins_root: Path) -> dict[str, Declared]:
    """What every plugin folder under ``plugins_root`` with a migrations/plugin.json declares, by plugin name."""
    entries: dict[str, Declared] = {}
    for folder in _subfolders(plugins_root):
        path = folder / "migrations" / DECLARATION
        data = _read_json(path, missing=_NOT_A_PLUGIN)
        if data is _NOT_A_PLUGIN:
            continue
        if not isinstance(data, dict):
            raise RegistryError(f'{path}: expected an object with "name", "tables" and "depends_on"')
        if data.get("name") != folder.name:
            raise RegistryError(
                f'{path}: declares plugin "{data.get("name")}", but its folder is {folder.name}; '
                f"a plugin's name is its folder's, so restore the file with "
                f"`copier recopy --defaults --overwrite -a .copier-answers.plugin-{folder.name}.yml`"
            )
        tables, depends_on = _tables_and_dependencies(data, str(path))
        entries[folder.name] = Declared(
            tables, depends_on, folder, schema=_schema(data, str(path)), bind=_bind(data, str(path))
        )
    return entries


def read_installed() -> dict[str, Declared]:
    """What every installed plugin package declares, found through the ``plugin_migrations`` entry points.

    Finding a package's folder imports none of its code (only its parent
    packages, for a dotted name), so a broken plugin cannot stop the others
    from being listed.
    """
    entries: dict[str, Declared] = {}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution = entry_point.dist.name if entry_point.dist else "an unknown distribution"
        where = f'entry point "{entry_point.name} = {entry_point.value}" of {distribution} (group {ENTRY_POINT_GROUP})'
        fix = f"reinstall {distribution} or `pip uninstall {distribution}`"
        if not _DOTTED_NAME.fullmatch(entry_point.value):
            raise RegistryError(f"{where}: the value must be the package that holds migrations/; {fix}")
        if entry_point.name in entries:
            raise RegistryError(f'{where}: plugin "{entry_point.name}" is offered twice; uninstall one of them')
        try:
            spec = importlib.util.find_spec(entry_point.value)
        except (ImportError, ValueError) as error:
            raise RegistryError(f"{where}: cannot find the package ({error}); {fix}") from None
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            raise RegistryError(f"{where}: {entry_point.value} is not an installed package; {fix}")
        folder = Path(locations[0])
        path = folder / "migrations" / DECLARATION
        data = _read_json(path)
        if not isinstance(data, dict) or data.get("name") != entry_point.name:
            raise RegistryError(f'{path}: does not declare plugin "{entry_point.name}", as {where} says; {fix}')
        tables, depends_on = _tables_and_dependencies(data, str(path))
        entries[entry_point.name] = Declared(
            tables, depends_on, folder, distribution, entry_point.value, _schema(data, str(path)), _bind(data, str(path))
        )
    return entries


def _subfolders(root: Path) -> list[Path]:
    """The folders in ``root``, sorted; none when it is missing.

    os.scandir, not ``glob("*/migrations/plugin.json")``: the glob's path
    objects and its stat of every step cost each run milliseconds at 200 plugins.
    """
    try:
        with os.scandir(root) as found:
            return sorted(root / entry.name for entry in found if entry.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []


#: What ``_read_json`` returns for a folder without a declaration (a folder that holds no plugin).
_NOT_A_PLUGIN = object()


def _read_json(path: Path, missing: object = None) -> object:
    """A JSON file's value, ``missing`` when there is no file; RegistryError, naming it, when unreadable."""
    try:
        with path.open("rb") as file:  # one open for the size and the bytes: hundreds of plugins are read per run
            found = os.fstat(file.fileno())
            if not stat.S_ISREG(found.st_mode):  # a link to /dev/zero would never end
                raise RegistryError(f"{path}: not a regular file; restore it from git")
            if found.st_size > _MAX_JSON_BYTES:
                raise RegistryError(
                    f"{path}: larger than {_MAX_JSON_BYTES >> 20} MiB, so not a registry; restore it from git"
                )
            raw = file.read(found.st_size + 1)  # bounded even if it grows meanwhile
    except (FileNotFoundError, NotADirectoryError):
        if missing is None:
            raise RegistryError(f"{path}: missing") from None
        return missing
    except OSError as error:
        raise RegistryError(f"{path}: cannot be read ({error.strerror or error}); restore it from git") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RegistryError(f"{path}: not valid JSON ({error}); fix the file or restore it from git") from None
    except RecursionError:
        raise RegistryError(f"{path}: nested too deeply to be a registry; restore it from git") from None


def _tables_and_dependencies(entry: dict[str, object], where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    tables, depends_on = entry.get("tables"), entry.get("depends_on", [])
    if not _string_list(tables):
        raise RegistryError(f'{where}: "tables" must be a list of table names (empty for none yet)')
    if not _string_list(depends_on):
        raise RegistryError(f'{where}: "depends_on" must be a list of plugin names')
    return tuple(tables), tuple(depends_on)


def _schema(entry: dict[str, object], where: str) -> str:
    """The optional "schema" (absent in declarations written before it existed); its rules are the registry's."""
    schema = entry.get("schema", "")
    if not isinstance(schema, str):
        raise RegistryError(f'{where}: "schema" must be a schema name, or "" for the default schema')
    return schema


def _bind(entry: dict[str, object], where: str) -> str | None:
    bind = entry.get("bind") or None
    if bind is not None and not (isinstance(bind, str) and _BIND_KEY.fullmatch(bind)):
        raise RegistryError(f'{where}: "bind" must be a bind key (letters, digits and _, not starting with a digit)')
    return bind


def _string_list(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
