"""Squashing a long chain: fresh installs build the schema at REV in one step; old revisions stay until pruned.

The design, and why. ``squash NAME --to REV`` changes no revision: it only
writes ``migrations/squash_schema.py``, the plugin's tables as REV leaves
them, in the frozen baseline's form (``baseline.py``), with ``REVISION = REV``.
So every database that has the plugin upgrades exactly as before: one at or
past REV never reads the file, one before REV walks the old revisions. Only a
fresh install whose target is REV or later reads it (``install_from_squash``,
called by ``upgrade``): it creates the tables from the file, stamps REV and
runs only the revisions after REV. ``upgrade-all``, ``migrate`` and the host's
generated tests all install through it, so a chain of 50 revisions squashed
at its head installs with no revision run at all.

``squash NAME --prune`` then deletes the revisions before REV, refused while a
database it is given is still before REV. REV's own file becomes the chain's
base, a baseline like the scaffold's: the same id with ``down_revision =
None``, calling ``create_plugin_tables``/``drop_plugin_tables``, and the squash
becomes its frozen baseline (``migrations/baseline_schema.py``). Databases at
or past REV see the same ids, a downgrade to base still removes the plugin,
and a later squash writes a new ``squash_schema.py`` without changing what
the base builds. The base is written as ``versions/0001_baseline.py``, the
scaffold baseline's name, because ``copier update`` renders that file
wherever it is missing and would bring the old baseline back as a second base.

The squash is built by replaying the chain in a scratch SQLite database and
freezing what REV left there (``render_frozen_baseline``), typed as the
models say wherever they agree. Rows a revision inserts are data, not
schema: the squash does not carry them, and ``squash`` warns, naming the tables.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, make_url, select, table
from sqlalchemy.engine import Connection

from .baseline import FrozenTable, create_tables, create_tables_sql, load_frozen_baseline, render_frozen_baseline
from .chains import Chains
from .compare import column_changes
from .database import Database
from .errors import PluginMigrationError
from .metadata import load_metadata
from .registry import PluginEntry, Registry
from .schemas import effective_schema
from .versions import current_revision

SQUASH_SCHEMA = "squash_schema.py"
_REVISION_LINE = re.compile(r'^REVISION = "([^"]+)"$', re.MULTILINE)


def squash_schema(entry: PluginEntry) -> Path:
    """Where the plugin's squash lives (it may not exist)."""
    return entry.migrations_dir / SQUASH_SCHEMA


def squashed_at(entry: PluginEntry) -> str | None:
    """The revision the plugin's squash is the schema of; None without a squash."""
    path = squash_schema(entry)
    match = _REVISION_LINE.search(path.read_text(encoding="utf-8")) if path.is_file() else None
    return match.group(1) if match else None


def squashed_tables(entry: PluginEntry, migration_context: MigrationContext) -> list[FrozenTable]:
    """The plugin's tables as its squash creates them, in foreign-key order."""
    frozen = load_frozen_baseline(entry, migration_context, squash_schema(entry)) or {}
    return [frozen_table for name, frozen_table in frozen.items() if name in entry.tables]


# -- fresh installs ----------------------------------------------------------


def install_from_squash(chains: Chains, connection: Connection, name: str, target: str) -> bool:
    """Install ``name`` from its squash, then run only the revisions after it; False when there is none to use.

    Unused when the target is before the squashed revision, and once the
    chain is pruned (its base is then the squash, which Alembic runs itself).
    """
    entry = chains.registry.entry(name)
    at = squashed_at(entry)
    if at is None or at == chains.baseline_revision(name):
        return False
    if target != "head" and at not in chains.span(name, target, None):
        return False
    tables = squashed_tables(entry, MigrationContext.configure(connection))
    create_tables(connection, tables, effective_schema(entry.schema, connection.dialect.name))
    if target == at or (target == "head" and at == chains.head(name)):
        command.stamp(chains.stamping_config(name, connection), at)  # no revision file imported: see stamping_config
        return True
    config = chains.config(name, connection)
    command.stamp(config, at)
    command.upgrade(config, target)
    return True


def install_from_squash_sql(chains: Chains, name: str, target: str) -> str | None:
    """What ``install_from_squash`` would run, as SQL for ``--sql``; None when it would not be used."""
    entry = chains.registry.entry(name)
    at = squashed_at(entry)
    if at is None or at == chains.baseline_revision(name):
        return None
    if target != "head" and at not in chains.span(name, target, None):
        return None
    dialect = make_url(chains.database.url).get_dialect()()
    tables = squashed_tables(entry, MigrationContext.configure(dialect=dialect))
    created = create_tables_sql(dialect, tables, effective_schema(entry.schema, dialect.name))
    buffer = io.StringIO()
    config = chains.config(name, sql_buffer=buffer)
    command.stamp(config, at, sql=True)
    if target != at:
        command.upgrade(config, f"{at}:{target}", sql=True)
    return (
        f"-- plugin {name}: base -> {target}, from its squash at {at} ({squash_schema(entry).name})\n"
        + created + buffer.getvalue()
    )


def squash_problems(registry: Registry, names: Sequence[str], url: str) -> list[str]:
    """Each squash of ``names`` that does not build what its chain builds at its revision (by reflection, at ``url``)."""
    # replay imports upgrade, which imports this module for fresh installs.
    from .replay import scratch
    from .upgrade import apply_in

    problems: list[str] = []
    for name in names:
        entry = registry.entry(name)
        at = squashed_at(entry)
        shapes: list[dict[str, Any]] = []
        for from_squash in (False, True):
            with scratch(registry, url) as replay:
                if at is None or at == replay.chains.baseline_revision(name):
                    break  # nothing squashed, or pruned: the chain's base is the squash itself
                replay.prepare(name)
                if from_squash:
                    apply_in(replay.chains, replay.session, [name], {name: at})
                else:
                    replay.upgrade(name, at)
                shapes.append(replay.schema(replay.chain_tables()))
        if len(shapes) == 2 and shapes[0] != shapes[1]:
            differ = sorted(t for t in shapes[0].keys() | shapes[1].keys() if shapes[0].get(t) != shapes[1].get(t))
            problems.append(
                f'plugin "{name}": its squash {SQUASH_SCHEMA} does not build what its chain builds at {at} '
                f"(tables {', '.join(differ)} differ); write it again with `squash {name} --to {at}`"
            )
    return problems


# -- writing a squash --------------------------------------------------------


@dataclass
class Squash:
    """A squash written: where, of which revision, how many revisions a fresh install no longer runs."""

    path: Path
    revision: str
    replaced: int
    warnings: list[str] = field(default_factory=list)


def _chain(chains: Chains, name: str) -> list[str]:
    head = chains.head(name)
    if head is None:
        raise PluginMigrationError(f'plugin "{name}" has no revision to squash')
    return chains.span(name, head, None)


def write_squash(chains: Chains, name: str, to: str | None = None) -> Squash:
    """Write ``migrations/squash_schema.py``: the plugin's tables at ``to`` (default: its head)."""
    # replay imports upgrade, which imports this module for fresh installs.
    from .replay import scratch

    entry = chains.registry.entry(name)
    chain = _chain(chains, name)
    revision = to or chain[-1]
    if revision not in chain:
        raise PluginMigrationError(
            f'plugin "{name}": "{revision}" is no revision of its chain; name one that `history {name}` lists'
        )
    if chain.index(revision) == 0:
        raise PluginMigrationError(
            f'plugin "{name}": "{revision}" is the first revision of its chain, there is nothing before it to squash'
        )
    with tempfile.TemporaryDirectory(prefix="plugin-squash-") as folder:
        with scratch(chains.registry, f"sqlite:///{folder}/squash.db") as replay:
            replay.prepare(name)
            replay.upgrade(name, revision)
            connection = replay.connection
            models = load_metadata(chains.registry, entry.bind)
            changes = column_changes(connection, chains.registry, name)
            frozen = render_frozen_baseline(entry, connection, revision, models, changes)
            seeded = _tables_with_rows(connection, entry)
    body = frozen.split('"""\n', 1)[1]  # the frozen baseline's own docstring says it is one
    path = squash_schema(entry)
    path.write_text(
        f'"""Squash of the "{name}" plugin: its tables as revision {revision} leaves them.\n\n'
        f"A fresh install builds these tables, records {revision} and runs only the revisions\n"
        f"after it. Written by `squash {name}`; do not edit.\n"
        f'"""\n{body}\n#: The revision this schema is.\nREVISION = "{revision}"\n',
        encoding="utf-8",
    )
    warnings = [
        f"revisions up to {revision} insert rows into {', '.join(seeded)}, which the squash does not carry: "
        f"insert them in a revision after {revision}"
    ] if seeded else []
    return Squash(path, revision, chain.index(revision) + 1, warnings)


def _tables_with_rows(connection: Connection, entry: PluginEntry) -> list[str]:
    present = set(connection.dialect.get_table_names(connection))
    return [
        name for name in entry.tables
        if name in present and connection.execute(select(func.count()).select_from(table(name))).scalar()
    ]


# -- pruning -----------------------------------------------------------------


def prune(chains: Chains, name: str, urls: list[str]) -> list[Path]:
    """Delete the revisions before the squashed one, which becomes the chain's base; the files removed.

    Refused, nothing changed, while a database at ``urls`` is still before it.
    """
    entry = chains.registry.entry(name)
    at = squashed_at(entry)
    if at is None:
        raise PluginMigrationError(f'plugin "{name}" has no squash to prune to; write one with `squash {name}` first')
    chain = _chain(chains, name)
    if at not in chain:
        raise PluginMigrationError(f'plugin "{name}": its squash is of {at}, which is no revision of its chain')
    older = chain[: chain.index(at)]
    if not older:
        raise PluginMigrationError(f'plugin "{name}": its chain already starts at its squash {at}, nothing to prune')
    for url in urls:
        database = Database(url, schemas=chains.registry.schemas)
        try:
            with database.read_only() as connection:
                current = current_revision(connection, entry)
        finally:
            database.dispose()
        if current in older or (current is not None and current not in chain):
            shown = make_url(url).render_as_string(hide_password=True)
            raise PluginMigrationError(
                f'refusing to prune "{name}", nothing was changed: the database {shown} is at {current}, before '
                f"{at}; upgrade it first (`upgrade-all --database-url URL`)"
            )
    script = chains.script(name)
    removed = [Path(script.get_revision(revision).path) for revision in [*older, at]]
    for path in removed:
        path.unlink()
    squash = squash_schema(entry)
    body = squash.read_text(encoding="utf-8").split('"""\n', 1)[1]
    entry.frozen_baseline.write_text(
        f'"""Frozen baseline of the "{name}" plugin: the schema at {at}, its chain\'s base since\n'
        f"`squash {name} --prune`. create_plugin_tables() builds from this file. Do not edit.\n"
        f'"""\n{body}',
        encoding="utf-8",
    )
    squash.unlink()
    base = entry.migrations_dir / "versions" / "0001_baseline.py"
    base.write_text(_squashed_base(name, at), encoding="utf-8")
    chains.forget(name)
    return [path for path in [*removed, squash] if path != base]


def _squashed_base(name: str, revision: str) -> str:
    runtime = __name__.rpartition(".")[0]
    return (
        f'"""{name} plugin: the base of its chain since `squash {name} --prune`, the schema at {revision}.\n\n'
        f"It has the id of the revision it replaces, so databases at it or past it upgrade on\n"
        f"unchanged, and builds from the frozen baseline (migrations/baseline_schema.py).\n"
        f"It keeps the scaffold baseline's file name so that copier update does not write\n"
        f"that baseline again.\n\nRevision ID: {revision}\nRevises:\n"
        f'"""\nfrom {runtime}.alembic_template import create_plugin_tables, drop_plugin_tables\n\n\n'
        f'revision = "{revision}"\ndown_revision = None\nbranch_labels = None\ndepends_on = None\n\n\n'
        f'def upgrade():\n    create_plugin_tables("{name}")\n\n\n'
        f'def downgrade():\n    drop_plugin_tables("{name}")\n'
    )
