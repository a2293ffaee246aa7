"""Running a plan, or printing it: upgrades, adoption and stamps, one transaction per plugin.

``apply`` and ``preview`` consume the same ``plan.make_plan`` steps. The run
is one migration session (``Database.migration_session``): it holds the
migrator lock from start to end, reads every version table in one go, and
opens a transaction only for plugins with something to do; inside it, the
step is decided again (with ``plan.decide``) from what the transaction sees.

Alembic is imported only where a step has work to do: a deploy with nothing
to do never loads it (about 0.2 s of start-up; graphcache and bench/README.md).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from functools import partial

from sqlalchemy.exc import SQLAlchemyError

from .chains import Chains
from .database import MigrationSession
from .errors import LOCK_NOT_AVAILABLE, LockTimeout, PluginMigrationError, describe_user_error, error_summary, sqlstate
from .metadata import refuse_core_conflicts
from .outcomes import Outcome, Status
from .plan import Action, Step, adoption_hint, decide, make_plan, step_revisions
from .versions import DatabaseState, current_revision, read_state


def apply(
    chains: Chains,
    names: Sequence[str],
    targets: Mapping[str, str],
    done: Mapping[str, Outcome] | None = None,
    from_models: bool = False,
) -> dict[str, Outcome]:
    """Upgrade ``names`` (dependencies first) to their targets; a failure skips that plugin's dependents only.

    The whole run is one migration session: it reads every version table
    once the migrator lock is held, and each plugin with work to do gets a
    transaction of its own on the session's connection. A failed plugin
    keeps its schema and version row; plugins that do not depend on it still run.
    ``done`` holds the outcomes of plugins already run in other databases (``binds``).
    ``from_models``: a plugin with nothing installed is built from its models (``from_models``).
    """
    try:
        with chains.database.migration_session() as session:
            return apply_in(chains, session, names, targets, done, from_models)
    finally:
        chains.save_cache()


def apply_in(
    chains: Chains,
    session: MigrationSession,
    names: Sequence[str],
    targets: Mapping[str, str],
    done: Mapping[str, Outcome] | None = None,
    from_models: bool = False,
) -> dict[str, Outcome]:
    """``apply`` in a migration session already open (a replay's, rolled back at its end)."""
    outcomes: dict[str, Outcome] = dict(done or {})
    with session.step():
        steps = make_plan(chains, read_state(session.connection, chains.registry, names), names, targets)
    if any(step.action not in (Action.CURRENT, Action.SKIP) for step in steps):
        refuse_core_conflicts(chains.registry)
    for step in steps:
        blocked = next(
            (dep for dep in chains.registry.entry(step.plugin).depends_on
             if dep in outcomes and not outcomes[dep].succeeded),
            None,
        )
        if blocked is not None:
            outcomes[step.plugin] = Outcome(
                step.plugin, Status.SKIPPED, error=f'dependency "{blocked}" did not upgrade'
            )
        elif step.action is Action.SKIP:  # a revision needs another plugin's that the plan would not apply
            outcomes[step.plugin] = Outcome(step.plugin, Status.SKIPPED, step.current, step.current, error=step.reason)
        elif step.action is Action.CURRENT:
            outcomes[step.plugin] = Outcome(step.plugin, Status.CURRENT, step.current, step.current)
        else:
            outcomes[step.plugin] = _apply_one(chains, session, step.plugin, step.target, from_models)
    return {name: outcomes[name] for name in names}


def _apply_one(chains: Chains, session: MigrationSession, name: str, target: str, from_models: bool) -> Outcome:
    """One plugin's step in its own transaction; any failure rolls it back and is reported, not raised.

    Any exception counts, not only the database's: a revision is the user's
    code, and a plain Python error in it is that plugin's failure, named by
    file and line, while independent plugins go on.
    """
    try:
        return _run_step(chains, session, name, target, from_models)
    except LockTimeout:
        raise
    except PluginMigrationError as error:
        return Outcome(name, Status.FAILED, error=str(error))
    except SQLAlchemyError as error:
        if sqlstate(error) == LOCK_NOT_AVAILABLE:
            raise chains.database.table_lock_timeout_error() from None
        return Outcome(name, Status.FAILED, error=error_summary(error))
    except Exception as error:  # noqa: BLE001  (the user's revision code: see the docstring)
        return Outcome(name, Status.FAILED, error=describe_user_error(error, chains.registry.root))


def _run_step(chains: Chains, session: MigrationSession, name: str, target: str, from_models: bool) -> Outcome:
    from alembic import command
    from alembic.util import CommandError

    from .compare import differences
    from .from_models import install_from_models
    from .squash import install_from_squash

    connection, entry = session.connection, chains.registry.entry(name)
    with session.step():
        state = read_state(connection, chains.registry, [name])
        step = decide(entry, state.recorded[name], target, partial(chains.head, name), state.tables)
        if step.action is Action.CURRENT:
            return Outcome(name, Status.CURRENT, step.current, step.current)
        if step.action is Action.REFUSE:
            raise PluginMigrationError(step.reason)
        if step.action is Action.ADOPT:
            found = differences(connection, chains.registry, name)
            if found:
                raise PluginMigrationError(
                    f"refusing to adopt existing tables that differ from the models, nothing was changed: "
                    f"{'; '.join(found)}; {adoption_hint(name)}"
                )
            command.stamp(chains.config(name, connection), "head")
            return Outcome(name, Status.ADOPTED, None, chains.head(name))
        try:
            if step.action is Action.INSTALL and from_models and target == "head" and chains.head(name) is not None:
                install_from_models(chains, connection, name)  # (a chain without revisions installs nothing)
            elif not (step.action is Action.INSTALL and install_from_squash(chains, connection, name, target)):
                command.upgrade(chains.config(name, connection), target)
        except CommandError as error:
            raise PluginMigrationError(str(error)) from None
        except SQLAlchemyError as error:
            if sqlstate(error) == LOCK_NOT_AVAILABLE:
                raise
            raise PluginMigrationError(
                f"migration from {step.current or 'base'} rolled back, nothing was changed: {error_summary(error)}"
            ) from None
        after = current_revision(connection, entry)
    if after == step.current:  # already there (a chain without revisions, or a target it is at)
        return Outcome(name, Status.CURRENT, after, after)
    return Outcome(name, Status.INSTALLED if step.current is None else Status.UPGRADED, step.current, after)


def preview(chains: Chains, names: Sequence[str], targets: Mapping[str, str], from_models: bool = False) -> str:
    """The SQL that ``apply`` would run, plugin by plugin from each one's current revision; changes nothing."""
    database = chains.database
    state = None
    if not database.missing_sqlite_file():  # connecting would create it: --sql must change nothing
        with database.connect() as connection:
            state = read_state(connection, chains.registry, names)
    steps = make_plan(chains, state or _empty_state(), names, targets)
    chains.save_cache()
    if any(step.action is not Action.CURRENT for step in steps):
        refuse_core_conflicts(chains.registry)
    return "\n".join(script for step in steps if (script := _step_sql(chains, step, from_models)))


def _empty_state() -> DatabaseState:
    return DatabaseState(frozenset(), {})


def _step_sql(chains: Chains, step: Step, from_models: bool) -> str:
    from alembic import command

    from .from_models import install_from_models_sql
    from .squash import install_from_squash_sql

    name = step.plugin
    if step.action is Action.CURRENT or (step.action is Action.INSTALL and chains.head(name) is None):
        return ""
    if step.action in (Action.REFUSE, Action.SKIP):
        verdict = "refused" if step.action is Action.REFUSE else "skipped"
        return f"-- plugin {name}: {verdict}, nothing would be changed: {step.reason}\n"
    if step.action is Action.INSTALL and from_models and step.target == "head":
        return install_from_models_sql(chains, name)
    squashed = install_from_squash_sql(chains, name, step.target) if step.action is Action.INSTALL else None
    if squashed is not None:
        return squashed
    buffer = io.StringIO()
    config = chains.config(name, sql_buffer=buffer)
    if step.action is Action.ADOPT:
        command.stamp(config, "head", sql=True)
        return f"-- plugin {name}: adopted at {chains.head(name)} if its tables match the models (no DDL)\n{buffer.getvalue()}"
    start = f"{step.current}:" if step.current else ""
    command.upgrade(config, f"{start}{step.target}", sql=True)
    running = set(step_revisions(chains, step)) if chains.links(name) else set()
    needs = "".join(f"-- {link}\n" for link in chains.links(name) if link.revision in running)
    return f"-- plugin {name}: {step.current or 'base'} -> {step.target}\n{needs}{buffer.getvalue()}"


def stamp(chains: Chains, name: str, revision: str) -> Outcome:
    """Record ``revision`` as the plugin's current one without running any migration."""
    from alembic import command
    from alembic.util import CommandError

    entry = chains.registry.entry(name)
    with chains.database.migration_session() as session, session.step():
        before = current_revision(session.connection, entry)
        try:
            command.stamp(chains.config(name, session.connection), revision, purge=True)
        except CommandError as error:
            raise PluginMigrationError(f'plugin "{name}": {error}') from None
        return Outcome(name, Status.STAMPED, before, current_revision(session.connection, entry))
