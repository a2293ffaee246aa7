"""``remove NAME``: a plugin's whole departure, database first, files after.

The database step (downgrade to base, then drop the version table) runs in
one transaction with the same refusals and confirmation as a downgrade. Only
when it has committed are the plugin's scaffolding, answers file and registry
entry deleted; the plugin's own code (models, revisions written since the
baseline, anything else in its folder) goes only with ``delete_code``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import MetaData, Table, inspect

from .chains import Chains
from .declarations import render_index
from .downgrade import Confirm, downgrade_in, downgrade_sql
from .errors import PluginMigrationError
from .outcomes import Outcome, Status
from .schemas import drop_plugin_schema, drop_version_table_sql, effective_schema
from .versions import current_revision

#: What the plugin scope of the template writes into a plugin's folder (the rest is the user's).
SCAFFOLDING = (
    "__init__.py",
    "migrations/alembic.ini",
    "migrations/env.py",
    "migrations/plugin.json",
    "migrations/script.py.mako",
    "migrations/versions/0001_baseline.py",
)


@dataclass(frozen=True)
class Removal:
    """What ``remove`` did: the database outcome, the files it deleted and the files it left for the user."""

    outcome: Outcome
    deleted: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    #: For a plugin shipped as a package: the installed distribution, which only pip takes away.
    distribution: str | None = None


def refuse_dependents(chains: Chains, name: str) -> None:
    """Refuse, changing nothing, while another registered plugin depends on ``name``."""
    dependents = sorted(other for other, entry in chains.registry.entries.items() if name in entry.depends_on)
    if dependents:
        raise PluginMigrationError(
            f'refusing to remove "{name}", nothing was changed: {", ".join(dependents)} depend on it; '
            f"remove them first, or drop {name} from their depends_on"
        )


def remove(chains: Chains, name: str, confirm: Confirm | None = None, delete_code: bool = False) -> Removal:
    """Take plugin ``name`` out of the database, then out of the repository."""
    entry = chains.registry.entry(name)
    refuse_dependents(chains, name)
    with chains.database.migration_session() as session, session.step() as transaction:
        connection = session.connection
        if current_revision(connection, entry) is not None:
            outcome = downgrade_in(connection, transaction, chains, name, "base", confirm)
            if outcome.status is Status.ABORTED:
                return Removal(outcome)
        else:
            outcome = Outcome(name, Status.DOWNGRADED, None, None)
        schema = effective_schema(entry.schema, connection.dialect.name)
        if schema:
            drop_plugin_schema(connection, schema, entry.version_table)
        elif entry.version_table in inspect(connection).get_table_names():
            Table(entry.version_table, MetaData()).drop(connection)
    if entry.distribution:  # its files belong to the installed package: never delete inside site-packages
        _drop_registry_entry(chains.registry.path, name)
        return Removal(outcome, distribution=entry.distribution)
    deleted, left = _delete_files(chains, name, delete_code)
    return Removal(outcome, deleted, left)


def remove_sql(chains: Chains, name: str) -> str:
    """The SQL that ``remove`` would run; changes nothing."""
    refuse_dependents(chains, name)
    entry = chains.registry.entry(name)
    with chains.database.connect() as connection:
        installed = current_revision(connection, entry) is not None
        dialect = connection.dialect
    script = downgrade_sql(chains, name, "base") if installed else f"-- plugin {name}: not installed\n"
    schema = effective_schema(entry.schema, chains.database.backend)
    if schema and installed:
        return script  # the downgrade to base already drops the version table and the schema
    return f"{script}\n{drop_version_table_sql(dialect, entry.version_table, schema, if_exists=bool(schema))}"


def _delete_files(chains: Chains, name: str, delete_code: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    registry = chains.registry
    folder = registry.entry(name).folder
    answers = registry.root / f".copier-answers.plugin-{name}.yml"
    shown = [path.relative_to(registry.root).as_posix() for path in sorted(folder.rglob("*")) if path.is_file()]
    if delete_code:
        shutil.rmtree(folder)
        deleted = shown
    else:
        deleted = []
        for relative in SCAFFOLDING:
            path = folder / relative
            if path.is_file():
                path.unlink()
                deleted.append(path.relative_to(registry.root).as_posix())
        for cache in folder.rglob("__pycache__"):
            shutil.rmtree(cache)
        _remove_empty_folders(folder)
    if answers.is_file():
        answers.unlink()
        deleted.append(answers.name)
    _drop_registry_entry(registry.path, name)
    left = [path for path in shown if path not in deleted and (registry.root / path).is_file()]
    return tuple(deleted), tuple(left)


def _remove_empty_folders(folder: Path) -> None:
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(path.iterdir()):
            path.rmdir()
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _drop_registry_entry(path: Path, name: str) -> None:
    """The registry.json index without ``name``, written as sync-registry writes it."""
    if not path.is_file():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    if name not in data.get("plugins", {}):
        return
    data["plugins"].pop(name)
    path.write_text(render_index(data), encoding="utf-8")
