"""The owner registry: which plugin owns which tables, and which plugins come first.

Each plugin declares its entry in ``PLUGINS_DIR/NAME/migrations/plugin.json``,
a file Copier renders from the plugin's answers on every copy and update, so
no Copier task (and no ``--trust``) is needed to keep it. ``registry.json``
beside this module is the index of those declarations that
``sync-registry`` writes: Copier's validators read it to refuse a table that
another plugin owns before anything is written, and it still holds the entries
of plugins scaffolded before plugin.json existed. A declaration wins over the
index. Ownership is decided by these files alone, never by which modules
happen to be imported.

``Registry.load()`` reads them once into a frozen value that every command
passes around; owners, dependency order and plugin folders derive from it.
A little over 300 lines on purpose: the value and the rules that judge it
(``problems()``, each worded once) belong together.
"""

from __future__ import annotations

import graphlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from types import MappingProxyType

from .declarations import read_declarations, read_index, read_installed
from .errors import PluginMigrationError, RegistryError
from .schemas import SCHEMA_RULE, is_schema_name
from .settings import PLUGINS_DIR

REGISTRY_PATH = Path(__file__).with_name("registry.json")

# The repository root: the folder that holds the host package (and, with it,
# PLUGINS_DIR). A module at ROOT/shopapp/plugins/registry.py is named
# "shopapp.plugins.registry": one parent per dot.
PROJECT_ROOT = Path(__file__).resolve().parents[__name__.count(".")]

#: File beside a plugin's versions/ folder holding its frozen baseline.
FROZEN_BASELINE = "baseline_schema.py"


_PLUGIN_NAME = re.compile(r"[a-z][a-z0-9_]{0,17}")
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_RUNTIME = __package__ or "plugins"


def is_plugin_name(name: object) -> bool:
    """Whether ``name`` can name a plugin: its folder, its revision ids, its version table."""
    return isinstance(name, str) and _PLUGIN_NAME.fullmatch(name) is not None


def version_table(plugin_name: str) -> str:
    """Name of the table in which Alembic records plugin_name's current revision."""
    return f"alembic_version_{plugin_name}"


@dataclass(frozen=True)
class PluginEntry:
    """One plugin as registered: the tables it owns, the plugins it needs first, and its folder."""

    name: str
    tables: tuple[str, ...]
    depends_on: tuple[str, ...]
    folder: Path
    #: The import package holding the plugin's migrations/ and models ("" when unknown).
    package: str = ""
    #: The installed distribution that ships the plugin, or None for one in the app's repository.
    distribution: str | None = None
    #: The PostgreSQL schema of the plugin's tables and version table; "" for the default one.
    schema: str = ""
    #: The Flask-SQLAlchemy bind key of the database holding its tables; None for the default database.
    bind: str | None = None

    @property
    def models_module(self) -> str:
        return f"{self.package}.models"

    @property
    def migrations_dir(self) -> Path:
        return self.folder / "migrations"

    @property
    def alembic_ini(self) -> Path:
        return self.migrations_dir / "alembic.ini"

    @property
    def frozen_baseline(self) -> Path:
        """Where the plugin's frozen baseline lives (it may not exist)."""
        return self.migrations_dir / FROZEN_BASELINE

    @property
    def version_table(self) -> str:
        return version_table(self.name)

    def key(self, table: str) -> str:
        """``table``'s key in the models' MetaData: schema-qualified for a plugin with a schema."""
        return f"{self.schema}.{table}" if self.schema else table


@dataclass(frozen=True)
class Problem:
    """One way the registry, the plugin folders or the models disagree, and its one fix."""

    text: str
    fix: str

    def __str__(self) -> str:
        return f"{self.text}; {self.fix}"


@dataclass(frozen=True, eq=False)
class Registry:
    """registry.json as read once: every plugin entry, and what derives from them.

    ``eq=False``: two loads are two values, hashed by identity, so caches
    keyed on a Registry never mix two versions of the file.
    """

    path: Path
    root: Path
    plugins_dir: str
    entries: Mapping[str, PluginEntry]

    @classmethod
    def load(cls, path: Path = REGISTRY_PATH, root: Path = PROJECT_ROOT, plugins_dir: str = PLUGINS_DIR) -> Registry:
        """Read the index and every declaration; raise RegistryError, naming the file, for one that is not valid."""
        in_folders = read_declarations(root / plugins_dir)
        in_repository = {**read_index(path), **in_folders}
        installed = read_installed()
        for name in sorted(set(installed) & set(in_folders)):
            raise RegistryError(
                f'plugin "{name}" is both the folder {plugins_dir}/{name} and the installed package '
                f"{installed[name].package} ({installed[name].distribution}); keep one: remove the folder, "
                f"or `pip uninstall {installed[name].distribution}`"
            )
        packages = plugins_dir.replace("/", ".")
        entries = {
            name: PluginEntry(
                name, plugin.tables, plugin.depends_on, plugin.folder or root / plugins_dir / name,
                plugin.package or f"{packages}.{name}", plugin.distribution, plugin.schema, plugin.bind,
            )
            for name, plugin in sorted({**in_repository, **installed}.items())
        }
        return cls(path, root, plugins_dir, MappingProxyType(entries))

    # -- what derives from the entries -------------------------------------

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def entry(self, name: str) -> PluginEntry:
        """The registered plugin ``name``, or an error listing the registered ones."""
        try:
            return self.entries[name]
        except KeyError:
            known = ", ".join(self.order) or "none"
            raise PluginMigrationError(f'unknown plugin "{name}" (registered: {known})') from None

    @cached_property
    def schemas(self) -> tuple[str, ...]:
        """Every plugin schema, sorted: what SQLite maps away, and where version tables are looked for."""
        return tuple(sorted({entry.schema for entry in self.entries.values()} - {""}))

    def key(self, table: str) -> str:
        """``table``'s key in the models' MetaData: qualified by its owner's schema, if any."""
        owners = self.owners.get(table, ())
        return self.entries[owners[0]].key(table) if owners else table

    @cached_property
    def owners(self) -> Mapping[str, tuple[str, ...]]:
        """table name -> the plugins whose entries list it (one, when the registry is sound)."""
        owners: dict[str, list[str]] = {}
        for name, entry in self.entries.items():
            for table in entry.tables:
                owners.setdefault(table, []).append(name)
        return MappingProxyType({table: tuple(names) for table, names in owners.items()})

    @cached_property
    def package_owners(self) -> Mapping[str, str]:
        """import package -> the plugin it holds, for every entry that knows its package."""
        return MappingProxyType({entry.package: name for name, entry in self.entries.items() if entry.package})

    @cached_property
    def table_owners(self) -> Mapping[str, tuple[str, ...]]:
        """plugin name -> the tables it owns: ``PLUGIN_TABLE_OWNERS``."""
        return MappingProxyType({name: entry.tables for name, entry in self.entries.items()})

    def owner_of(self, table: str) -> str | None:
        """The plugin that owns ``table``, or None for a core table."""
        return next(iter(self.owners.get(table, ())), None)

    @cached_property
    def order(self) -> tuple[str, ...]:
        """Plugin names, every plugin after the plugins it depends on (ties alphabetical).

        Raises RegistryError for a dependency on an unregistered plugin or a cycle.
        """
        for problem in self._dependency_problems():
            raise RegistryError(f"{self.path}: {problem}")
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for name, entry in self.entries.items():
            sorter.add(name, *entry.depends_on)
        sorter.prepare()
        order: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready())
            order.extend(ready)
            sorter.done(*ready)
        return tuple(order)

    def closure(self, name: str) -> set[str]:
        """Every plugin that ``name`` depends on, directly or through other plugins."""
        needed: set[str] = set()
        stack = list(self.entry(name).depends_on)
        while stack:
            dependency = stack.pop()
            if dependency in self.entries and dependency not in needed:
                needed.add(dependency)
                stack.extend(self.entries[dependency].depends_on)
        return needed

    def dependencies(self, name: str) -> list[str]:
        """Every plugin that ``name`` needs first, directly or not, in dependency order."""
        needed = self.closure(name)
        return [other for other in self.order if other in needed]

    def plugin_folders(self, unregistered_only: bool = False) -> list[Path]:
        """Folders under PLUGINS_DIR that hold a plugin package, registered or not (or only those not registered)."""
        plugins_root = self.root / self.plugins_dir
        try:
            with os.scandir(plugins_root) as found:
                names = [entry.name for entry in found if not (unregistered_only and entry.name in self.entries)]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(plugins_root / name for name in names if (plugins_root / name / "__init__.py").is_file())

    # -- soundness ---------------------------------------------------------

    def problems(self) -> list[Problem]:
        """Every way the registry disagrees with itself or with the plugin folders; empty when sound.

        The start-up refusal (``require_sound``) and ``check`` both read this
        list, so a problem has one wording and one fix wherever it shows.
        Problems that need the models live in ``checks``.
        """
        problems: list[Problem] = []
        for name, entry in self.entries.items():
            if not is_plugin_name(name):
                problems.append(Problem(
                    f'entry "{name}": not a valid plugin name (lowercase identifier, at most 18 characters)',
                    "rename the plugin or remove the entry",
                ))
            if entry.schema and not is_schema_name(entry.schema):
                problems.append(Problem(
                    f'entry "{name}": "{entry.schema}" is not a valid schema ({SCHEMA_RULE})',
                    f"choose another with `copier update --defaults -a .copier-answers.plugin-{name}.yml -d schema=...`",
                ))
            if self._is_runtime_module(name):
                problems.append(Problem(
                    f'entry "{name}": the plugin folder {self.plugins_dir}/{name} is this runtime\'s {name}.py module',
                    "rename the plugin, or keep plugins outside the runtime's folder",
                ))
            problems.extend(
                Problem(f'entry "{name}": "{table}" is not a valid table name', "fix the table name in the plugin's tables")
                for table in entry.tables
                if not _TABLE_NAME.fullmatch(table)
            )
            problems.extend(
                Problem(
                    f'entry "{name}": "{table}" is named like an Alembic version table',
                    "rename the table: names starting with alembic_version are Alembic's",
                )
                for table in entry.tables
                if table.startswith("alembic_version")
            )
            if not entry.alembic_ini.is_file():
                problems.append(Problem(
                    f'entry "{name}" has no scaffolding ({entry.alembic_ini} is missing)',
                    f"restore it with `copier recopy --defaults --vcs-ref=:current: "
                    f"-a .copier-answers.plugin-{name}.yml`, or remove the entry",
                ))
        problems.extend(
            Problem(f'table "{table}" is owned by {len(names)} plugins ({", ".join(names)})', "keep it in one plugin's tables")
            for table, names in self.owners.items()
            if len(names) > 1
        )
        problems.extend(
            Problem(
                f"{self.plugins_dir}/{folder.name} has migrations but no entry",
                f"`copier update --defaults -a .copier-answers.plugin-{folder.name}.yml` (writes its plugin.json), "
                f"`python -m {_RUNTIME} sync-registry` (from its answers file), or remove the folder",
            )
            for folder in self.plugin_folders(unregistered_only=True)
            if (folder / "migrations" / "alembic.ini").is_file()
        )
        return problems + self._dependency_problems()

    def _is_runtime_module(self, name: str) -> bool:
        return self._plugins_dir_is_runtime and (Path(__file__).parent / f"{name}.py").exists()

    @cached_property
    def _plugins_dir_is_runtime(self) -> bool:
        # Once per registry: resolving both paths for each of hundreds of plugins cost a no-op deploy 30 ms.
        return (self.root / self.plugins_dir).resolve() == Path(__file__).resolve().parent

    def _dependency_problems(self) -> list[Problem]:
        problems = [
            Problem(
                f'plugin "{name}" depends on "{dependency}", which is not registered',
                "scaffold it or remove it from depends_on",
            )
            for name, entry in self.entries.items()
            for dependency in entry.depends_on
            if dependency not in self.entries
        ]
        if problems:
            return problems
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter(
            {name: entry.depends_on for name, entry in self.entries.items()}
        )
        try:
            sorter.prepare()
        except graphlib.CycleError as error:
            cycle = " -> ".join(error.args[1])
            return [Problem(f"dependency cycle between plugins: {cycle}", "break it in depends_on")]
        return []

    def require_sound(self) -> Registry:
        """This registry, or a RegistryError naming the file and its first problem; nothing is migrated then."""
        for problem in self.problems():
            raise RegistryError(f"{self.path}: {problem}")
        return self


@cache
def default_registry() -> Registry:
    """The registry, read once on first use by code that no command hands a registry to.

    Plain ``alembic -c .../alembic.ini``, the core app's env.py filters and
    ``PLUGIN_TABLE_OWNERS`` use it; the plugin commands read the file once
    themselves and pass that value along.
    """
    return Registry.load()
