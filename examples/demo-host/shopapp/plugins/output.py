"""What the commands print: tables, upgrade outcomes and their summary, and runs over many databases."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from .outcomes import UPGRADE_STATUSES, Outcome, Status

if TYPE_CHECKING:
    from .fleet import DatabaseRun


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    for row in [headers, *rows]:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def print_outcomes(outcomes: dict[str, Outcome], as_json: bool = False) -> None:
    """Print upgrade outcomes (a table and a summary line, or JSON), and fail when any plugin failed."""
    if as_json:
        click.echo(json.dumps({name: outcome.as_dict() for name, outcome in outcomes.items()}, indent=2))
    else:
        print_table(["plugin", "result", "detail"], [[name, o.status, o.detail()] for name, o in outcomes.items()])
        click.echo(summary([outcome.status for outcome in outcomes.values()]))
    failed = [f'plugin "{name}" failed: {o.error}' for name, o in outcomes.items() if o.status is Status.FAILED]
    skipped = [name for name, o in outcomes.items() if o.status is Status.SKIPPED]
    if failed:
        skipped_note = f"; skipped as their dependencies failed: {', '.join(skipped)}" if skipped else ""
        raise click.ClickException("; ".join(failed) + skipped_note + "; fix and run the command again")


def summary(statuses: Sequence[str]) -> str:
    """"6 plugins: 4 installed, 2 current"."""
    counts = {status: sum(s == status for s in statuses) for status in UPGRADE_STATUSES}
    plugins = "plugin" if len(statuses) == 1 else "plugins"
    return f"{len(statuses)} {plugins}: " + ", ".join(f"{n} {status}" for status, n in counts.items() if n)


def print_runs(runs: Sequence[DatabaseRun], as_json: bool, what: str) -> None:
    """One line per database (or JSON), a closing count, and a failure naming every database that failed."""
    if as_json:
        click.echo(json.dumps({run.url: run.results if run.error is None else {"error": run.error} for run in runs}, indent=2))
    else:
        for run in runs:
            _print_run(run)
    failed = [run for run in runs if run.failed]
    if not as_json:
        click.echo(f"{len(runs)} databases: {len(runs) - len(failed)} {what}, {len(failed)} failed")
    if failed:
        reasons = "; ".join(f"{run.url} ({run.error or _failed_plugins(run)})" for run in failed)
        raise click.ClickException(f"{len(failed)} of {len(runs)} databases failed: {reasons}; fix and run the command again")


def _print_run(run: DatabaseRun) -> None:
    if run.error is not None:
        click.echo(f"{run.url}: failed: {run.error}")
    elif isinstance(run.results, dict):  # upgrade results
        click.echo(f"{run.url}: {summary([result['status'] for result in run.results.values()])}")
    else:  # statuses
        click.echo(f"== {run.url}")
        print_statuses(run.results)


def print_statuses(statuses: Sequence[dict[str, Any]]) -> None:
    """The status table; a plugin whose version table is not one revision shows "?" and its problem below."""
    rows = [
        [s["name"], s["current"] or ("?" if s["problem"] else "-"), s["head"] or "-", "?" if s["problem"] else str(len(s["pending"]))]
        for s in statuses
    ]
    print_table(["plugin", "current", "head", "pending"], rows)
    for s in statuses:
        if s["problem"]:
            click.echo(f'plugin "{s["name"]}": {s["problem"]}')
        for dependency in s.get("revision_dependencies", ()):
            click.echo(f"{s['name']}: {dependency}")


def _failed_plugins(run: DatabaseRun) -> str:
    assert isinstance(run.results, dict)
    return "; ".join(
        f'plugin "{name}" failed: {result["error"]}' for name, result in run.results.items() if result["status"] == "failed"
    )
