"""The ``squash`` command: a long chain's schema in one file for fresh installs, and pruning the old revisions.

Kept out of ``cli.py`` to keep that file the database command set it is;
the work is in ``squash``.
"""

from __future__ import annotations

from pathlib import Path

import click

from . import PluginManager
from .cli_options import fails_cleanly
from .fleet import read_urls


@click.command("squash")
@click.argument("name")
@click.option("--to", "to", default=None, metavar="REV", help="The revision to squash up to [default: the head].")
@click.option("--prune", is_flag=True, help="Delete the revisions before the squashed one (after every database passed it).")
@click.option(
    "--database-url", "database_urls", multiple=True, metavar="URL",
    help="With --prune: a database that must be at or past the squash (repeat it, or @FILE) [default: the default one].",
)
@click.pass_context
@fails_cleanly
def squash(ctx: click.Context, name: str, to: str | None, prune: bool, database_urls: tuple[str, ...]) -> None:
    """Write plugin NAME's schema at REV as the one step fresh installs take; --prune deletes what it replaces."""
    from .squash import prune as run_prune, write_squash

    manager = PluginManager(app=ctx.obj)
    ctx.call_on_close(manager.dispose)
    if prune:
        if to is not None:
            raise click.UsageError("--prune prunes to the squash already written; give --to when squashing, not with --prune")
        chains = manager.databases.chains_for(name)  # a plugin with a bind: its database is the bind's
        removed = run_prune(chains, name, read_urls(database_urls) or [chains.database.url])
        shown = ", ".join(_shown(path, manager.registry.root) for path in removed)
        click.echo(f"{name}: pruned {len(removed)} file(s): {shown}; its chain now starts at its squash")
        return
    if database_urls:
        raise click.UsageError("--database-url goes with --prune")
    written = write_squash(manager.chains, name, to)
    for warning in written.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"{name}: wrote {_shown(written.path, manager.registry.root)}: fresh installs build the schema at "
        f"{written.revision} instead of running {written.replaced} revision(s)"
    )


def _shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


SQUASH_COMMANDS = [squash]
