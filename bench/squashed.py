"""Row 7: a fresh install of plugins whose 50-revision chains are squashed, against plugins with 2-revision chains.

Issue 17's promise for ``squash``: a chain of 50 revisions, squashed, installs
from empty in no more time than a chain of 2. Both hosts have the same
plugins and tables (hosts.py); one grew each chain to 50 revisions and then
ran ``squash NAME`` (the old revisions kept, as right after squashing) and,
in a copy, ``squash NAME --prune``; the other reaches the same schema in 2
revisions (the baseline, then one revision adding the 49 later columns), so
that only the length of the history differs, not what it builds.
The timed command is ``upgrade-all`` on an empty database, as a deploy of a
new site or the host's generated tests run it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import hosts
from measure import BenchError, Databases, Row, alternate, expect_output, run_child

PLUGIN_CLI = [sys.executable, "-m", f"{hosts.HOST_PACKAGE}.plugins"]
SHORT = 2


@dataclass(frozen=True)
class Settings:
    plugins: int
    long: int
    runs: int


FULL = Settings(plugins=20, long=50, runs=5)
QUICK = Settings(plugins=2, long=5, runs=1)


def plugin_command(host: Path, *args: str, url: str) -> None:
    completed = subprocess.run([*PLUGIN_CLI, *args], cwd=host, env={**os.environ, "DATABASE_URL": url},
                               capture_output=True, text=True)
    if completed.returncode != 0:
        raise BenchError(f"plugins {' '.join(args)} exited {completed.returncode}:\n{completed.stdout}{completed.stderr}")


def one_step_to_head(host: Path, plugins: int, long: int) -> None:
    """Give every plugin the long host's models, reached by revision 0002 adding every later column at once."""
    for index in range(1, plugins + 1):
        name, table = hosts.plugin_name(index), hosts.table_name(index)
        folder = host / "plugins" / name
        (folder / "models.py").write_text(hosts.models_source(index, long))
        columns = [hosts.column_name(number) for number in range(SHORT, long + 1)]
        (folder / "migrations" / "versions" / f"0002_{name}_add_{columns[0]}.py").write_text(
            f'"""add {len(columns)} columns"""\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
            f'revision = "0002_{name}"\ndown_revision = "0001_baseline_{name}"\nbranch_labels = None\n'
            "depends_on = None\n\n\ndef upgrade():\n"
            + "".join(f'    op.add_column("{table}", sa.Column("{column}", sa.Integer(), nullable=True))\n'
                      for column in columns)
            + "\n\ndef downgrade():\n"
            + "".join(f'    op.drop_column("{table}", "{column}")\n' for column in reversed(columns))
        )
    hosts.commit_all(host, f"Reach the {long}-revision schema in {SHORT} revisions")


def squash_every_plugin(host: Path, plugins: int, databases: Databases, prune: bool) -> None:
    """``squash NAME`` for every plugin; with ``prune``, then ``squash NAME --prune`` checked against a database at head."""
    at_head = databases.new("sqlite")
    plugin_command(host, "upgrade-all", url=at_head)
    for index in range(1, plugins + 1):
        plugin_command(host, "squash", hosts.plugin_name(index), url=at_head)
        if prune:
            plugin_command(host, "squash", hosts.plugin_name(index), "--prune", url=at_head)
    hosts.commit_all(host, "Squash every chain" + (" and prune" if prune else ""))


def measure(settings: Settings, template: Path, work: Path, databases: Databases) -> list[Row]:
    print(f"bench: building {settings.plugins}-plugin hosts with {settings.long} and {SHORT} revisions ...", flush=True)
    work.mkdir(parents=True)
    short = hosts.build_hosts(work / "short", str(template), [settings.plugins], SHORT)[settings.plugins]
    one_step_to_head(short, settings.plugins, settings.long)
    squashed = hosts.build_hosts(work / "long", str(template), [settings.plugins], settings.long)[settings.plugins]
    squash_every_plugin(squashed, settings.plugins, databases, prune=False)
    pruned = work / "pruned"
    shutil.copytree(squashed, pruned, symlinks=True)
    squash_every_plugin(pruned, settings.plugins, databases, prune=True)
    rows = []
    for backend in ("sqlite", "postgresql"):
        for label, host in (("squashed", squashed), ("squashed and pruned", pruned)):
            # Each install must end at its head and build what the models say: check once, untimed.
            for checked in (host, short):
                url = databases.new(backend)
                plugin_command(checked, "upgrade-all", url=url)
                expect_output([*PLUGIN_CLI, "upgrade-all"], checked, {"DATABASE_URL": url},
                              f"{settings.plugins} plugins: {settings.plugins} current")
                plugin_command(checked, "check", "--database-url", url, url=url)
            row = Row(
                "7 fresh install, squashed",
                f"{settings.plugins} plugins: {settings.long} revisions {label} vs {SHORT}, {backend}",
                f"upgrade-all ({settings.long} revisions, {label})",
                f"upgrade-all ({SHORT} revisions)",
                target="ratio <= 1.0",
            )
            alternate(
                row,
                settings.runs,
                lambda host=host, backend=backend: run_child(
                    [*PLUGIN_CLI, "upgrade-all"], host, {"DATABASE_URL": databases.new(backend)}),
                lambda backend=backend: run_child(
                    [*PLUGIN_CLI, "upgrade-all"], short, {"DATABASE_URL": databases.new(backend)}),
            )
            row.met = row.ratio <= 1.0
            rows.append(row)
    return rows
