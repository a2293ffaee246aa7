"""The application's models: the model base named by ``model_base``, and every plugin's models.

Importing a module only registers tables on the shared metadata; which
plugin owns a table is decided by the registry alone. The imports happen on
first use, never at import of this module, and are done once per process
(Python imports a module once anyway).
"""

from __future__ import annotations

import importlib
import sys
from functools import cache
from weakref import WeakKeyDictionary

from sqlalchemy import MetaData

from .errors import PluginMigrationError, RegistryError
from .naming import apply_naming_convention
from .registry import Problem, Registry, default_registry
from .settings import MODEL_BASE


def _resolve(dotted: str) -> object:
    """Import "module:attr.attr" and return the attribute."""
    module_name, _, attr_path = dotted.partition(":")
    obj: object = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    return obj


def load_base(registry: Registry) -> object:
    """The object named by model_base (a declarative base or Flask-SQLAlchemy db.Model)."""
    if str(registry.root) not in sys.path:
        sys.path.append(str(registry.root))
    return _load_base()


@cache
def _load_base() -> object:
    try:
        return _resolve(MODEL_BASE)
    except (ImportError, AttributeError) as error:
        raise PluginMigrationError(
            f"cannot import the model base {MODEL_BASE!r} ({error}); "
            f"fix model_base with `copier update -a .copier-answers.host.yml -d model_base=module:attr`"
        ) from error


def plugins_package(registry: Registry) -> str:
    """The import name of the plugins folder ("plugins", or "src.plugins" for src/plugins)."""
    return registry.plugins_dir.replace("/", ".")


# Per registry (a command's): Alembic asks for the metadata once or twice per plugin, and each answer
# cost a scan of every plugin folder and a walk over every plugin table, which at 200 plugins was a
# third of a fresh install. Weak keys: a long-running app's registries come and go.
_LOADED: WeakKeyDictionary[Registry, dict[str | None, tuple[MetaData, int]]] = WeakKeyDictionary()
_MODELS_MODULES: WeakKeyDictionary[Registry, dict[str, str]] = WeakKeyDictionary()


def load_metadata(registry: Registry | None = None, bind: str | None = None) -> MetaData:
    """The application's MetaData of ``bind`` (None: the default database's), with every plugin's models imported.

    Every constraint of a plugin table has a name from then on (``naming``).
    Asked again for the same registry, it is returned as it is unless a
    table was added to it since (models imported later are named too).
    """
    registry = registry or default_registry()
    loaded = _LOADED.setdefault(registry, {})
    if bind in loaded and len(loaded[bind][0].tables) == loaded[bind][1]:
        return loaded[bind][0]
    metadatas = bind_metadatas(registry)
    metadata = metadatas.get(bind, metadatas[None])
    keys = [registry.key(name) for name in registry.owners]
    apply_naming_convention(metadata, [metadata.tables[key] for key in keys if key in metadata.tables])
    loaded[bind] = (metadata, len(metadata.tables))
    return metadata


def bind_metadatas(registry: Registry) -> dict[str | None, MetaData]:
    """bind key -> its MetaData, with every plugin's models imported.

    Flask-SQLAlchemy 3 keeps one MetaData per bind key (``db.metadatas``,
    found through ``db.Model.__fsa__``); any other base has only its own,
    under None, which then serves every bind too.
    """
    _declared_on_import(registry)
    metadatas: dict[str | None, MetaData] = {None: _base_metadata(registry)}
    extension_metadatas = getattr(getattr(load_base(registry), "__fsa__", None), "metadatas", None)
    if isinstance(extension_metadatas, dict):
        metadatas.update((key, value) for key, value in extension_metadatas.items() if isinstance(value, MetaData))
    return metadatas


def _base_metadata(registry: Registry) -> MetaData:
    metadata = getattr(load_base(registry), "metadata", None)
    if not isinstance(metadata, MetaData):
        raise PluginMigrationError(f"{MODEL_BASE!r} has no SQLAlchemy .metadata; model_base must name a declarative base")
    return metadata


def _declared_on_import(registry: Registry) -> dict[str, str]:
    return _import_plugin_models(_base_metadata(registry), tuple(_models_modules(registry).items()))


def _models_modules(registry: Registry) -> dict[str, str]:
    """plugin name -> its models module, for every plugin that has one: registered, or a folder under PLUGINS_DIR.

    An installed plugin's models are imported by their own name (``shop_network.models``),
    the name the app itself imports them by, so no table is ever defined twice.
    """
    if registry in _MODELS_MODULES:
        return _MODELS_MODULES[registry]
    modules = {
        folder.name: f"{plugins_package(registry)}.{folder.name}.models"
        for folder in registry.plugin_folders()
        if (folder / "models.py").exists() or (folder / "models").is_dir()
    }
    for name, entry in registry.entries.items():
        if entry.distribution and ((entry.folder / "models.py").exists() or (entry.folder / "models").is_dir()):
            modules[name] = entry.models_module
    _MODELS_MODULES[registry] = modules
    return modules


def plugin_of_module(registry: Registry, module_name: str) -> str | None:
    """The plugin whose package holds ``module_name``, or None for a module of the core app.

    Looked up by the module's own dotted prefixes, longest first, so the cost
    is the module's depth, not the number of plugins: ``check`` asks this for
    every mapped class.
    """
    parts = module_name.split(".")
    for depth in range(len(parts), 0, -1):
        owner = registry.package_owners.get(".".join(parts[:depth]))
        if owner is not None:
            return owner
    prefix = plugins_package(registry) + "."
    if module_name.startswith(prefix):
        return module_name[len(prefix):].split(".")[0]
    return None


# Keyed by what is imported, not by the Registry value: a module is imported
# once per process, so only the first import can see which tables it added.
@cache
def _import_plugin_models(metadata: MetaData, modules: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Import each plugin's models; table -> plugin for the tables each import added."""
    declared: dict[str, str] = {}
    for plugin, module in modules:
        before = set(metadata.tables)
        importlib.import_module(module)
        declared.update(dict.fromkeys((metadata.tables[key].name for key in set(metadata.tables) - before), plugin))
    return declared


def tables_declared_by_plugins(registry: Registry) -> dict[str, str]:
    """table name (unqualified, as the registry lists it) -> the plugin whose models module declares it.

    Mapped classes count by their class's module; plain ``Table`` objects by
    the import of each plugin's models that added them.
    """
    declared = dict(_declared_on_import(registry))
    for mapper in getattr(getattr(load_base(registry), "registry", None), "mappers", ()):
        plugin = plugin_of_module(registry, mapper.class_.__module__)
        if plugin is not None:
            for table in mapper.tables:
                declared[table.name] = plugin
    return declared


def core_conflicts(registry: Registry) -> list[Problem]:
    """Tables registered to a plugin but defined by a model outside every plugin (the core's).

    Only the module of model_base is imported, not the plugins' models: every
    command runs this check first, and with hundreds of plugins their imports
    would cost more than a whole upgrade with nothing to do. A model in an
    installed plugin package is the plugin's, never the core's.
    """
    conflicts = []
    for mapper in getattr(getattr(load_base(registry), "registry", None), "mappers", ()):
        module = mapper.class_.__module__
        if plugin_of_module(registry, module) is not None:
            continue
        for table in mapper.tables:
            for owner in registry.owners.get(table.name, ()):
                conflicts.append(Problem(
                    f'table "{table.name}" is owned twice: registered to plugin "{owner}" and defined by the core '
                    f"models ({module})",
                    f"move the model into the plugin's models module ({registry.entry(owner).models_module}), "
                    f"or remove the table from the plugin's tables",
                ))
    return conflicts


def refuse_core_conflicts(registry: Registry) -> None:
    """Raise the first ``core_conflicts`` problem, before a command changes a database.

    Only what could create, adopt or drop a plugin's tables calls it (a step
    with work, a stamp, a downgrade, a removal, a revision): it imports the
    core's models, which ``status`` and a deploy with nothing to do never
    need (bench/README.md), and ``check`` reports the same problem.
    """
    for conflict in core_conflicts(registry) if registry.entries else ():
        raise RegistryError(f"{registry.path}: {conflict}")
