"""``check``: do registry, plugin folders, models and migrations agree? Every problem with its fix."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence

from sqlalchemy import inspect, make_url

from .chains import Chains
from .compare import differences
from .database import Database, bind_url
from .errors import PluginMigrationError
from .metadata import bind_metadatas, core_conflicts, load_metadata, tables_declared_by_plugins
from .registry import Problem, Registry
from .replay import scratch
from .squash import squash_problems
from .versions import read_state


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
    problems = [
        Problem(
            f'plugin "{name}" owns table "{table}", but no model defines it'
            + (f' in bind "{entry.bind}"' if entry.bind else ""),
            f"declare it in {registry.plugins_dir}/{name}/models.py"
            + (f' with __bind_key__ = "{entry.bind}"' if entry.bind else "")
            + " or remove it from the plugin's tables",
        )
        for name, entry in sorted(registry.entries.items())
        for table in entry.tables
        if entry.key(table) not in load_metadata(registry, entry.bind).tables
    ]
    for table, plugin in sorted(tables_declared_by_plugins(registry).items()):
        owners = registry.owners.get(table, ())
        if plugin not in owners:
            owner = f"plugin {owners[0]}" if owners else "no plugin"
            problems.append(Problem(
                f'table "{table}" is defined in {registry.plugins_dir}/{plugin}/models.py but registered to {owner}',
                f"add it to {plugin}'s tables with `copier update --defaults "
                f"-a .copier-answers.plugin-{plugin}.yml -d 'tables=[...]'`",
            ))
    return [str(problem) for problem in problems]


def dependency_problems(registry: Registry) -> list[str]:
    """A plugin whose tables have foreign keys into another plugin must depend on it (directly or not)."""
    problems = cross_database_problems(registry)
    for name, entry in sorted(registry.entries.items()):
        needed = registry.closure(name)
        for table_name in entry.tables:
            table = load_metadata(registry, entry.bind).tables.get(entry.key(table_name))
            for foreign_key in table.foreign_keys if table is not None else ():
                referred = foreign_key.target_fullname.rpartition(".")[0].rpartition(".")[2]  # unqualified
                for owner in registry.owners.get(referred, ()):
                    if owner != name and owner not in needed:
                        problems.append(str(Problem(
                            f'table "{table_name}" of plugin "{name}" has a foreign key into "{referred}" of plugin '
                            f'"{owner}", but "{name}" does not depend on "{owner}"',
                            f"add it with `copier update --defaults -a .copier-answers.plugin-{name}.yml "
                            f"-d 'depends_on=[{owner}, ...]'`",
                        )))
    return problems


def cross_database_problems(registry: Registry) -> list[str]:
    """Every foreign key between tables that live in different databases (a plugin's bind, or the default one).

    ``depends_on`` across databases orders the upgrades, but no database can
    enforce a foreign key into another one.
    """
    metadatas = bind_metadatas(registry)

    def database_of(table: str, seen_in: str | None) -> str | None:
        owners = registry.owners.get(table)
        if owners:
            return registry.entry(owners[0]).bind
        if table in metadatas[seen_in].tables:
            return seen_in
        return next((bind for bind, metadata in metadatas.items() if table in metadata.tables), seen_in)

    def shown(bind: str | None) -> str:
        return f'bind "{bind}"' if bind else "the default database"

    problems = []
    for bind, metadata in metadatas.items():
        for table in sorted(metadata.tables.values(), key=lambda table: table.name):  # sorted_tables would resolve the keys
            here = database_of(table.name, bind)
            for foreign_key in sorted(table.foreign_keys, key=lambda key: key.target_fullname):
                referred = foreign_key.target_fullname.rpartition(".")[0]
                there = database_of(referred, bind)
                if there != here:
                    problems.append(str(Problem(
                        f'table "{table.name}" ({shown(here)}) has a foreign key into "{referred}" ({shown(there)}): '
                        f"a foreign key cannot cross databases",
                        "drop the foreign key (keep the plain column), or keep both tables in one database",
                    )))
    return problems


def chain_problems(chains: Chains, names: Sequence[str]) -> list[str]:
    """A chain that grew past its scaffold baseline must have a frozen baseline (an imported one needs none);
    its revisions may depend only on known revisions of the plugins it depends on."""
    problems = chains.link_problems(names)
    for name in names:
        if (chains.revision_count(name) > 1 and chains.starts_at_scaffold_baseline(name)
                and not chains.registry.entry(name).frozen_baseline.exists()):
            baseline = chains.baseline_revision(name)
            problems.append(
                f'plugin "{name}": its chain grew past {baseline} without a frozen baseline, so '
                f"an empty database gets today's tables from the baseline and then the later revisions fail; "
                f"freeze it with `freeze-baseline {name}` against a database at {baseline}"
            )
    return problems


def check(
    registry: Registry,
    names: Sequence[str] | None = None,
    database_url: str | None = None,
    bind_database: Callable[[str], Database] | None = None,
) -> list[str]:
    """Every drift between models, registry and migrations (like ``alembic check``); empty when clean.

    Replays every chain in the context it runs in (the core tables, then the
    plugins in dependency order) and compares each plugin's models with what
    its migrations built. The replay runs in a throwaway SQLite database, or
    in the database at ``database_url`` when that one holds no table at all;
    it is rolled back there, so the database stays empty. A database with
    tables is a deployed one: it is only read (``deployed_problems``), and
    the replay runs in SQLite. A bound plugin is read in its bind's database
    (``bind_database``; by default ``DATABASE_URL_<BIND>``) when one is known.
    """
    unsound = registry_problems(registry)
    problems = unsound + model_problems(registry) + dependency_problems(registry)
    if unsound:
        return problems  # the chains cannot be trusted to load
    names = list(registry.order) if names is None else [registry.entry(name).name for name in names]
    deployed = Database(database_url, schemas=registry.schemas) if database_url else None
    if deployed is not None:
        with deployed.read_only() as connection:
            empty = not inspect(connection).get_table_names()
        if empty:
            return problems + replay_problems(registry, names, deployed.url, problems)
    with tempfile.TemporaryDirectory(prefix="plugin-check-") as folder:
        problems += replay_problems(registry, names, f"sqlite:///{folder}/check.db", problems)
    if deployed is not None:
        for database, held in _deployed_databases(registry, names, deployed, bind_database):
            problems += deployed_problems(registry, held, database)
    return problems


def _deployed_databases(
    registry: Registry, names: Sequence[str], deployed: Database, bind_database: Callable[[str], Database] | None
) -> list[tuple[Database, list[str]]]:
    """``names`` by the deployed database holding them: ``deployed`` for the default one, then each bind's."""
    held = [(deployed, [name for name in names if not registry.entry(name).bind])]
    for bind in sorted({bind for name in names if (bind := registry.entry(name).bind)}):
        try:
            database = bind_database(bind) if bind_database else Database(bind_url(bind), schemas=registry.schemas)
        except PluginMigrationError:
            continue  # no database known for the bind here: its chains are checked in the replay only
        held.append((database, [name for name in names if registry.entry(name).bind == bind]))
    return held


def replay_problems(registry: Registry, names: Sequence[str], url: str, found: Sequence[str] = ()) -> list[str]:
    """Chains that grew unfrozen; then, unless anything was ``found`` so far, every chain replayed at ``url``.

    The replay makes the core tables, upgrades every plugin in dependency
    order, and compares each of ``names`` with its models; it is rolled back.
    Before that, each squash of ``names`` is compared with its chain at its revision.
    """
    problems = chain_problems(Chains(registry, Database(url, schemas=registry.schemas)), names)
    if problems or found:
        return problems
    problems = squash_problems(registry, names, url)  # a wrong squash would show below as models that differ
    if problems:
        return problems
    with scratch(registry, url) as replay:
        replay.create_core_tables()
        for plugin, outcome in replay.upgrade_all(registry.order).items():
            if not outcome.succeeded:
                problems.append(f'plugin "{plugin}": its migrations fail on an empty database: {outcome.error}')
        if not problems:
            problems.extend(
                f'plugin "{name}": models differ from its migrations: {difference}; write the revision '
                f'with `revision {name} -m "..." --autogenerate`'
                for name in names
                for difference in differences(replay.connection, registry, name)
            )
    return problems


def deployed_problems(registry: Registry, names: Sequence[str], database: Database) -> list[str]:
    """How a deployed database differs from what its chains say it has; it is only read.

    Each plugin recorded at its head is compared with its models: while a
    chain is only its baseline, models and migrations agree by construction,
    so a model changed without a revision shows only here. A plugin not
    installed, or behind its head, is left to ``upgrade-all``.
    """
    chains = Chains(registry, database)
    shown = make_url(database.url).render_as_string(hide_password=True)
    problems: list[str] = []
    with database.read_only() as connection:
        state = read_state(connection, registry, names)
        for name in names:
            try:
                head = chains.head(name)
            except PluginMigrationError:
                continue  # two heads: the replay reports it
            if head is None or state.recorded[name] != (head,):
                continue
            problems.extend(
                f'plugin "{name}": the database {shown} records {head}, its head, but its tables are not what '
                f"the chain builds: {difference}; if the models changed without a revision, write it with "
                f'`revision {name} -m "..." --autogenerate` against a database at {head} (a copy of this one) and '
                f"migrate; if the database was changed by hand, restore it"
                for difference in differences(connection, registry, name)
            )
    return problems
