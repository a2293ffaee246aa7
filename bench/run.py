"""Benchmarks of the commands a host with many plugins runs on every CI run and deploy.

    python3 dev.py bench [--quick] [--only daily|fleet|squash] [--runs N] [--json FILE]

Each measurement runs the command as a user would (a new process, from the
host's root) next to what the user would otherwise run, alternating the two,
and prints the median, min and max of each and their ratio (ours / baseline).
`--quick` uses tiny hosts and one run of each: the test suite runs it so that
every measurement keeps working; its times mean nothing.

The groups: ``daily`` (daily.py: adding a plugin, the regeneration check, a
no-op upgrade, a fresh install, memory), ``fleet`` (fleet.py: one command
over many databases) and ``squash`` (squashed.py: a squashed long chain
against a short one).

PostgreSQL comes from PLUGIN_MIGRATIONS_TEST_PG_URL (``dev.py bench`` starts
a throwaway server, as ``dev.py test`` does). Child processes write bytecode
caches, as a deployed application would have them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent
# bench/ for its modules; the repository root for tests.helpers, whose template snapshot the tests use too.
sys.path[:0] = [str(HERE), str(REPOSITORY)]

import daily  # noqa: E402
import fleet  # noqa: E402
import squashed  # noqa: E402
from measure import BenchError, Databases, Row, machine, table  # noqa: E402
from tests.helpers import snapshot_template  # noqa: E402

PG_URL_VARIABLE = "PLUGIN_MIGRATIONS_TEST_PG_URL"
GROUPS = ("daily", "fleet", "squash")


def run_groups(
    groups: list[str], quick: bool, runs: int | None, work: Path, databases: Databases, max_plugins: int | None = None
) -> list[Row]:
    template = snapshot_template(REPOSITORY, work / "template")
    rows: list[Row] = []
    if "daily" in groups:
        settings = daily.QUICK if quick else daily.FULL
        if runs:
            settings = replace(settings, runs=runs, copy_runs=runs)
        if max_plugins:
            settings = replace(
                settings,
                check_sizes=tuple(size for size in settings.check_sizes if size <= max_plugins),
                upgrade_sizes=tuple(size for size in settings.upgrade_sizes if size <= max_plugins),
                fresh_size=min(settings.fresh_size, max_plugins),
            )
        rows += daily.measure(settings, template, work / "daily", databases)
    if "fleet" in groups:
        settings = fleet.QUICK if quick else fleet.FULL
        rows += fleet.measure(replace(settings, runs=runs) if runs else settings, template, work / "fleet", databases)
    if "squash" in groups:
        settings = squashed.QUICK if quick else squashed.FULL
        rows += squashed.measure(replace(settings, runs=runs) if runs else settings, template, work / "squash",
                                 databases)
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny hosts, one run each (what the test suite runs)")
    parser.add_argument("--only", choices=GROUPS, action="append", help="run only this group (repeatable)")
    parser.add_argument("--runs", type=int, help="runs of each command (default: each group's own)")
    parser.add_argument("--max-plugins", type=int, help="leave out the daily hosts larger than this (1,000 takes ~10 min to build)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    options = parser.parse_args(argv)
    pg_url = os.environ.get(PG_URL_VARIABLE)
    if not pg_url:
        print(f"bench: set {PG_URL_VARIABLE} or run `python3 dev.py bench`, which starts PostgreSQL", file=sys.stderr)
        return 2

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="plugin-migrations-bench-") as folder:
        work = Path(folder)
        databases = Databases(work, pg_url)
        try:
            rows = run_groups(options.only or list(GROUPS), options.quick, options.runs, work, databases, options.max_plugins)
        except BenchError as error:
            print(f"bench: {error}", file=sys.stderr)
            return 1
        finally:
            databases.drop_all()

    print(
        f"\nplugin-migrations benchmarks ({'quick' if options.quick else 'full'}; {machine()}; "
        f"{time.perf_counter() - started:.0f} s)\n"
    )
    print(table(rows))
    if options.json:
        options.json.write_text(json.dumps([asdict(row) for row in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
