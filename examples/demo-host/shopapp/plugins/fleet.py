"""Many databases in one command: the same plugins upgraded (or read) on every site's database.

Sister sites and one-database-per-tenant deployments run one ``upgrade-all``
per database. Each database is independent: its own migration session and
lock, its own outcome; one that fails (unreachable, a plugin failed, another
migrator holds it too long) stops nothing else. ``--jobs N`` runs N databases
at a time in worker processes, not threads: Alembic's ``context`` is one
module-level proxy per process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from . import PluginManager
from .binds import refuse_in_fleet
from .errors import PluginMigrationError, error_summary
from .registry import Registry


def read_urls(values: Iterable[str]) -> list[str]:
    """The URLs given: each value a URL, or ``@FILE`` naming a file of URLs, one per line (# starts a comment)."""
    urls: list[str] = []
    for value in values:
        if not value.startswith("@"):
            urls.append(value)
            continue
        path = Path(value[1:])
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise PluginMigrationError(f"cannot read the database list {path}: {error.strerror or error}") from None
        urls.extend(line.strip() for line in lines if line.strip() and not line.strip().startswith("#"))
    if len(set(urls)) != len(urls):
        duplicates = sorted({shown(url) for url in urls if urls.count(url) > 1})
        raise PluginMigrationError(f"database listed twice: {', '.join(duplicates)}; list each database once")
    return urls


def shown(url: str) -> str:
    """A URL as it may be printed: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1]


@dataclass(frozen=True)
class DatabaseRun:
    """One database's part of a run: its plugins' results (as the contract's dicts), or why it failed as a whole."""

    url: str
    results: dict[str, Any] | list[Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def failed(self) -> bool:
        if self.error is not None:
            return True
        return isinstance(self.results, dict) and any(r["status"] == "failed" for r in self.results.values())


def _upgrade_database(url: str, lock_timeout: float | None, from_models: bool = False) -> DatabaseRun:
    return _run_database(url, lambda: PluginManager(url, lock_timeout).upgrade_all_plugins(from_models=from_models))


def _status_of_database(url: str, lock_timeout: float | None) -> DatabaseRun:
    return _run_database(url, lambda: [status.as_dict() for status in PluginManager(url, lock_timeout).status()])


def _run_database(url: str, work: Callable[[], dict[str, Any] | list[Any]]) -> DatabaseRun:
    try:
        return DatabaseRun(shown(url), work())
    except (PluginMigrationError, SQLAlchemyError) as error:
        return DatabaseRun(shown(url), error=error_summary(error))


def upgrade_many(
    urls: Sequence[str], jobs: int = 1, lock_timeout: float | None = None, from_models: bool = False
) -> list[DatabaseRun]:
    """``upgrade_all_plugins()`` on every database, ``jobs`` at a time; results in the order given."""
    return _each(partial(_upgrade_database, from_models=from_models), urls, jobs, lock_timeout)


def status_many(urls: Sequence[str], jobs: int = 1) -> list[DatabaseRun]:
    """``status()`` of every database, ``jobs`` at a time; results in the order given."""
    return _each(_status_of_database, urls, jobs, None)


def _each(
    work: Callable[[str, float | None], DatabaseRun], urls: Sequence[str], jobs: int, lock_timeout: float | None
) -> list[DatabaseRun]:
    if len(urls) > 1:
        refuse_in_fleet(Registry.load())
    if jobs <= 1 or len(urls) <= 1:
        return [work(url, lock_timeout) for url in urls]
    from concurrent.futures import ProcessPoolExecutor  # multiprocessing's start-up, only for --jobs

    with ProcessPoolExecutor(max_workers=min(jobs, len(urls))) as pool:
        return list(pool.map(work, urls, [lock_timeout] * len(urls)))
