"""The benchmarks keep working: `bench/run.py --quick` runs every measurement once.

Its times are not asserted (a test suite is no place to judge speed); the
figures and the targets are in bench/README.md, from the full run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .helpers import TEMPLATE, require_postgresql, run

EXPECTED = {
    ("1 add a plugin", "into a 2-plugin host"),
    ("2 regeneration check", "2 plugins"),
    ("3 upgrade, nothing to do", "2 plugins x 10 revisions, sqlite"),
    ("3 upgrade, nothing to do", "2 plugins x 10 revisions, postgresql"),
    ("3b status", "2 plugins x 10 revisions, sqlite"),
    ("3b status", "2 plugins x 10 revisions, postgresql"),
    ("5 memory: peak RSS", "upgrade-all, 2 plugins, sqlite"),
    ("5 memory: peak RSS", "upgrade-all, 2 plugins, postgresql"),
    *(
        ("4 fresh install", f"2 plugins x 10 revisions, {backend}, {how}")
        for backend in ("sqlite", "postgresql")
        for how in ("every revision run", "--install-from-models")
    ),
    *(
        (f"6 fleet, {what}", f"{size} {backend} databases x 2 plugins{jobs}")
        for what in ("fresh install", "nothing to do")
        for backend, size in (("sqlite", 3), ("postgresql", 2))
        for jobs in ("", ", --jobs 2")
    ),
    *(
        ("7 fresh install, squashed", f"2 plugins: 5 revisions {how} vs 2, {backend}")
        for how in ("squashed", "squashed and pruned")
        for backend in ("sqlite", "postgresql")
    ),
}


def test_the_quick_benchmark_runs_every_measurement(tmp_path: Path) -> None:
    rows_file = tmp_path / "rows.json"
    result = run([sys.executable, "bench/run.py", "--quick", "--json", str(rows_file)], TEMPLATE,
                 {"PLUGIN_MIGRATIONS_TEST_PG_URL": require_postgresql()})
    assert result.returncode == 0, result.stdout + result.stderr

    rows = json.loads(rows_file.read_text())
    assert {(row["measurement"], row["case"]) for row in rows} == EXPECTED
    for row in rows:
        assert len(row["ours"]) == len(row["baseline"]) == 1, row
        for sample in row["ours"] + row["baseline"]:
            assert sample["seconds"] > 0, row
        if row["measurement"].startswith("5"):
            assert min(sample["peak_rss_kib"] for sample in row["ours"] + row["baseline"]) > 0, row
    table = result.stdout[result.stdout.index("| measurement"):].splitlines()
    assert len(table) == 2 + len(EXPECTED), result.stdout
