"""What every benchmark shares: run a command as a user would, alternate it with its baseline, print the table.

Each sample is one new process started from the host's root (through
spawn.py, for its peak memory); ours and the baseline take turns, and which
goes first alternates, so a slow stretch of the machine hits both.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent


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
        """ours / baseline; NaN when the baseline was not run (too slow at that size: see the row's target)."""
        if not self.baseline:
            return float("nan")
        return self.median("ours") / self.median("baseline")

    @property
    def memory_ratio(self) -> float:
        ours, baseline = (statistics.median(s.peak_rss_kib for s in getattr(self, w)) for w in ("ours", "baseline"))
        return ours / baseline


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
    baseline = f"{row.median('baseline'):.3f} s" if row.baseline else "not run"
    print(
        f"  {row.measurement} [{row.case}]: ours {row.median('ours'):.3f} s, baseline {baseline}, ratio {row.ratio:.3f}",
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
            ours, baseline, ratio = memory(row.ours), memory(row.baseline), f"{row.memory_ratio:.2f}"
        elif not row.baseline:
            ours, baseline, ratio = seconds(row.ours), "not run", "-"
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


