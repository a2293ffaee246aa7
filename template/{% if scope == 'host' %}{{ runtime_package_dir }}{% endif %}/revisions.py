"""Writing into a plugin's chain: its next revision, and its frozen baseline when the chain first grows."""

from __future__ import annotations

import re
from pathlib import Path

from typing import Any

from alembic import command
from alembic.operations import ops
from alembic.util import CommandError

from .baseline import render_frozen_baseline
from .chains import Chains
from .compare import column_changes
from .errors import PluginMigrationError
from .metadata import load_metadata
from .review import Review, describe, table_operations, warnings
from .versions import current_revision

_NUMBERED = re.compile(r"(\d{4})_")


def next_revision_id(chains: Chains, name: str) -> str:
    """A readable id, unique across plugins: NNNN_NAME (at most 23 characters for an 18-character name).

    An imported chain's ids are not numbered: its next one counts its revisions.
    """
    numbers = [
        int(match.group(1))
        for revision in chains.script(name).walk_revisions()
        if (match := _NUMBERED.match(revision.revision))
    ]
    return f"{max(numbers, default=chains.revision_count(name)) + 1:04d}_{name}"


def freeze_baseline(chains: Chains, name: str) -> Path:
    """Write the plugin's frozen baseline from a database that is at the baseline revision."""
    entry = chains.registry.entry(name)
    path = entry.frozen_baseline
    if path.exists():
        raise PluginMigrationError(f'plugin "{name}" already has a frozen baseline: {path}')
    baseline = chains.baseline_revision(name)
    with chains.database.connect() as connection:
        current = current_revision(connection, entry)
        if current != baseline:
            raise PluginMigrationError(
                f'plugin "{name}": freezing its baseline needs a database at {baseline}, which the baseline '
                f"built; this one is at {current or 'no revision'}. Run `migrate {name} --revision {baseline}` on "
                f"a database made before your model changes (or your production copy), then try again"
            )
        models = load_metadata(chains.registry, entry.bind)
        changes = column_changes(connection, chains.registry, name)
        path.write_text(render_frozen_baseline(entry, connection, baseline, models, changes), encoding="utf-8")
    return path


def write_revision(chains: Chains, name: str, message: str, autogenerate: bool = False) -> Review:
    """Write a new revision into the plugin's own chain; freeze the baseline first when the chain grows.

    With ``autogenerate`` the database must be at the plugin's head; the
    revision then holds exactly how the plugin's models differ from it, and
    the review lists its operations and warns, naming them, of those that
    may lose data.
    """
    entry = chains.registry.entry(name)
    if chains.revision_count(name) == 1 and chains.starts_at_scaffold_baseline(name) and not entry.frozen_baseline.exists():
        freeze_baseline(chains, name)
    revision_id = next_revision_id(chains, name)
    written: list[ops.UpgradeOps] = []

    def review_directives(context: Any, revision: Any, directives: list[ops.MigrationScript]) -> None:
        # Read once the revision is written: the environment's own hook still adds to these operations.
        written.extend(upgrade_ops for script in directives for upgrade_ops in script.upgrade_ops_list)

    with chains.database.connect() as connection:
        try:
            script = command.revision(
                chains.config(name, connection), message=message, autogenerate=autogenerate, rev_id=revision_id,
                process_revision_directives=review_directives,
            )
        except CommandError as error:
            raise PluginMigrationError(f'plugin "{name}": {error}') from None
    chains.forget(name)
    if script is None or isinstance(script, list):
        raise PluginMigrationError(f'plugin "{name}": Alembic wrote no single revision file')
    return Review(
        Path(script.path),
        [describe(operation, table) for upgrade_ops in written for table, operation in table_operations(upgrade_ops)],
        [warning for upgrade_ops in written for warning in warnings(upgrade_ops)],
    )
