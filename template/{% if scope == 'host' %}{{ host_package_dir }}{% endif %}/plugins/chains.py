"""Each plugin's Alembic chain: its ``Config``, its ``ScriptDirectory``, its head and pending revisions."""

from __future__ import annotations

import io
from argparse import Namespace

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from .database import Database
from .errors import PluginMigrationError
from .registry import Registry


class Chains:
    """Every registered plugin's chain; each ScriptDirectory is loaded on first use and kept."""

    def __init__(self, registry: Registry, database: Database) -> None:
        self.registry = registry
        self.database = database
        self._scripts: dict[str, ScriptDirectory] = {}

    def config(self, name: str, connection: Connection | None = None, sql_buffer: io.StringIO | None = None) -> Config:
        """The plugin's Alembic Config: bound to ``connection`` when given, offline (``--sql``) into ``sql_buffer``."""
        # quiet: the plugin commands say what happened themselves.
        config = Config(
            str(self.registry.entry(name).alembic_ini), output_buffer=sql_buffer, cmd_opts=Namespace(quiet=True)
        )
        config.attributes["registry"] = self.registry
        if connection is not None:
            config.attributes["connection"] = connection
        if sql_buffer is not None:
            config.attributes["database_url"] = self.database.url
        return config

    def script(self, name: str) -> ScriptDirectory:
        if name not in self._scripts:
            self._scripts[name] = ScriptDirectory.from_config(self.config(name))
        return self._scripts[name]

    def forget(self, name: str) -> None:
        """Read the chain's files again next time (after writing a revision)."""
        self._scripts.pop(name, None)

    def head(self, name: str) -> str | None:
        heads = self.script(name).get_heads()
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
        revisions = self.script(name).iterate_revisions(head, current or "base")
        return [revision.revision for revision in reversed(list(revisions))]

    def baseline_revision(self, name: str) -> str:
        bases = self.script(name).get_bases()
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
        return sum(1 for _ in self.script(name).walk_revisions())
