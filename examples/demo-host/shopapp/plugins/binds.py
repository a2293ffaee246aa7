"""Plugins in another database: each bind key's ``Database``, and which database each plugin's work runs in.

A plugin whose ``bind`` answer is set keeps its tables and its version table
in that bind's database (``database.bind_url``: the Flask app's
``SQLALCHEMY_BINDS``, else ``DATABASE_URL_<BIND>``). Every database gets its
own ``Chains`` (sharing the loaded chains) and so its own migration session
and migrator lock. A run over several databases is cut into runs of one
database each, in an order that keeps every plugin after its dependencies,
and a plugin whose dependency failed in another database is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import upgrade, versions
from .chains import Chains
from .database import Database, bind_url
from .errors import PluginMigrationError
from .outcomes import Outcome, PluginStatus
from .registry import Registry


def refuse_in_fleet(registry: Registry) -> None:
    """Refuse a run over several sites' databases while a plugin has a bind.

    A bind's URL is one for the whole process, so every site's bound plugins
    would land in the same database; run each site alone instead.
    """
    binds = sorted({entry.bind for entry in registry.entries.values() if entry.bind})
    if binds:
        raise PluginMigrationError(
            f"--database-url names several databases, but plugins use binds ({', '.join(binds)}), whose database "
            f"is the same for all of them; run one database at a time, each with its DATABASE_URL_<BIND>"
        )


class Databases:
    """The default database's chains, and each bind's, made (and their URL resolved) on first use."""

    def __init__(self, registry: Registry, default: Chains, app: Any = None) -> None:
        self.registry = registry
        self._app = app
        self._chains: dict[str | None, Chains] = {None: default}

    def chains(self, bind: str | None) -> Chains:
        """The chains bound to ``bind``'s database; a bind with no URL is refused, naming both ways to give one."""
        if bind is not None and bind not in self._chains:
            default = self._chains[None]
            url = bind_url(bind, app=self._app)
            self._chains[bind] = default.on(Database(url, default.database.lock_timeout, schemas=default.database.schemas))
        return self._chains[bind]

    def chains_for(self, name: str) -> Chains:
        """The chains of the database holding plugin ``name``'s tables."""
        return self.chains(self.registry.entry(name).bind)

    def binds(self, names: Sequence[str] | None = None) -> list[str]:
        """The bind keys of ``names`` (every plugin when None), sorted."""
        entries = self.registry.entries.values() if names is None else map(self.registry.entry, names)
        return sorted({entry.bind for entry in entries if entry.bind})

    def runs(self, names: Sequence[str]) -> list[tuple[Chains, list[str]]]:
        """``names`` (in dependency order) cut into runs of one database each, every plugin after its dependencies.

        Every database's URL is resolved here, before any work, so a bind
        without one stops the command before anything changed.
        """
        for key in self.binds(names):
            self.chains(key)
        remaining, wanted = list(names), set(names)
        done: set[str] = set()
        runs: list[tuple[Chains, list[str]]] = []
        while remaining:
            bind: str | None = self.registry.entry(remaining[0]).bind
            run: list[str] = []
            for name in remaining:  # dependency order: a dependency is taken before its dependents
                entry = self.registry.entry(name)
                if entry.bind == bind and all(dep in done or dep not in wanted for dep in entry.depends_on):
                    run.append(name)
                    done.add(name)
            remaining = [name for name in remaining if name not in done]
            runs.append((self.chains(bind), run))
        return runs

    def upgrade(self, names: Sequence[str], targets: Mapping[str, str], from_models: bool = False) -> dict[str, Outcome]:
        """``upgrade.apply`` on each database's run in turn; a failure skips its dependents in every database."""
        outcomes: dict[str, Outcome] = {}
        for chains, run in self.runs(names):
            outcomes.update(upgrade.apply(chains, run, targets, outcomes, from_models))
        return {name: outcomes[name] for name in names}

    def upgrade_sql(self, names: Sequence[str], targets: Mapping[str, str], from_models: bool = False) -> str:
        """The SQL of ``upgrade``, each database's under a comment naming its bind."""
        scripts = []
        for chains, run in self.runs(names):
            bind = self.registry.entry(run[0]).bind
            script = upgrade.preview(chains, run, targets, from_models)
            scripts.append(f'-- bind "{bind}": {chains.database.shown_url}\n{script}' if bind and script else script)
        return "\n".join(script for script in scripts if script)

    def status(self) -> list[PluginStatus]:
        """Every plugin's status, each read from its own database, in dependency order."""
        found: dict[str, PluginStatus] = {}
        for chains, run in self.runs(list(self.registry.order)):
            with chains.database.connect() as connection:
                found.update((status.name, status) for status in versions.plugin_statuses(connection, chains, run))
        return [found[name] for name in self.registry.order]

    def dispose(self) -> None:
        for chains in self._chains.values():
            chains.database.dispose()
