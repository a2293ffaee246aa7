"""The plugin commands, one set behind two doors.

``python -m <host>.plugins COMMAND`` reads the database from DATABASE_URL;
``flask --app APP plugin COMMAND`` (after ``init_app(app)``) from the app.
Each command is a thin delegation to PluginManager; every failure becomes one
``Error: ...`` line on stderr and exit status 1.
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
from .registry import PluginMigrationError, RegistryError, error_summary

DatabaseUrl = Callable[[], "str | None"]


def _fails_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can act on into click's one-line ``Error: ...`` and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (PluginMigrationError, CommandError) as error:
            raise click.ClickException(str(error)) from None
        except SQLAlchemyError as error:
            raise click.ClickException(f"database error: {error_summary(error)}") from None

    return wrapper


def _manager(ctx: click.Context, lock_timeout: float | None = None) -> PluginManager:
    database_url: DatabaseUrl = ctx.obj
    manager = PluginManager(database_url(), lock_timeout=lock_timeout)
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


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    for row in [headers, *rows]:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


#: Upgrade outcomes, in the order the summary line counts them.
OUTCOMES = ("installed", "adopted", "upgraded", "current", "failed", "skipped")


def _detail(result: dict[str, Any]) -> str:
    status = result["status"]
    if status in ("installed", "adopted"):
        return f"{status} at {result['to']}"
    if status == "upgraded":
        return f"{result['from']} -> {result['to']}"
    if status == "current":
        return result["to"] or "-"
    return result["error"] or "-"


def _print_results(results: dict[str, dict[str, Any]]) -> None:
    """Print upgrade results, a summary line, and fail when any plugin failed."""
    _print_table(["plugin", "result", "detail"], [[name, r["status"], _detail(r)] for name, r in results.items()])
    counts = {status: sum(r["status"] == status for r in results.values()) for status in OUTCOMES}
    plugins = "plugin" if len(results) == 1 else "plugins"
    click.echo(f"{len(results)} {plugins}: " + ", ".join(f"{n} {status}" for status, n in counts.items() if n))
    failed = [f'plugin "{name}" failed: {result["error"]}' for name, result in results.items() if result["status"] == "failed"]
    skipped = [name for name, result in results.items() if result["status"] == "skipped"]
    if failed:
        skipped_note = f"; skipped as their dependencies failed: {', '.join(skipped)}" if skipped else ""
        raise click.ClickException("; ".join(failed) + skipped_note + "; fix and run the command again")


@click.command("list")
@_fails_cleanly
def list_plugins() -> None:
    """List registered plugins, their tables and dependencies (no database needed)."""
    manager = PluginManager()
    rows = [
        [name, ", ".join(manager.plugins[name].tables), ", ".join(manager.plugins[name].depends_on) or "-"]
        for name in manager.order
    ]
    _print_table(["plugin", "tables", "depends on"], rows)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
@_fails_cleanly
def status(ctx: click.Context, as_json: bool) -> None:
    """Show each plugin's current revision, head and pending revisions."""
    statuses = _manager(ctx).status()
    if as_json:
        click.echo(json.dumps([plugin.as_dict() for plugin in statuses], indent=2))
        return
    rows = [[s.name, s.current or "-", s.head or "-", str(len(s.pending))] for s in statuses]
    _print_table(["plugin", "current", "head", "pending"], rows)


@click.command()
@click.argument("name")
@click.option("--revision", default="head", show_default=True, help="Revision to upgrade to.")
@_writing_options
@click.pass_context
@_fails_cleanly
def migrate(ctx: click.Context, name: str, revision: str, sql: bool, lock_timeout: float | None) -> None:
    """Upgrade plugin NAME (after the plugins it depends on)."""
    manager = _manager(ctx, lock_timeout)
    if sql:
        click.echo(manager.migrate_sql(name, revision), nl=False)
        return
    _print_results(manager.migrate(name, revision))


@click.command("upgrade-all")
@_writing_options
@click.pass_context
@_fails_cleanly
def upgrade_all(ctx: click.Context, sql: bool, lock_timeout: float | None) -> None:
    """Run every plugin's pending migrations, dependencies first."""
    manager = _manager(ctx, lock_timeout)
    if sql:
        click.echo(manager.upgrade_sql(), nl=False)
        return
    _print_results(manager.upgrade_all_plugins())


@click.command()
@click.argument("name")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Drop tables without asking (for scripts).")
@_writing_options
@click.pass_context
@_fails_cleanly
def downgrade(ctx: click.Context, name: str, revision: str, yes: bool, sql: bool, lock_timeout: float | None) -> None:
    """Downgrade plugin NAME to REVISION (use "base" to remove it); asks before dropping tables."""
    manager = _manager(ctx, lock_timeout)
    if sql:
        click.echo(manager.downgrade_sql(name, revision), nl=False)
        return

    def confirm(plugin: str, tables: list[str]) -> bool:
        if yes:
            return True
        click.echo(f'Downgrading "{plugin}" to {revision} drops these tables and their data: {", ".join(tables)}', err=True)
        try:
            return click.confirm("Drop them?", default=False, err=True)
        except click.Abort:  # nobody to answer (closed stdin, Ctrl-C): the safe answer is no
            click.echo(err=True)
            return False

    result = manager.downgrade(name, revision, confirm)
    if result["status"] == "aborted":
        raise click.ClickException(f'downgrade of "{name}" aborted; nothing was changed (pass --yes to drop the tables)')
    dropped = f"; dropped {', '.join(result['dropped'])}" if result["dropped"] else ""
    click.echo(f"{name}: {result['from'] or 'base'} -> {result['to'] or 'base'}{dropped}")


@click.command()
@click.argument("name")
@click.pass_context
@_fails_cleanly
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
@_fails_cleanly
def revision(ctx: click.Context, name: str, message: str, autogenerate: bool) -> None:
    """Write a new revision into plugin NAME's chain (freezing its baseline first when the chain grows)."""
    path = _manager(ctx).revision(name, message, autogenerate)
    click.echo(f"wrote {path}")


@click.command()
@click.argument("name")
@click.argument("revision")
@click.pass_context
@_fails_cleanly
def stamp(ctx: click.Context, name: str, revision: str) -> None:
    """Record REVISION as plugin NAME's current revision without running migrations."""
    result = _manager(ctx).stamp(name, revision)
    click.echo(f"{name}: stamped {result['to'] or 'base'} (was {result['from'] or 'base'})")


@click.command("freeze-baseline")
@click.argument("name")
@click.pass_context
@_fails_cleanly
def freeze_baseline(ctx: click.Context, name: str) -> None:
    """Freeze plugin NAME's baseline from a database at its baseline revision (`revision` does this by itself)."""
    click.echo(f"wrote {_manager(ctx).freeze_baseline(name)}")


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@_fails_cleanly
def check(names: tuple[str, ...]) -> None:
    """Fail when models, registry and migrations disagree (no database needed)."""
    try:
        manager = PluginManager("sqlite://")
    except RegistryError as error:
        problems = [str(error)]
    else:
        try:
            problems = manager.check(list(names) or None)
        finally:
            manager.dispose()
    for problem in problems:
        click.echo(problem)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) between models, registry and migrations, listed above")
    click.echo("models, registry and migrations agree")


@click.command("check-scaffolding")
@click.option("--latest", is_flag=True, help="Also report scaffolds behind the newest template version (exit 2 if that is all).")
@_fails_cleanly
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
@_fails_cleanly
def sync_registry() -> None:
    """Rewrite registry.json from the plugins' answers files (needs PyYAML, which Copier brings)."""
    from .scaffolding import sync_registry as sync

    click.echo("registry.json rewritten from the answers files" if sync() else "registry.json already matches the answers files")


@click.command("update-scaffolding")
@click.option("--vcs-ref", default=None, help="Template version to update to [default: the newest].")
@_fails_cleanly
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


def make_cli(database_url: DatabaseUrl) -> click.Group:
    """The ``plugin`` command group, reading the database from ``database_url()``."""

    @click.group("plugin", commands=COMMANDS)
    @click.pass_context
    def plugin(ctx: click.Context) -> None:
        """Per-plugin database migrations: one Alembic chain per plugin."""
        ctx.obj = database_url

    return plugin
