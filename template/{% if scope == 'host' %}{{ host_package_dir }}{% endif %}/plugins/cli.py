"""The plugin commands, one set behind two doors.

``python -m <host>.plugins COMMAND`` reads the database from DATABASE_URL;
``flask --app APP plugin COMMAND`` (after ``init_app(app)``) from the app.
Each command is a thin delegation to PluginManager (or, for the commands
that need no database, to the module that does the work); every failure
goes through ``fails_cleanly`` and becomes one ``Error: ...`` line on stderr
and exit status 1.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import click
from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError

from . import PluginManager
from .checks import check as check_chains
from .errors import PluginMigrationError, RegistryError, describe_user_error, error_summary, user_code_location
from .outcomes import UPGRADE_STATUSES, Outcome, Status
from .registry import PROJECT_ROOT, Registry


def fails_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can act on into click's one-line ``Error: ...`` and exit 1.

    That includes any exception raised by the user's own code (a revision
    that cannot be imported, a models module that raises), named by file and
    line. An exception from this runtime itself keeps its traceback: it is a
    bug to report, not a mistake to fix.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (PluginMigrationError, CommandError) as error:
            raise click.ClickException(str(error)) from None
        except SQLAlchemyError as error:
            raise click.ClickException(f"database error: {error_summary(error)}") from None
        except Exception as error:
            if user_code_location(error, PROJECT_ROOT) is None:
                raise
            raise click.ClickException(describe_user_error(error, PROJECT_ROOT)) from None

    return wrapper


def _manager(ctx: click.Context, lock_timeout: float | None = None) -> PluginManager:
    manager = PluginManager(lock_timeout=lock_timeout, app=ctx.obj)
    ctx.call_on_close(manager.dispose)
    return manager


def _writing_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--sql and --lock-timeout, shared by the commands that change the database."""
    command = click.option(
        "--lock-timeout",
        type=click.FloatRange(min=0),
        default=None,
        help="Seconds to wait for another migrator of this database to finish [default: 300].",
    )(command)
    return click.option("--sql", "sql", is_flag=True, help="Print the SQL instead of running it.")(command)


_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    for row in [headers, *rows]:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _print_outcomes(outcomes: dict[str, Outcome], as_json: bool = False) -> None:
    """Print upgrade outcomes (a table and a summary line, or JSON), and fail when any plugin failed."""
    if as_json:
        click.echo(json.dumps({name: outcome.as_dict() for name, outcome in outcomes.items()}, indent=2))
    else:
        _print_table(["plugin", "result", "detail"], [[name, o.status, o.detail()] for name, o in outcomes.items()])
        counts = {status: sum(o.status is status for o in outcomes.values()) for status in UPGRADE_STATUSES}
        plugins = "plugin" if len(outcomes) == 1 else "plugins"
        click.echo(f"{len(outcomes)} {plugins}: " + ", ".join(f"{n} {status}" for status, n in counts.items() if n))
    failed = [f'plugin "{name}" failed: {o.error}' for name, o in outcomes.items() if o.status is Status.FAILED]
    skipped = [name for name, o in outcomes.items() if o.status is Status.SKIPPED]
    if failed:
        skipped_note = f"; skipped as their dependencies failed: {', '.join(skipped)}" if skipped else ""
        raise click.ClickException("; ".join(failed) + skipped_note + "; fix and run the command again")


@click.command("list")
@fails_cleanly
def list_plugins() -> None:
    """List registered plugins, their tables and dependencies (no database needed)."""
    registry = PluginManager().registry
    rows = [
        [name, ", ".join(registry.entry(name).tables), ", ".join(registry.entry(name).depends_on) or "-"]
        for name in registry.order
    ]
    _print_table(["plugin", "tables", "depends on"], rows)


@click.command()
@_json_option
@click.pass_context
@fails_cleanly
def status(ctx: click.Context, as_json: bool) -> None:
    """Show each plugin's current revision, head and pending revisions."""
    statuses = _manager(ctx).status()
    if as_json:
        click.echo(json.dumps([plugin.as_dict() for plugin in statuses], indent=2))
        return
    rows = [[s.name, s.current or "-", s.head or "-", str(len(s.pending))] for s in statuses]
    _print_table(["plugin", "current", "head", "pending"], rows)


def _upgrade(ctx: click.Context, name: str | None, revision: str, sql: bool, lock_timeout: float | None, as_json: bool) -> None:
    """migrate and upgrade-all: one plan, run or (with --sql) printed."""
    manager = _manager(ctx, lock_timeout)
    if sql:
        click.echo(manager.upgrade_sql(name, revision), nl=False)
        return
    _print_outcomes(manager.upgrade(name, revision), as_json)


@click.command()
@click.argument("name")
@click.option("--revision", default="head", show_default=True, help="Revision to upgrade to.")
@_writing_options
@_json_option
@click.pass_context
@fails_cleanly
def migrate(ctx: click.Context, name: str, revision: str, sql: bool, lock_timeout: float | None, as_json: bool) -> None:
    """Upgrade plugin NAME (after the plugins it depends on)."""
    _upgrade(ctx, name, revision, sql, lock_timeout, as_json)


@click.command("upgrade-all")
@_writing_options
@_json_option
@click.pass_context
@fails_cleanly
def upgrade_all(ctx: click.Context, sql: bool, lock_timeout: float | None, as_json: bool) -> None:
    """Run every plugin's pending migrations, dependencies first."""
    _upgrade(ctx, None, "head", sql, lock_timeout, as_json)


@click.command()
@click.argument("name")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Drop tables and columns that hold data without asking (for scripts).")
@_writing_options
@click.pass_context
@fails_cleanly
def downgrade(ctx: click.Context, name: str, revision: str, yes: bool, sql: bool, lock_timeout: float | None) -> None:
    """Downgrade plugin NAME to REVISION (use "base" to remove it); asks before dropping data."""
    manager = _manager(ctx, lock_timeout)
    if sql:
        click.echo(manager.downgrade_sql(name, revision), nl=False)
        return

    def confirm(plugin: str, at_risk: list[str]) -> bool:
        if yes:
            return True
        for kind, columns in (("tables", False), ("columns", True)):  # a column is named "table.column"
            if items := [item for item in at_risk if ("." in item) is columns]:
                click.echo(f'Downgrading "{plugin}" to {revision} drops these {kind} and their data: {", ".join(items)}',
                           err=True)
        try:
            return click.confirm("Drop them?", default=False, err=True)
        except click.Abort:  # nobody to answer (closed stdin, Ctrl-C): the safe answer is no
            click.echo(err=True)
            return False

    outcome = manager.downgrade(name, revision, confirm)
    if outcome.status is Status.ABORTED:
        raise click.ClickException(f'downgrade of "{name}" aborted; nothing was changed (pass --yes to drop them)')
    dropped = f"; dropped {', '.join(outcome.dropped)}" if outcome.dropped else ""
    click.echo(f"{name}: {outcome.from_revision or 'base'} -> {outcome.to_revision or 'base'}{dropped}")


@click.command()
@click.argument("name")
@click.pass_context
@fails_cleanly
def history(ctx: click.Context, name: str) -> None:
    """Show plugin NAME's revisions, newest first."""
    for revision in _manager(ctx).history(name):
        marks = [mark for mark in ("head", "current") if revision[mark]]
        suffix = f" ({', '.join(marks)})" if marks else ""
        click.echo(f"{revision['down_revision'] or '<base>'} -> {revision['revision']}{suffix}, {revision['message']}")


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
@fails_cleanly
def check(names: tuple[str, ...]) -> None:
    """Fail when models, registry and migrations disagree (no database needed)."""
    try:
        problems = check_chains(Registry.load(), list(names) or None)
    except RegistryError as error:
        problems = [str(error)]
    for problem in problems:
        click.echo(problem)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) between models, registry and migrations, listed above")
    click.echo("models, registry and migrations agree")


@click.command("check-scaffolding")
@click.option("--latest", is_flag=True, help="Also report scaffolds behind the newest template version (exit 2 if that is all).")
@fails_cleanly
def check_scaffolding(latest: bool) -> None:
    """Check that generated files and the registry are what the template generates (needs Copier)."""
    from .scaffolding import check_scaffolding as check

    report = check(latest=latest)
    for finding in report.findings:
        click.echo(finding.render())
    if report.exit_code == 1:
        problems = [f for f in report.findings if not f.only_behind]
        raise click.ClickException(f"{len(problems)} scaffolding problem(s), each with its fix above")
    if report.exit_code == 2:
        click.echo(f"{len(report.findings)} scaffold(s) behind the newest template version", err=True)
        raise SystemExit(2)
    click.echo("scaffolding matches the template")


@click.command("sync-registry")
@fails_cleanly
def sync_registry() -> None:
    """Rewrite registry.json from the plugins' answers files (needs PyYAML, which Copier brings)."""
    from .scaffolding import sync_registry as sync

    click.echo("registry.json rewritten from the answers files" if sync() else "registry.json already matches the answers files")


@click.command("update-scaffolding")
@click.option("--vcs-ref", default=None, help="Template version to update to [default: the newest].")
@fails_cleanly
def update_scaffolding(vcs_ref: str | None) -> None:
    """copier update the host, then every plugin, one commit each; stops at the first conflict."""
    from .scaffolding import update_scaffolding as update

    changed = update(vcs_ref=vcs_ref, echo=click.echo)
    click.echo(f"{changed} scaffold(s) updated and committed")


COMMANDS = [
    list_plugins,
    status,
    migrate,
    upgrade_all,
    downgrade,
    history,
    revision,
    stamp,
    freeze_baseline,
    check,
    check_scaffolding,
    sync_registry,
    update_scaffolding,
]


def make_cli(app: Any = None) -> click.Group:
    """The ``plugin`` command group; with a Flask ``app``, its database is the default one."""

    @click.group("plugin", commands=COMMANDS)
    @click.pass_context
    def plugin(ctx: click.Context) -> None:
        """Per-plugin database migrations: one Alembic chain per plugin."""
        ctx.obj = app

    return plugin
