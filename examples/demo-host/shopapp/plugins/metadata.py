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

from sqlalchemy import MetaData

from .errors import PluginMigrationError
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
            f"fix model_base with `copier update --trust -a .copier-answers.host.yml -d model_base=module:attr`"
        ) from error


def plugins_package(registry: Registry) -> str:
    """The import name of the plugins folder ("plugins", or "src.plugins" for src/plugins)."""
    return registry.plugins_dir.replace("/", ".")


def load_metadata(registry: Registry | None = None) -> MetaData:
    """The application's MetaData, with the models of every plugin folder imported (core and plugin tables).

    Every constraint of a plugin table has a name from then on (``naming``).
    """
    registry = registry or default_registry()
    _declared_on_import(registry)
    metadata = _base_metadata(registry)
    apply_naming_convention(metadata, [metadata.tables[name] for name in registry.owners if name in metadata.tables])
    return metadata


def _base_metadata(registry: Registry) -> MetaData:
    metadata = getattr(load_base(registry), "metadata", None)
    if not isinstance(metadata, MetaData):
        raise PluginMigrationError(f"{MODEL_BASE!r} has no SQLAlchemy .metadata; model_base must name a declarative base")
    return metadata


def _declared_on_import(registry: Registry) -> dict[str, str]:
    with_models = tuple(
        folder.name for folder in registry.plugin_folders()
        if (folder / "models.py").exists() or (folder / "models").is_dir()
    )
    return _import_plugin_models(_base_metadata(registry), plugins_package(registry), with_models)


# Keyed by what is imported, not by the Registry value: a module is imported
# once per process, so only the first import can see which tables it added.
@cache
def _import_plugin_models(metadata: MetaData, package: str, plugins: tuple[str, ...]) -> dict[str, str]:
    """Import each plugin's models; table -> plugin for the tables each import added."""
    declared: dict[str, str] = {}
    for plugin in plugins:
        before = set(metadata.tables)
        importlib.import_module(f"{package}.{plugin}.models")
        declared.update(dict.fromkeys(set(metadata.tables) - before, plugin))
    return declared


def tables_declared_by_plugins(registry: Registry) -> dict[str, str]:
    """table name -> the plugin whose models module declares it.

    Mapped classes count by their class's module; plain ``Table`` objects by
    the import of each plugin's models that added them.
    """
    declared = dict(_declared_on_import(registry))
    package = plugins_package(registry)
    prefix, depth = package + ".", package.count(".") + 1
    for mapper in getattr(getattr(load_base(registry), "registry", None), "mappers", ()):
        module_name = mapper.class_.__module__
        if module_name.startswith(prefix):
            for table in mapper.tables:
                declared[table.name] = module_name.split(".")[depth]
    return declared


def core_conflicts(registry: Registry) -> list[Problem]:
    """Tables registered to a plugin but defined by a model outside every plugin (the core's).

    Only the module of model_base is imported, not the plugins' models: every
    command runs this check first, and with hundreds of plugins their imports
    would cost more than a whole upgrade with nothing to do.
    """
    prefix = plugins_package(registry) + "."
    conflicts = []
    for mapper in getattr(getattr(load_base(registry), "registry", None), "mappers", ()):
        module = mapper.class_.__module__
        if module.startswith(prefix):
            continue
        for table in mapper.tables:
            for owner in registry.owners.get(table.name, ()):
                conflicts.append(Problem(
                    f'table "{table.name}" is owned twice: registered to plugin "{owner}" and defined by the core '
                    f"models ({module})",
                    f"move the model into {registry.plugins_dir}/{owner}/models.py, or remove the table "
                    f"from the plugin's tables",
                ))
    return conflicts
