"""The commands that keep the scaffolding: they need Copier (or PyYAML), never a database.

Their modules are imported only when one of them runs, so the database
commands never pay for Copier's stack.
"""

from __future__ import annotations

import click

from .cli_options import fails_cleanly


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
    """Rewrite the registry.json index from the plugins' plugin.json files (and older plugins' answers files)."""
    from .scaffolding import sync_registry as sync

    click.echo("registry.json rewritten from the plugins' plugin.json files" if sync() else "registry.json already matches the plugins' plugin.json files")


@click.command("update-scaffolding")
@click.option("--vcs-ref", default=None, help="Template version to update to [default: the newest].")
@fails_cleanly
def update_scaffolding(vcs_ref: str | None) -> None:
    """copier update the host, then every plugin, one commit each; stops at the first conflict."""
    from .updating import update_scaffolding as update

    changed = update(vcs_ref=vcs_ref, echo=click.echo)
    click.echo(f"{changed} scaffold(s) updated and committed")


SCAFFOLDING_COMMANDS = [check_scaffolding, sync_registry, update_scaffolding]
