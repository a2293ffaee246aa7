"""Plan, then act: what upgrading each plugin would do, decided once for the real run and for ``--sql``.

``decide`` is the one place that chooses between install, adopt, refuse,
upgrade and nothing; ``make_plan`` applies it to every plugin, from one read
of the database, and marks the dependents of a refused plugin skipped. The
real run (``upgrade.apply``) decides each step again inside that plugin's own
transaction, with the same function, so the preview and the run cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

from .chains import Chains
from .errors import PluginMigrationError, describe_user_error
from .registry import PluginEntry
from .versions import DatabaseState, several_rows


class Action(StrEnum):
    CURRENT = "current"  # at the target already
    INSTALL = "install"  # not installed and none of its tables exist: run the whole chain
    ADOPT = "adopt"  # not installed, every table exists (a create_all() deploy): stamp head if they match the models
    REFUSE = "refuse"  # the database is in a state no migration should touch
    UPGRADE = "upgrade"
    SKIP = "skip"  # a dependency is refused


@dataclass(frozen=True)
class Step:
    """What to do to one plugin: from which revision, to which target ("head" or a revision), and why not."""

    plugin: str
    action: Action
    current: str | None
    target: str
    reason: str = ""


def decide(
    entry: PluginEntry, recorded: tuple[str, ...], target: str, head: Callable[[], str | None], tables: Set[str] | None
) -> Step:
    """The step for one plugin, given its version rows and the database's tables.

    ``head`` is called only when the answer depends on it, so a fresh
    install does not load the chain here (Alembic's upgrade loads it anyway);
    an install that finds no revision to run ends "current" (see ``upgrade``).
    """
    name = entry.name
    if len(recorded) > 1:
        return Step(name, Action.REFUSE, None, target, several_rows(entry, recorded))
    current = recorded[0] if recorded else None
    if current is not None:
        reached = current == (head() if target == "head" else target)
        return Step(name, Action.CURRENT if reached else Action.UPGRADE, current, target)
    assert tables is not None, "read_state lists the tables whenever a plugin has no version row"
    present = set(entry.tables) & set(tables)
    if not present or target != "head":
        return Step(name, Action.INSTALL, None, target)
    missing = [table for table in entry.tables if table not in present]
    if missing:
        return Step(name, Action.REFUSE, None, target, (
            f"refusing to adopt existing tables, nothing was changed: {', '.join(sorted(present))} exist but "
            f"{', '.join(missing)} do not; {adoption_hint(name)}"
        ))
    return Step(name, Action.ADOPT, None, target)


def _decide_or_refuse(chains: Chains, entry: PluginEntry, state: DatabaseState, target: str) -> Step:
    """``decide``, but a chain that cannot be loaded (a revision that raises on import, two heads) is refused.

    The run then reports that plugin failed, naming the file and line, and
    goes on with the plugins that do not depend on it.
    """
    try:
        return decide(entry, state.recorded.get(entry.name, ()), target, partial(chains.head, entry.name), state.tables)
    except PluginMigrationError as error:
        return Step(entry.name, Action.REFUSE, None, target, str(error))
    except Exception as error:  # noqa: BLE001  (the user's revision files are imported here)
        return Step(entry.name, Action.REFUSE, None, target, describe_user_error(error, chains.registry.root))


def adoption_hint(name: str) -> str:
    return (
        f"if the database is at an older revision of the chain, record it with "
        f"`stamp {name} REVISION` and migrate from there"
    )


def make_plan(chains: Chains, state: DatabaseState, names: Sequence[str], targets: Mapping[str, str]) -> list[Step]:
    """One step per plugin of ``names`` (in that order, dependencies first).

    Refused as a whole, before anything runs, when a revision depends on an
    unknown revision or on a plugin it does not depend on (``Chains.links``).
    """
    problems = chains.link_problems(names)
    if problems:
        more = f" (and {len(problems) - 1} more: run `check`)" if len(problems) > 1 else ""
        raise PluginMigrationError(f"{problems[0]}; nothing was migrated{more}")
    steps: list[Step] = []
    held_back: set[str] = set()  # refused plugins, and the plugins that wait for them
    planned: dict[str, Step] = {}  # the steps that will run, or find their plugin current
    for name in names:
        entry = chains.registry.entry(name)
        target = targets.get(name, "head")
        blocked = next((dependency for dependency in entry.depends_on if dependency in held_back), None)
        if blocked is not None:
            steps.append(Step(name, Action.SKIP, None, target, f'dependency "{blocked}" would not upgrade'))
        else:
            step = _decide_or_refuse(chains, entry, state, target)
            unmet = _unmet_link(chains, step, planned, state) if step.action in RUNS_REVISIONS else None
            steps.append(step if unmet is None else Step(name, Action.SKIP, step.current, target, unmet))
        if steps[-1].action in (Action.REFUSE, Action.SKIP):
            held_back.add(name)
        else:
            planned[name] = steps[-1]
    return steps


#: The actions that run a plugin's revisions (adoption only stamps the head).
RUNS_REVISIONS = (Action.INSTALL, Action.UPGRADE)


def step_revisions(chains: Chains, step: Step) -> list[str]:
    """The revisions a step runs, oldest first."""
    end = _end(chains, step)
    return [] if end is None or end == step.current else chains.span(step.plugin, end, step.current)


def _end(chains: Chains, step: Step) -> str | None:
    if step.action is Action.CURRENT:
        return step.current
    return chains.head(step.plugin) if step.target == "head" else step.target


def _unmet_link(chains: Chains, step: Step, planned: Mapping[str, Step], state: DatabaseState) -> str | None:
    """Why a revision of the step cannot run yet: another plugin's revision it depends on would not be applied.

    The plugins a revision may depend on are upgraded before it, to their
    heads, so this holds but for a target below a head; a plugin outside the
    plan stays where the database has it. A chain or target Alembic cannot
    read is left to the run, which reports it for that plugin.
    """
    try:
        links = chains.links(step.plugin)
        running = set(step_revisions(chains, step)) if links else set()
        for link in links:
            if link.revision not in running or link.on_plugin is None or link.on_revision is None:
                continue
            recorded = state.recorded.get(link.on_plugin, ())
            there = _end(chains, planned[link.on_plugin]) if link.on_plugin in planned else (
                recorded[0] if len(recorded) == 1 else None
            )
            if there is None or link.on_revision not in chains.span(link.on_plugin, there, None):
                return f"{link}, which {link.on_plugin} would not reach (it would be at {there or 'base'})"
    except Exception:  # noqa: BLE001  (the user's revision files and targets: see the docstring)
        return None
    return None
