"""Consistency checks between registry.json, the plugin folders and the models."""

from __future__ import annotations

from .registry import (
    PLUGINS_DIR,
    PLUGINS_PACKAGE,
    TABLES_DECLARED_BY,
    dependency_closure,
    load_base,
    load_metadata,
    load_registry,
    plugin_folders,
    table_owners,
)


def tables_declared_by_plugins() -> dict[str, str]:
    """table name -> the plugin whose models module declares it.

    Mapped classes are attributed by their module; plain Table objects by the
    import of each plugin's models in load_metadata().
    """
    load_metadata()
    declared = dict(TABLES_DECLARED_BY)
    prefix, depth = PLUGINS_PACKAGE + ".", PLUGINS_PACKAGE.count(".") + 1
    registry = getattr(load_base(), "registry", None)
    for mapper in getattr(registry, "mappers", ()):
        module = mapper.class_.__module__
        if module.startswith(prefix):
            for table in mapper.tables:
                declared[table.name] = module.split(".")[depth]
    return declared


def core_conflicts() -> list[str]:
    """Tables registered to a plugin but defined by a model outside every plugin (the core's).

    Only the module of model_base is imported, not the plugins' models: every
    command runs this check first, and with hundreds of plugins their imports
    would cost more than a whole upgrade with nothing to do.
    """
    registry = load_registry()
    prefix = PLUGINS_PACKAGE + "."
    owners = table_owners(registry)
    conflicts = []
    for mapper in getattr(getattr(load_base(), "registry", None), "mappers", ()):
        module = mapper.class_.__module__
        if module.startswith(prefix):
            continue
        for table in mapper.tables:
            for owner in owners.get(table.name, []):
                conflicts.append(
                    f'table "{table.name}" is owned twice: registered to plugin "{owner}" and defined by the core '
                    f"models ({module}); move the model into {PLUGINS_DIR}/{owner}/models.py, or remove the table "
                    f"from the plugin's tables"
                )
    return conflicts


def dependency_problems() -> list[str]:
    """A plugin whose tables have foreign keys into another plugin must depend on it (directly or not)."""
    registry = load_registry()
    metadata = load_metadata()
    owners = table_owners(registry)
    problems = []
    for name, entry in sorted(registry.items()):
        needed = dependency_closure(registry, name)
        for table_name in entry.tables:
            table = metadata.tables.get(table_name)
            for foreign_key in table.foreign_keys if table is not None else ():
                referred = foreign_key.target_fullname.rpartition(".")[0]
                for owner in owners.get(referred, []):
                    if owner != name and owner not in needed:
                        problems.append(
                            f'table "{table_name}" of plugin "{name}" has a foreign key into "{referred}" of plugin '
                            f'"{owner}", but "{name}" does not depend on "{owner}"; add it with '
                            f"`copier update --trust --defaults -a .copier-answers.plugin-{name}.yml -d 'depends_on=[{owner}, ...]'`"
                        )
    return problems


def ownership_problems() -> list[str]:
    """Every way the registry, the plugin folders and the models disagree; empty when sound.

    Each table in the metadata belongs to exactly one owner: one plugin when
    registry.json lists it, otherwise the core application.
    """
    registry = load_registry()
    metadata = load_metadata()
    owners = table_owners(registry)

    problems = core_conflicts()
    for table, names in sorted(owners.items()):
        if len(names) > 1:
            problems.append(f'table "{table}" is owned by {len(names)} plugins ({", ".join(names)}); keep it in one plugin\'s tables')
    for name, entry in sorted(registry.items()):
        if not entry.alembic_ini.is_file():
            problems.append(f'plugin "{name}" is registered but has no {entry.alembic_ini}; scaffold it with copier copy')
        for table in entry.tables:
            if table not in metadata.tables:
                problems.append(
                    f'plugin "{name}" owns table "{table}", but no model defines it; '
                    f"declare it in {PLUGINS_DIR}/{name}/models.py or remove it from the plugin's tables"
                )
    for table, plugin in sorted(tables_declared_by_plugins().items()):
        if plugin not in owners.get(table, []):
            owner = f"plugin {owners[table][0]}" if table in owners else "no plugin"
            problems.append(
                f'table "{table}" is defined in {PLUGINS_DIR}/{plugin}/models.py but registered to {owner}; '
                f"add it to {plugin}'s tables with `copier update --trust --defaults -a .copier-answers.plugin-{plugin}.yml -d 'tables=[...]'`"
            )
    for folder in plugin_folders():
        if (folder / "migrations" / "alembic.ini").is_file() and folder.name not in registry:
            problems.append(
                f"{PLUGINS_DIR}/{folder.name} has migrations but no entry in registry.json; "
                f"run `copier update --trust -a .copier-answers.plugin-{folder.name}.yml`"
            )
    return problems
