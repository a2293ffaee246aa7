"""Each plugin's Alembic chain: its ``Config``, its ``ScriptDirectory``, its head and pending revisions.

A revision may name a revision of another plugin's chain in Alembic's
``depends_on``: its id (``"0002_blog"``) or ``"blog@0002_blog"``. Alembic
knows one chain per ScriptDirectory and cannot resolve such a name
(``KeyError``), so each chain is loaded here without them (``own_chain``,
also called by every plugin's environment) and they are kept aside as
``RevisionLink`` values, which the plan, ``status``, ``history``, ``check``
and ``downgrade`` read. The other plugin must be one this plugin depends on
in the registry: those are upgraded to their heads before it.
"""

from __future__ import annotations

import copy
import io
from argparse import Namespace
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from .database import Database
from .errors import PluginMigrationError
from .graphcache import GraphCache, Graph, chain_key, chain_stamp, ini_digest, ini_stat
from .registry import Registry

if TYPE_CHECKING:  # Alembic is imported where a chain is loaded: a deploy with nothing to do never loads it
    from alembic.config import Config
    from alembic.script import Script, ScriptDirectory

    #: Revision id -> (its script, the names in its depends_on that are not of its own chain).
    Foreign = dict[str, tuple[Script, tuple[str, ...]]]


def own_chain(script: ScriptDirectory) -> Foreign:
    """Give ``script`` a revision map of its own chain only; return what its revisions name of other chains."""
    from alembic.script.revision import RevisionMap, tuple_rev_as_scalar
    from alembic.util import to_tuple

    # The files as Alembic loads them, before its RevisionMap resolves (and fails on) their depends_on.
    loaded = list(script._load_revisions())
    own = {name for revision in loaded for name in (revision.revision, *revision.branch_labels)}
    foreign: Foreign = {}
    for revision in loaded:
        named = to_tuple(revision.dependencies, default=())
        if any(name not in own for name in named):
            foreign[revision.revision] = (revision, tuple(name for name in named if name not in own))
            revision.dependencies = tuple_rev_as_scalar(tuple(name for name in named if name in own))
    script.revision_map = RevisionMap(lambda: loaded)
    return foreign


def confine(script: ScriptDirectory, revision_map: object = None) -> None:
    """Make ``script`` run only its own chain: as ``Chains`` loaded it (``revision_map``), else from its files."""
    from alembic.script.revision import RevisionMap

    if isinstance(revision_map, RevisionMap):
        script.revision_map = revision_map
    else:  # plain `alembic -c .../alembic.ini`
        own_chain(script)


@dataclass(frozen=True)
class RevisionLink:
    """Revision ``revision`` of ``plugin`` needs ``on_revision`` of ``on_plugin`` applied first.

    Unresolved (an unknown revision, a plugin not depended on), ``on_plugin``
    is None and ``problem`` says why, naming the file and the fix.
    """

    plugin: str
    revision: str
    spelled: str  # as the revision's depends_on writes it
    on_plugin: str | None = None
    on_revision: str | None = None
    problem: str = ""

    @property
    def on(self) -> str:
        """What the revision depends on: "blog@0002_blog", or as written when it cannot be resolved."""
        return f"{self.spelled} (unresolved: run `check`)" if self.on_plugin is None else f"{self.on_plugin}@{self.on_revision}"

    def __str__(self) -> str:
        return f"{self.revision} depends on {self.on}"


class Chains:
    """Every registered plugin's chain; each ScriptDirectory is loaded on first use and kept.

    Heads, bases, revision ids and links (``graph``) come from ``graphcache``
    while the chain's files are unchanged, so a plugin already at its head
    never loads its chain; ``span``, ``config`` and ``script`` load it.
    """

    def __init__(self, registry: Registry, database: Database, cache: GraphCache | None = None) -> None:
        self.registry = registry
        self.database = database
        self.cache = cache or GraphCache()
        self._scripts: dict[str, ScriptDirectory] = {}
        self._foreign: dict[str, Foreign] = {}
        self._graphs: dict[str, Graph] = {}
        self._keys: dict[str, tuple[str, list[str], str | None]] = {}  # the cache key and stamp each loaded chain was loaded under

    def on(self, database: Database) -> Chains:
        """These chains against another database (a bind's), sharing every chain loaded so far."""
        other = copy.copy(self)
        other.database = database
        return other

    def config(self, name: str, connection: Connection | None = None, sql_buffer: io.StringIO | None = None) -> Config:
        """The plugin's Alembic Config: bound to ``connection`` when given, offline (``--sql``) into ``sql_buffer``.

        It hands the chain as loaded here to the environment, which runs it
        without loading its files again.
        """
        config = self._bare_config(name, sql_buffer)
        config.attributes["registry"] = self.registry
        config.attributes["revision_map"] = self.script(name).revision_map
        if connection is not None:
            config.attributes["connection"] = connection
        if sql_buffer is not None:
            config.attributes["database_url"] = self.database.url
        return config

    def stamping_config(self, name: str, connection: Connection) -> Config:
        """A Config for ``command.stamp`` only: its revision map is built from the chain's graph (``graph``).

        The graph comes from the cache while the chain's files are unchanged,
        so a fresh install from a squash at the head imports no revision file.
        Alembic needs only ids and down revisions to stamp.
        """
        from alembic.script.revision import Revision, RevisionMap

        revisions = self.graph(name).revisions
        config = self._bare_config(name)
        config.attributes["registry"] = self.registry
        config.attributes["revision_map"] = RevisionMap(
            lambda: [Revision(revision, downs[0] if len(downs) == 1 else downs or None) for revision, downs in revisions]
        )
        config.attributes["connection"] = connection
        return config

    def _bare_config(self, name: str, sql_buffer: io.StringIO | None = None) -> Config:
        from alembic.config import Config

        # quiet: the plugin commands say what happened themselves.
        return Config(str(self.registry.entry(name).alembic_ini), output_buffer=sql_buffer, cmd_opts=Namespace(quiet=True))

    def script(self, name: str) -> ScriptDirectory:
        if name not in self._scripts:
            from alembic.script import ScriptDirectory

            alembic_ini = self.registry.entry(name).alembic_ini
            first_stat, digest = ini_stat(alembic_ini), ini_digest(alembic_ini)  # before the files are read: see graphcache
            script = ScriptDirectory.from_config(self._bare_config(name))
            locations = [str(location) for location in script._version_locations]
            key = chain_key(digest, locations) if digest is not None and not script.sourceless else None
            if key is not None:
                self._keys[name] = (key, locations, chain_stamp(first_stat, locations))
            self._foreign[name] = own_chain(script)
            self._scripts[name] = script
        return self._scripts[name]

    def graph(self, name: str) -> Graph:
        """The chain's heads, revisions and links to other chains: from the cache while its files are unchanged."""
        if name not in self._graphs:
            alembic_ini = self.registry.entry(name).alembic_ini
            cached = self.cache.get(alembic_ini) if name not in self._scripts else None
            if cached is None:
                from alembic.util import to_tuple

                script = self.script(name)
                cached = Graph(
                    tuple(script.get_heads()),
                    tuple(script.get_bases()),
                    tuple((revision.revision, to_tuple(revision.down_revision, default=())) for revision in script.walk_revisions()),
                    {revision: (loaded.path, names) for revision, (loaded, names) in self._foreign[name].items()},
                )
                if name in self._keys:
                    key, locations, stamp = self._keys[name]
                    self.cache.put(alembic_ini, key, locations, cached, stamp)
            self._graphs[name] = cached
        return self._graphs[name]

    def save_cache(self) -> None:
        """Write the graphs learnt from loaded chains to the cache (a read-only deploy skips it)."""
        self.cache.save()

    def forget(self, name: str) -> None:
        """Read the chain's files again next time (after writing a revision)."""
        self._scripts.pop(name, None)
        self._foreign.pop(name, None)
        self._graphs.pop(name, None)
        self._keys.pop(name, None)

    def head(self, name: str) -> str | None:
        heads = self.graph(name).heads
        if len(heads) > 1:
            raise PluginMigrationError(
                f'plugin "{name}" has {len(heads)} heads ({", ".join(sorted(heads))}); '
                f"merge them with `alembic -c {self.registry.entry(name).alembic_ini} merge heads`"
            )
        return heads[0] if heads else None

    def pending(self, name: str, current: str | None) -> list[str]:
        """Revisions between current and head, oldest first."""
        head = self.head(name)
        if head is None or current == head:
            return []
        return self.span(name, head, current)

    def span(self, name: str, upper: str, lower: str | None) -> list[str]:
        """The revisions above ``lower`` (None: base) up to ``upper``, oldest first."""
        revisions = self.script(name).iterate_revisions(upper, lower or "base")
        return [revision.revision for revision in reversed(list(revisions))]

    def baseline_revision(self, name: str) -> str:
        bases = self.graph(name).bases
        if len(bases) != 1:
            raise PluginMigrationError(f'plugin "{name}" has {len(bases)} base revisions; its chain must start at one baseline')
        return bases[0]

    def starts_at_scaffold_baseline(self, name: str) -> bool:
        """Whether the chain starts at the scaffold's baseline, which builds the plugin's tables from its models.

        An imported history (``import-history``) starts at a revision of its
        own, which builds its tables itself, so it needs no frozen baseline.
        """
        return self.baseline_revision(name) == f"0001_baseline_{name}"

    def revision_count(self, name: str) -> int:
        return len(self.graph(name).revisions)

    # -- dependencies on other plugins' revisions ----------------------------

    def links(self, name: str) -> list[RevisionLink]:
        """What the chain's revisions need of other plugins' chains, oldest revision first."""
        graph = self.graph(name)
        if not graph.foreign:
            return []
        return [
            self._resolve(name, revision, graph.foreign[revision][0], spelled)
            for revision, _ in reversed(graph.revisions) if revision in graph.foreign
            for spelled in graph.foreign[revision][1]
        ]

    def link_problems(self, names: Iterable[str]) -> list[str]:
        """Every dependency of ``names``' revisions on an unknown revision, or on a plugin not depended on.

        A chain that does not load is left to the plan, which refuses that plugin, naming the file.
        """
        problems: list[str] = []
        for name in names:
            try:
                links = self.links(name)
            except Exception:  # noqa: BLE001  (the user's revision files; see the docstring)
                continue
            problems.extend(link.problem for link in links if link.problem)
        return problems

    def _revision_ids(self, name: str) -> set[str]:
        return {revision for revision, _ in self.graph(name).revisions}

    def _resolve(self, name: str, revision_id: str, path: str, spelled: str) -> RevisionLink:
        plugin, _, revision = spelled.rpartition("@")
        depended_on = self.registry.closure(name)
        if plugin:
            owners = [plugin] if plugin in self.registry.entries and revision in self._revision_ids(plugin) else []
        else:
            owners = [other for other in sorted(depended_on) if revision in self._revision_ids(other)] or [
                other for other in sorted(self.registry.entries)
                if other != name and other not in depended_on and revision in self._revision_ids(other)
            ]
        if len(owners) == 1 and owners[0] in depended_on:
            return RevisionLink(name, revision_id, spelled, owners[0], revision)
        where = Path(path).resolve()
        shown = where.relative_to(self.registry.root) if where.is_relative_to(self.registry.root) else where
        said = f'{shown}: revision {revision_id} depends on "{spelled}"'
        if not owners:
            nowhere = f"plugin {plugin}" if plugin else "any registered plugin"
            choices = ", ".join(sorted(depended_on)) or "none"
            problem = (
                f"{said}, which is no revision of {nowhere}; name a revision of a plugin \"{name}\" depends on "
                f'({choices}) as "PLUGIN@REVISION", or remove it from the depends_on of that revision'
            )
        elif len(owners) > 1:
            problem = (
                f"{said}, a revision of plugins {' and '.join(owners)}; "
                f'name the one meant, as "{owners[0]}@{revision}"'
            )
        else:
            problem = (
                f'{said} of plugin "{owners[0]}", but plugin "{name}" does not depend on "{owners[0]}"; add it with '
                f"`copier update --trust --defaults -a .copier-answers.plugin-{name}.yml "
                f"-d 'depends_on=[{owners[0]}, ...]'`"
            )
        return RevisionLink(name, revision_id, spelled, problem=problem)
