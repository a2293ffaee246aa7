"""Plan, then act: what upgrading each plugin would do, decided once for the real run and for ``--sql``.

``decide`` is the one place that chooses between install, adopt, refuse,
upgrade and nothing; ``make_plan`` applies it to every plugin, from one read
of the database, and marks the dependents of a refused plugin skipped. The
real run (``upgrade.apply``) decides each step again inside that plugin's own
transaction, with the same function, so the preview and the run cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
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
    entry: PluginEntry, recorded: tuple[str, ...], target: str, head: Callable[[], str | None], tables: Set[str]
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


def make_plan(chains: Chains, state: DatabaseState, names: Iterable[str], targets: Mapping[str, str]) -> list[Step]:
    """One step per plugin of ``names`` (in that order, dependencies first)."""
    steps: list[Step] = []
    held_back: set[str] = set()  # refused plugins, and the plugins that wait for them
    for name in names:
        entry = chains.registry.entry(name)
        target = targets.get(name, "head")
        blocked = next((dependency for dependency in entry.depends_on if dependency in held_back), None)
        if blocked is not None:
            steps.append(Step(name, Action.SKIP, None, target, f'dependency "{blocked}" would not upgrade'))
        else:
            steps.append(_decide_or_refuse(chains, entry, state, target))
        if steps[-1].action in (Action.REFUSE, Action.SKIP):
            held_back.add(name)
    return steps
