"""Row 6: one ``upgrade-all`` over a fleet of databases, serial against ``--jobs 2``, and against a loop.

Sister sites and one-database-per-tenant deployments run the same plugins on
many databases. Before ``--database-url @FILE`` they ran a shell loop, one
``upgrade-all`` process per database; that loop is the baseline of the
serial run, and the serial run is the baseline of ``--jobs 2``. Both a fresh
install (every database empty) and a run with nothing to do (every database
at head) are measured, on SQLite files and on PostgreSQL databases.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import hosts
from measure import Databases, Row, Sample, alternate, expect_output, run_child, run_loop

REVISIONS = 10
PLUGIN_CLI = [sys.executable, "-m", f"{hosts.HOST_PACKAGE}.plugins"]


@dataclass(frozen=True)
class Settings:
    plugins: int
    sqlite_databases: int
    postgresql_databases: int
    runs: int
    loop_runs: int


FULL = Settings(plugins=20, sqlite_databases=100, postgresql_databases=20, runs=3, loop_runs=1)
QUICK = Settings(plugins=2, sqlite_databases=3, postgresql_databases=2, runs=1, loop_runs=1)


class Fleet:
    """Lists of database URLs written to files, as ``--database-url @FILE`` reads them."""

    def __init__(self, folder: Path, databases: Databases, backend: str, size: int) -> None:
        self.folder, self.databases, self.backend, self.size = folder, databases, backend, size
        self.count = 0

    def new(self) -> Path:
        """A file listing ``size`` new, empty databases."""
        self.count += 1
        listing = self.folder / f"{self.backend}-{self.count}.txt"
        listing.write_text("".join(self.databases.new(self.backend) + "\n" for _ in range(self.size)))
        return listing


def upgrade_all(host: Path, listing: Path, jobs: int) -> Sample:
    return run_child([*PLUGIN_CLI, "upgrade-all", "--database-url", f"@{listing}", "--jobs", str(jobs)], host)


def loop(host: Path, listing: Path) -> Sample:
    """What a user ran before: one ``upgrade-all`` process per database."""
    urls = listing.read_text().split()
    return run_loop([[*PLUGIN_CLI, "upgrade-all", "--database-url", url] for url in urls], host)


def measure_backend(settings: Settings, host: Path, fleet: Fleet) -> list[Row]:
    case = f"{fleet.size} {fleet.backend} databases x {settings.plugins} plugins"
    rows = []
    # A fresh install needs empty databases for every sample; a no-op run reuses one fleet brought to head.
    at_head = fleet.new()
    upgrade_all(host, at_head, jobs=2)
    command = [*PLUGIN_CLI, "upgrade-all", "--database-url", f"@{at_head}"]
    expect_output(command, host, {}, f"{settings.plugins} plugins: {settings.plugins} current")
    expect_output(command, host, {}, f"{fleet.size} databases: {fleet.size} succeeded, 0 failed")
    work: dict[str, Callable[[], Path]] = {"fresh install": fleet.new, "nothing to do": lambda: at_head}
    for what, listings in work.items():
        # alternate() runs these before the loop moves on; the default binds them to this turn anyway.
        def listing(listings: Callable[[], Path] = listings) -> Path:
            return listings()

        serial = Row(f"6 fleet, {what}", case, "upgrade-all --database-url @FILE", "one upgrade-all per database")
        alternate(serial, settings.loop_runs, lambda: upgrade_all(host, listing(), 1), lambda: loop(host, listing()))
        serial.target = "reported"
        parallel = Row(f"6 fleet, {what}", f"{case}, --jobs 2", "... --jobs 2", "... --jobs 1 (serial)")
        alternate(parallel, settings.runs, lambda: upgrade_all(host, listing(), 2),
                  lambda: upgrade_all(host, listing(), 1))
        parallel.target, parallel.met = "ratio < 1.0 (2 cores)", parallel.ratio < 1.0
        rows += [serial, parallel]
    return rows


def measure(settings: Settings, template: Path, work: Path, databases: Databases) -> list[Row]:
    print(f"bench: building a {settings.plugins}-plugin host for the fleet ...", flush=True)
    work.mkdir(parents=True)
    host = hosts.build_hosts(work / "hosts", str(template), [settings.plugins], REVISIONS)[settings.plugins]
    rows = []
    for backend, size in (("sqlite", settings.sqlite_databases), ("postgresql", settings.postgresql_databases)):
        rows += measure_backend(settings, host, Fleet(work, databases, backend, size))
    return rows
