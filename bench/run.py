"""Benchmarks of the commands a host with many plugins runs on every CI run and deploy.

    python3 dev.py bench [--quick] [--runs N] [--json FILE]

Each measurement runs the command as a user would (a new process, from the
host's root) next to what the user would otherwise run, alternating the two,
and prints the median, min and max of each and their ratio (ours / baseline).
`--quick` uses tiny hosts and one run of each: the test suite runs it so that
every measurement keeps working; its times mean nothing.

PostgreSQL comes from PLUGIN_MIGRATIONS_TEST_PG_URL (``dev.py bench`` starts
a throwaway server, as ``dev.py test`` does). Child processes write bytecode
caches, as a deployed application would have them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent
# bench/ for hosts; the repository root for tests.helpers, whose template snapshot the tests use too.
sys.path[:0] = [str(HERE), str(REPOSITORY)]

import hosts  # noqa: E402
from tests.helpers import snapshot_template  # noqa: E402

PG_URL_VARIABLE = "PLUGIN_MIGRATIONS_TEST_PG_URL"
REVISIONS = 10
PLUGIN_CLI = [sys.executable, "-m", f"{hosts.HOST_PACKAGE}.plugins"]
COPIER = [sys.executable, "-m", "copier"]
ALEMBIC = [sys.executable, "-m", "alembic"]

#: What a user without this template runs to install every plugin on an
#: empty database: create_all() from the models, then stamp each plugin's chain.
CREATE_ALL_AND_STAMP = f"""
import os, sys
sys.path.insert(0, os.getcwd())
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool
from {hosts.HOST_PACKAGE}.plugins.metadata import load_metadata
from {hosts.HOST_PACKAGE}.plugins.registry import Registry
registry = Registry.load()
engine = create_engine(os.environ["DATABASE_URL"], poolclass=pool.NullPool)
load_metadata(registry).create_all(engine)
engine.dispose()
for entry in registry.entries.values():
    command.stamp(Config(str(entry.alembic_ini)), "head")
"""


@dataclass(frozen=True)
class Settings:
    copy_runs: int
    check_sizes: tuple[int, ...]
    naive_runs: int
    upgrade_sizes: tuple[int, ...]
    fresh_size: int
    runs: int

    @property
    def host_sizes(self) -> list[int]:
        return sorted({*self.check_sizes, *self.upgrade_sizes, self.fresh_size})


FULL = Settings(copy_runs=7, check_sizes=(5, 50, 200), naive_runs=3, upgrade_sizes=(5, 50, 200), fresh_size=50, runs=5)
QUICK = Settings(copy_runs=1, check_sizes=(2,), naive_runs=1, upgrade_sizes=(2,), fresh_size=2, runs=1)


@dataclass
class Sample:
    seconds: float
    peak_rss_kib: int


@dataclass
class Row:
    """One line of the table: our command and its baseline, measured alternately."""

    measurement: str
    case: str
    ours_label: str
    baseline_label: str
    size: int = 0
    ours: list[Sample] = field(default_factory=list)
    baseline: list[Sample] = field(default_factory=list)
    target: str = ""
    met: bool | None = None

    def median(self, which: str) -> float:
        return statistics.median(sample.seconds for sample in getattr(self, which))

    @property
    def ratio(self) -> float:
        return self.median("ours") / self.median("baseline")


class BenchError(Exception):
    pass


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**environment, **(extra or {})}


def run_child(command: list[str], cwd: Path, environment: dict[str, str] | None = None) -> Sample:
    """Run one process to completion: its wall time and peak resident memory (see spawn.py)."""
    with tempfile.TemporaryDirectory() as folder:
        result, output = Path(folder) / "result.json", Path(folder) / "output.txt"
        with output.open("wb") as stream:
            completed = subprocess.run(
                [sys.executable, "-S", str(HERE / "spawn.py"), str(result), "--", *command],
                cwd=cwd,
                env=child_environment(environment),
                stdin=subprocess.DEVNULL,
                stdout=stream,
                stderr=subprocess.STDOUT,
            )
        if completed.returncode != 0:
            text = output.read_text(errors="replace")
            raise BenchError(f"{' '.join(command)} exited {completed.returncode} in {cwd}:\n{text[-3000:]}")
        return Sample(**json.loads(result.read_text()))


def expect_output(command: list[str], cwd: Path, environment: dict[str, str], expected: str) -> None:
    """Run command and check that its output says ``expected``: the measured state is what it should be."""
    completed = subprocess.run(
        command, cwd=cwd, env=child_environment(environment), stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    output = completed.stdout + completed.stderr
    if completed.returncode != 0 or expected not in output:
        raise BenchError(f"{' '.join(command)} in {cwd} should say {expected!r}:\n{output[-3000:]}")


def run_loop(commands: list[list[str]], cwd: Path, then: Callable[[], None] | None = None) -> Sample:
    """Several processes one after another, timed as one (a shell loop)."""
    start = time.perf_counter()
    for command in commands:
        completed = subprocess.run(
            command, cwd=cwd, env=child_environment(), stdin=subprocess.DEVNULL, capture_output=True, text=True
        )
        if completed.returncode != 0:
            raise BenchError(f"{' '.join(command)} exited {completed.returncode} in {cwd}:\n{completed.stdout[-3000:]}")
    if then is not None:
        then()
    return Sample(time.perf_counter() - start, 0)


def alternate(
    row: Row,
    runs: int,
    ours: Callable[[], Sample],
    baseline: Callable[[], Sample],
) -> Row:
    """Measure ours and the baseline ``runs`` times each, taking turns at going first."""
    for run in range(runs):
        pair = [("ours", ours), ("baseline", baseline)]
        for which, measure in pair if run % 2 == 0 else reversed(pair):
            getattr(row, which).append(measure())
    progress(row)
    return row


def progress(row: Row) -> None:
    print(
        f"  {row.measurement} [{row.case}]: ours {row.median('ours'):.3f} s, "
        f"baseline {row.median('baseline'):.3f} s, ratio {row.ratio:.3f}",
        flush=True,
    )


# -- databases -----------------------------------------------------------------


class Databases:
    """Empty databases on demand: SQLite files, or PostgreSQL databases dropped at the end."""

    def __init__(self, folder: Path, pg_url: str | None) -> None:
        self.folder = folder
        self.pg_url = pg_url
        self.created: list[str] = []

    def new(self, backend: str) -> str:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        if backend == "sqlite":
            return f"sqlite:///{self.folder / (name + '.sqlite3')}"
        with self._admin() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return sa.make_url(self.pg_url).set(database=name).render_as_string(hide_password=False)

    @contextmanager
    def _admin(self) -> Iterator[sa.Connection]:
        engine = sa.create_engine(self.pg_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                yield connection
        finally:
            engine.dispose()

    def drop_all(self) -> None:
        if self.created:
            with self._admin() as connection:
                for name in self.created:
                    connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the measurements ------------------------------------------------------------

MINIMAL_TEMPLATE = {
    "copier.yml": "name:\n  type: str\n  default: world\n",
    "hello.txt.jinja": "Hello {{ name }}!\n",
}


def minimal_template(folder: Path) -> Path:
    """A one-question, one-file Copier template without tasks, as a tagged git repository."""
    folder.mkdir()
    for name, text in MINIMAL_TEMPLATE.items():
        (folder / name).write_text(text)
    hosts.git(folder, "init", "-q")
    hosts.commit_all(folder, "minimal")
    hosts.git(folder, "tag", "v1.0.0")
    return folder


def measure_copy(settings: Settings, template: Path, host: Path, work: Path) -> Row:
    """1. `copier copy` of the plugin scope into a host vs of a minimal template."""
    row = Row(
        "1 add a plugin",
        f"into a {len(hosts.plugin_folders(host))}-plugin host",
        "copier copy (plugin scope)",
        "copier copy (1-file template)",
        target="ratio <= 1.5",
    )
    minimal = minimal_template(work / "minimal-template")
    counter = iter(range(1_000_000))

    def fresh_host() -> Path:
        dest = work / f"copy-{next(counter)}"
        shutil.copytree(host, dest, symlinks=True)
        return dest

    def ours() -> Sample:
        dest = fresh_host()
        return run_child(
            [
                *COPIER,
                "copy",
                "--trust",
                "--defaults",
                "--quiet",
                "-d",
                "plugin_name=added",
                "-d",
                "tables=[added_item]",
                str(template),
                ".",
            ],
            dest,
        )

    def baseline() -> Sample:
        dest = fresh_host()
        return run_child([*COPIER, "copy", "--defaults", "--quiet", str(minimal), "."], dest)

    alternate(row, settings.copy_runs, ours, baseline)
    row.met = row.ratio <= 1.5
    return row


def measure_checks(settings: Settings, host_by_size: dict[int, Path]) -> list[Row]:
    """2. `check-scaffolding` vs `copier recopy --vcs-ref=:current:` per answers file, then git status."""
    rows = []
    for size in settings.check_sizes:
        host = host_by_size[size]
        row = Row(
            "2 regeneration check",
            f"{size} plugins",
            "plugins check-scaffolding",
            "copier recopy per answers file + git status",
        )

        def naive(host: Path = host) -> Sample:
            def clean() -> None:
                changed = hosts.git(host, "status", "--porcelain")
                if changed:
                    raise BenchError(f"copier recopy changed {host.name}:\n{changed}")

            commands = [
                [
                    *COPIER,
                    "recopy",
                    "--trust",
                    "--defaults",
                    "--overwrite",
                    "--quiet",
                    "--vcs-ref=:current:",
                    "-a",
                    answers.name,
                    ".",
                ]
                for answers in sorted(host.glob(".copier-answers*.yml"))
            ]
            return run_loop(commands, host, then=clean)

        for run in range(max(settings.runs, settings.naive_runs)):
            row.ours.append(run_child([*PLUGIN_CLI, "check-scaffolding"], host))
            # The loop takes minutes beyond 50 plugins, and is over 10x slower: one run there.
            if run < (settings.naive_runs if size <= 50 else 1):
                row.baseline.append(naive())
        progress(row)
        if size == 50:
            row.target, row.met = "ratio <= 0.1 (10x faster)", row.ratio <= 0.1
        if size == 200:
            row.target, row.met = "ours < 15 s", row.median("ours") < 15
        rows.append(row)
    return rows


def measure_noop_upgrades(
    settings: Settings, host_by_size: dict[int, Path], databases: Databases, work: Path
) -> list[Row]:
    """3 and 5. `upgrade-all` with every plugin at head vs `alembic upgrade heads` in one environment."""
    rows = []
    for backend in ("sqlite", "postgresql"):
        smallest: Row | None = None
        for size in settings.upgrade_sizes:
            host = host_by_size[size]
            ours_url, single_url = databases.new(backend), databases.new(backend)
            ini = hosts.write_single_environment(work / f"single-env-{size}", host, size)
            run_child([*PLUGIN_CLI, "upgrade-all"], host, {"DATABASE_URL": ours_url})
            # One environment cannot order the chains by the plugins' depends_on
            # (its revisions would need cross-branch depends_on), so its database
            # gets the same tables and then every head stamped into alembic_version.
            run_child([*PLUGIN_CLI, "upgrade-all"], host, {"DATABASE_URL": single_url})
            run_child([*ALEMBIC, "-c", str(ini), "stamp", "heads"], host, {"DATABASE_URL": single_url})
            expect_output([*PLUGIN_CLI, "upgrade-all"], host, {"DATABASE_URL": ours_url}, f"{size} current")
            expect_output(
                [*ALEMBIC, "-c", str(ini), "current"],
                host,
                {"DATABASE_URL": single_url},
                f"{hosts.revision_id(size, REVISIONS)} (head)",
            )
            row = Row(
                "3 upgrade, nothing to do",
                f"{size} plugins x {REVISIONS} revisions, {backend}",
                "plugins upgrade-all",
                "alembic upgrade heads (one environment)",
                size,
            )
            alternate(
                row,
                settings.runs,
                lambda host=host, url=ours_url: run_child([*PLUGIN_CLI, "upgrade-all"], host, {"DATABASE_URL": url}),
                lambda host=host, url=single_url, ini=ini: run_child(
                    [*ALEMBIC, "-c", str(ini), "upgrade", "heads"], host, {"DATABASE_URL": url}
                ),
            )
            row.target, row.met = "ratio <= 1.0", row.ratio <= 1.0
            if smallest is None:
                smallest = row
            else:
                # Per plugin: the growth from the smallest host, so that start-up is not counted.
                per_plugin = (row.median("ours") - smallest.median("ours")) / (size - smallest.size)
                row.target += f"; {per_plugin * 1000:.1f} ms/plugin < 10"
                row.met = row.met and per_plugin < 0.010
            rows.append(row)
            if size == max(settings.upgrade_sizes):
                rows.append(
                    Row(
                        "5 memory: peak RSS",
                        f"upgrade-all, {size} plugins, {backend}",
                        "plugins upgrade-all",
                        "alembic upgrade heads (one environment)",
                        ours=row.ours,
                        baseline=row.baseline,
                        target="reported",
                    )
                )
    return rows


def measure_fresh_installs(settings: Settings, host_by_size: dict[int, Path], databases: Databases) -> list[Row]:
    """4. `upgrade-all` on an empty database vs create_all() and a stamp per chain."""
    rows = []
    size = settings.fresh_size
    host = host_by_size[size]
    for backend in ("sqlite", "postgresql"):
        row = Row(
            "4 fresh install",
            f"{size} plugins x {REVISIONS} revisions, {backend}",
            "plugins upgrade-all",
            "create_all() + alembic stamp per plugin",
            target="ratio <= 1.5",
        )
        alternate(
            row,
            settings.runs,
            lambda backend=backend: run_child(
                [*PLUGIN_CLI, "upgrade-all"], host, {"DATABASE_URL": databases.new(backend)}
            ),
            lambda backend=backend: run_child(
                [sys.executable, "-c", CREATE_ALL_AND_STAMP], host, {"DATABASE_URL": databases.new(backend)}
            ),
        )
        row.met = row.ratio <= 1.5
        rows.append(row)
    return rows


# -- report ----------------------------------------------------------------------


def seconds(samples: list[Sample]) -> str:
    values = [sample.seconds for sample in samples]
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def memory(samples: list[Sample]) -> str:
    values = [sample.peak_rss_kib / 1024 for sample in samples]
    return f"{statistics.median(values):.1f} MiB ({min(values):.1f}-{max(values):.1f})"


def table(rows: list[Row]) -> str:
    header = ["measurement", "case", "ours: median (min-max)", "baseline: median (min-max)", "ratio", "target", "met"]
    lines = []
    for row in rows:
        is_memory = row.measurement.startswith("5")
        if is_memory:
            ours, baseline = memory(row.ours), memory(row.baseline)
            ratio = f"{statistics.median(s.peak_rss_kib for s in row.ours) / statistics.median(s.peak_rss_kib for s in row.baseline):.2f}"
        else:
            ours, baseline, ratio = seconds(row.ours), seconds(row.baseline), f"{row.ratio:.2f}"
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        lines.append([row.measurement, row.case, ours, baseline, ratio, row.target, met])
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]

    def render(cells: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    return "\n".join([render(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(render, lines)])


def machine() -> str:
    return f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {sys.platform}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny hosts, one run each (what the test suite runs)")
    parser.add_argument("--runs", type=int, help="runs of each command (default 5; quick 1)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    options = parser.parse_args(argv)
    settings = QUICK if options.quick else FULL
    if options.runs:
        settings = Settings(**{**asdict(settings), "runs": options.runs, "copy_runs": max(options.runs, 1)})
    pg_url = os.environ.get(PG_URL_VARIABLE)
    if not pg_url:
        print(f"bench: set {PG_URL_VARIABLE} or run `python3 dev.py bench`, which starts PostgreSQL", file=sys.stderr)
        return 2

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="plugin-migrations-bench-") as folder:
        work = Path(folder)
        databases = Databases(work, pg_url)
        try:
            print(f"bench: building hosts with {', '.join(map(str, settings.host_sizes))} plugins ...", flush=True)
            template = snapshot_template(REPOSITORY, work / "template")
            host_by_size = hosts.build_hosts(work / "hosts", str(template), settings.host_sizes, REVISIONS)
            rows = [measure_copy(settings, template, host_by_size[min(settings.check_sizes)], work)]
            rows += measure_checks(settings, host_by_size)
            rows += measure_noop_upgrades(settings, host_by_size, databases, work)
            rows += measure_fresh_installs(settings, host_by_size, databases)
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
