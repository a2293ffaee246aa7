"""The plugin commands, one set behind two doors.

``python -m <host>.plugins COMMAND`` reads the database from DATABASE_URL;
``flask --app APP plugin COMMAND`` (after ``init_app(app)``) from the app.
Each command is a thin delegation to PluginManager (or, for the commands
that need no database, to the module that does the work); every failure
goes through ``fails_cleanly`` and becomes one ``Error: ...`` line on stderr
and exit status 1.

What commands print lives in ``output``; the options several commands share,
the error handling and the question asked before data is dropped, in
``cli_options``; the commands that need Copier and no database, in
``cli_scaffolding``. Over 300 lines on purpose: it is the whole database
command set, each command a few lines with its options, so that ``--help``
and this file read the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from . import PluginManager
from .cli_options import (
    configure_logging, confirm_drop, database_options, fails_cleanly, from_models_option, json_option, writing_options,
)
from .cli_scaffolding import SCAFFOLDING_COMMANDS
from .cli_squash import SQUASH_COMMANDS
from .binds import refuse_in_fleet
from .database import Database, bind_url
from .errors import RegistryError
from .fleet import read_urls, status_many, upgrade_many
from .outcomes import Status
from .output import print_outcomes, print_runs, print_statuses, print_table
from .registry import Registry


def _manager(ctx: click.Context, lock_timeout: float | None = None, database_url: str | None = None) -> PluginManager:
    manager = PluginManager(database_url, lock_timeout=lock_timeout, app=ctx.obj)
    ctx.call_on_close(manager.dispose)
    return manager


@click.command("list")
@fails_cleanly
def list_plugins() -> None:
    """List registered plugins, their tables and dependencies (no database needed)."""
    registry = PluginManager().registry
    rows = [
        [name, ", ".join(registry.entry(name).tables), ", ".join(registry.entry(name).depends_on) or "-"]
        for name in registry.order
    ]
    print_table(["plugin", "tables", "depends on"], rows)


def _fleet(database_urls: tuple[str, ...]) -> list[str] | None:
    """The databases of a run over several (None: the command works on one, the default or the one given).

    The registry is checked here, once: a problem with it is every database's, and is said once.
    """
    urls = read_urls(database_urls)
    if not (len(urls) > 1 or any(value.startswith("@") for value in database_urls)):
        return None
    refuse_in_fleet(PluginManager().registry)
    return urls


@click.command()
@json_option
@database_options
@click.pass_context
@fails_cleanly
def status(ctx: click.Context, as_json: bool, database_urls: tuple[str, ...], jobs: int) -> None:
    """Show each plugin's current revision, head and pending revisions."""
    fleet = _fleet(database_urls)
    if fleet is not None:
        print_runs(status_many(fleet, jobs), as_json, "read")
        return
    statuses = [plugin.as_dict() for plugin in _manager(ctx, database_url=_single(database_urls)).status()]
    if as_json:
        click.echo(json.dumps(statuses, indent=2))
        return
    print_statuses(statuses)


def _single(database_urls: tuple[str, ...]) -> str | None:
    return database_urls[0] if database_urls else None


def _upgrade(
    ctx: click.Context, name: str | None, revision: str, sql: bool, lock_timeout: float | None, as_json: bool,
    from_models: bool, database_url: str | None = None,
) -> None:
    """migrate and upgrade-all: one plan, run or (with --sql) printed."""
    if from_models and revision != "head":
        raise click.UsageError(f"--install-from-models builds the head, not {revision}; leave out --revision")
    manager = _manager(ctx, lock_timeout, database_url)
    if sql:
        click.echo(manager.upgrade_sql(name, revision, from_models=from_models), nl=False)
        return
    print_outcomes(manager.upgrade(name, revision, from_models=from_models), as_json)


@click.command()
@click.argument("name")
@click.option("--revision", default="head", show_default=True, help="Revision to upgrade to.")
@writing_options
@from_models_option
@json_option
@click.pass_context
@fails_cleanly
def migrate(
    ctx: click.Context, name: str, revision: str, sql: bool, lock_timeout: float | None, from_models: bool,
    as_json: bool,
) -> None:
    """Upgrade plugin NAME (after the plugins it depends on)."""
    _upgrade(ctx, name, revision, sql, lock_timeout, as_json, from_models)


@click.command("upgrade-all")
@writing_options
@from_models_option
@json_option
@database_options
@click.pass_context
@fails_cleanly
def upgrade_all(
    ctx: click.Context, sql: bool, lock_timeout: float | None, from_models: bool, as_json: bool,
    database_urls: tuple[str, ...], jobs: int,
) -> None:
    """Run every plugin's pending migrations, dependencies first (on several databases with --database-url)."""
    fleet = _fleet(database_urls)
    if fleet is None:
        _upgrade(ctx, None, "head", sql, lock_timeout, as_json, from_models, _single(database_urls))
    elif sql:
        raise click.UsageError("--sql previews one database at a time; give one --database-url")
    else:
        print_runs(upgrade_many(fleet, jobs, lock_timeout, from_models), as_json, "succeeded")


@click.command()
@click.argument("name")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Drop tables and columns that hold data without asking (for scripts).")
@writing_options
@click.pass_context
@fails_cleanly
def downgrade(ctx: click.Context, name: str, revision: str, yes: bool, sql: bool, lock_timeout: float | None) -> None:
    """Downgrade plugin NAME to REVISION (use "base" to remove it); asks before dropping data."""
    manager = _manager(ctx, lock_timeout)
    if sql:
        click.echo(manager.downgrade_sql(name, revision), nl=False)
        return

    outcome = manager.downgrade(name, revision, confirm_drop(yes, f'Downgrading "{name}" to {revision}'))
    if outcome.status is Status.ABORTED:
        raise click.ClickException(f'downgrade of "{name}" aborted; nothing was changed (pass --yes to drop them)')
    dropped = f"; dropped {', '.join(outcome.dropped)}" if outcome.dropped else ""
    click.echo(f"{name}: {outcome.from_revision or 'base'} -> {outcome.to_revision or 'base'}{dropped}")


@click.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Drop the plugin's tables without asking (for scripts).")
@click.option("--delete-code", is_flag=True, help="Also delete the plugin's models, revisions and other files.")
@writing_options
@click.pass_context
@fails_cleanly
def remove(ctx: click.Context, name: str, yes: bool, delete_code: bool, sql: bool, lock_timeout: float | None) -> None:
    """Remove plugin NAME: its tables and version table, then its scaffolding, answers file and registry entry."""
    manager = _manager(ctx, lock_timeout)
    if sql:
        click.echo(manager.remove_sql(name), nl=False)
        return
    removed = manager.remove(name, confirm_drop(yes, f'Removing "{name}"'), delete_code)
    if removed.outcome.status is Status.ABORTED:
        raise click.ClickException(f'removal of "{name}" aborted; nothing was changed (pass --yes to drop the tables)')
    dropped = f"dropped {', '.join(removed.outcome.dropped)}; " if removed.outcome.dropped else ""
    if removed.distribution:
        click.echo(f"{name}: {dropped}removed its version table; its code is the installed package "
                   f"{removed.distribution}: `pip uninstall {removed.distribution}`, and drop it from your requirements")
        return
    click.echo(f"{name}: {dropped}removed its version table, scaffolding, answers file and registry entry")
    for path in removed.left:
        click.echo(f"left for you: {path} (delete it, or run remove with --delete-code)")


@click.command()
@click.argument("name")
@click.pass_context
@fails_cleanly
def history(ctx: click.Context, name: str) -> None:
    """Show plugin NAME's revisions, newest first."""
    for revision in _manager(ctx).history(name):
        marks = [mark for mark in ("head", "current") if revision[mark]]
        suffix = f" ({', '.join(marks)})" if marks else ""
        needs = f"; depends on {', '.join(revision['depends_on'])}" if revision["depends_on"] else ""
        click.echo(f"{revision['down_revision'] or '<base>'} -> {revision['revision']}{suffix}, {revision['message']}{needs}")


@click.command()
@click.argument("name")
@click.option("-m", "--message", required=True, help="What the revision does.")
@click.option("--autogenerate", is_flag=True, help="Fill it with how NAME's models differ from the database (at NAME's head).")
@click.pass_context
@fails_cleanly
def revision(ctx: click.Context, name: str, message: str, autogenerate: bool) -> None:
    """Write a new revision into plugin NAME's chain (freezing its baseline first when the chain grows)."""
    review = _manager(ctx).revision(name, message, autogenerate)
    click.echo(f"wrote {review.path}")
    for operation in review.operations:
        click.echo(f"  {operation}")
    for warning in review.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if review.warnings:
        click.echo("Review those lines of the revision before it runs on a database that holds data.", err=True)


@click.command()
@click.argument("name")
@click.argument("revision")
@click.pass_context
@fails_cleanly
def stamp(ctx: click.Context, name: str, revision: str) -> None:
    """Record REVISION as plugin NAME's current revision without running migrations."""
    outcome = _manager(ctx).stamp(name, revision)
    click.echo(f"{name}: stamped {outcome.to_revision or 'base'} (was {outcome.from_revision or 'base'})")


@click.command("freeze-baseline")
@click.argument("name")
@click.pass_context
@fails_cleanly
def freeze_baseline(ctx: click.Context, name: str) -> None:
    """Freeze plugin NAME's baseline from a database at its baseline revision (`revision` does this by itself)."""
    click.echo(f"wrote {_manager(ctx).freeze_baseline(name)}")


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option(
    "--database-url",
    default=None,
    help="Replay the chains in this database if it is empty (it stays empty); if it has tables, only read it and "
    "report installed plugins whose tables differ from their models.",
)
@click.pass_context
@fails_cleanly
def check(ctx: click.Context, names: tuple[str, ...], database_url: str | None) -> None:
    """Fail when models, registry and migrations disagree (no database needed)."""
    try:
        from .checks import check as check_chains  # it loads Alembic, which other commands may not need

        registry = Registry.load()

        def bind_database(bind: str) -> Database:  # the app's SQLALCHEMY_BINDS through flask plugin, as upgrade-all's
            return Database(bind_url(bind, app=ctx.obj), schemas=registry.schemas)

        problems = check_chains(registry, list(names) or None, database_url, bind_database)
    except RegistryError as error:
        problems = [str(error)]
    for problem in problems:
        click.echo(problem)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) between models, registry and migrations, listed above")
    click.echo("models, registry and migrations agree")


@click.command("import-history")
@click.argument("name")
@click.option("--from", "source", required=True, type=click.Path(exists=True, path_type=Path),
              help="The old environment's alembic.ini, or the versions folder that holds the branch.")
@click.option("--branch", "label", default=None, help="The branch label of NAME's revisions there [default: NAME].")
@click.option("--version-table", "shared_table", default="alembic_version", show_default=True,
              help="The shared version table that holds a row per branch head.")
@click.option("--move-files", is_flag=True, help="Delete the branch's revision files from the old place once copied.")
@writing_options
@click.pass_context
@fails_cleanly
def import_history(
    ctx: click.Context, name: str, source: Path, label: str | None, shared_table: str, move_files: bool, sql: bool,
    lock_timeout: float | None,
) -> None:
    """Make branch NAME of an old shared Alembic history NAME's own chain, and move its version row."""
    from .importing import describe, import_history as run_import

    manager = _manager(ctx, lock_timeout)
    database = manager.databases.chains_for(name).database if name in manager.registry.entries else manager.database
    report = run_import(manager.registry, database, name, source, label, shared_table, sql, move_files)
    for line in describe(report, name, manager.registry.root):
        click.echo(line)
    if report.sql is not None:
        click.echo(report.sql, nl=False)


COMMANDS = [
    list_plugins,
    status,
    migrate,
    upgrade_all,
    downgrade,
    remove,
    history,
    revision,
    stamp,
    freeze_baseline,
    check,
    import_history,
    *SQUASH_COMMANDS,
    *SCAFFOLDING_COMMANDS,
]


def make_cli(app: Any = None) -> click.Group:
    """The ``plugin`` command group; with a Flask ``app``, its database is the default one."""

    @click.group("plugin", commands=COMMANDS)
    @click.option("-v", "--verbose", is_flag=True, help="Show Alembic's log (each migration as it runs).")
    @click.pass_context
    def plugin(ctx: click.Context, verbose: bool) -> None:
        """Per-plugin database migrations: one Alembic chain per plugin."""
        ctx.obj = app
        configure_logging(verbose)

    return plugin
