"""``check``: do registry, plugin folders, models and migrations agree? Every problem with its fix."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

from .chains import Chains
from .compare import differences
from .database import Database
from .metadata import core_conflicts, load_metadata, tables_declared_by_plugins
from .outcomes import Status
from .registry import Problem, Registry
from .upgrade import apply


def registry_problems(registry: Registry) -> list[str]:
    """The registry's own problems (as the start-up refusal words them) and tables the core models also define."""
    return [f"{registry.path}: {problem}" for problem in registry.problems() + core_conflicts(registry)]


def ownership_problems(registry: Registry) -> list[str]:
    """Every way the registry, the plugin folders and the models disagree; empty when sound.

    Each table in the metadata belongs to exactly one owner: one plugin when
    registry.json lists it, otherwise the core application.
    """
    return registry_problems(registry) + model_problems(registry)


def model_problems(registry: Registry) -> list[str]:
    """Registered tables no model defines, and tables a plugin's models define but the registry gives elsewhere."""
    metadata = load_metadata(registry)
    problems = [
        Problem(
            f'plugin "{name}" owns table "{table}", but no model defines it',
            f"declare it in {registry.plugins_dir}/{name}/models.py or remove it from the plugin's tables",
        )
        for name, entry in sorted(registry.entries.items())
        for table in entry.tables
        if table not in metadata.tables
    ]
    for table, plugin in sorted(tables_declared_by_plugins(registry).items()):
        owners = registry.owners.get(table, ())
        if plugin not in owners:
            owner = f"plugin {owners[0]}" if owners else "no plugin"
            problems.append(Problem(
                f'table "{table}" is defined in {registry.plugins_dir}/{plugin}/models.py but registered to {owner}',
                f"add it to {plugin}'s tables with `copier update --trust --defaults "
                f"-a .copier-answers.plugin-{plugin}.yml -d 'tables=[...]'`",
            ))
    return [str(problem) for problem in problems]


def dependency_problems(registry: Registry) -> list[str]:
    """A plugin whose tables have foreign keys into another plugin must depend on it (directly or not)."""
    metadata = load_metadata(registry)
    problems = []
    for name, entry in sorted(registry.entries.items()):
        needed = registry.closure(name)
        for table_name in entry.tables:
            table = metadata.tables.get(table_name)
            for foreign_key in table.foreign_keys if table is not None else ():
                referred = foreign_key.target_fullname.rpartition(".")[0]
                for owner in registry.owners.get(referred, ()):
                    if owner != name and owner not in needed:
                        problems.append(str(Problem(
                            f'table "{table_name}" of plugin "{name}" has a foreign key into "{referred}" of plugin '
                            f'"{owner}", but "{name}" does not depend on "{owner}"',
                            f"add it with `copier update --trust --defaults -a .copier-answers.plugin-{name}.yml "
                            f"-d 'depends_on=[{owner}, ...]'`",
                        )))
    return problems


def chain_problems(chains: Chains, names: Sequence[str]) -> list[str]:
    """A chain that grew past its baseline must have a frozen baseline."""
    problems = []
    for name in names:
        if chains.revision_count(name) > 1 and not chains.registry.entry(name).frozen_baseline.exists():
            baseline = chains.baseline_revision(name)
            problems.append(
                f'plugin "{name}": its chain grew past {baseline} without a frozen baseline, so '
                f"an empty database gets today's tables from the baseline and then the later revisions fail; "
                f"freeze it with `freeze-baseline {name}` against a database at {baseline}"
            )
    return problems


def check(registry: Registry, names: Sequence[str] | None = None) -> list[str]:
    """Every drift between models, registry and migrations (like ``alembic check``); empty when clean.

    Builds every chain in a throwaway SQLite database, then compares each
    plugin's models with what its migrations built.
    """
    unsound = registry_problems(registry)
    problems = unsound + model_problems(registry) + dependency_problems(registry)
    if unsound:
        return problems  # the chains cannot be trusted to load
    names = list(registry.order) if names is None else [registry.entry(name).name for name in names]
    with tempfile.TemporaryDirectory(prefix="plugin-check-") as folder:
        scratch = Chains(registry, Database(f"sqlite:///{folder}/check.db"))
        problems += chain_problems(scratch, names)
        if problems:
            return problems
        try:
            for plugin, outcome in apply(scratch, registry.order, {}).items():
                if outcome.status in (Status.FAILED, Status.SKIPPED):
                    problems.append(f'plugin "{plugin}": its migrations fail on an empty database: {outcome.error}')
            if not problems:
                with scratch.database.connect() as connection:
                    problems.extend(
                        f'plugin "{name}": models differ from its migrations: {difference}; write the revision '
                        f'with `revision {name} -m "..." --autogenerate`'
                        for name in names
                        for difference in differences(connection, registry, name)
                    )
        finally:
            scratch.database.dispose()
    return problems
