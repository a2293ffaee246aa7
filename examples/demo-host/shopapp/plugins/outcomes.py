"""What a command did to each plugin: typed outcomes, printed by the CLI and serialised by ``--json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """What happened to one plugin. Upgrade statuses come first, in the order summaries count them."""

    INSTALLED = "installed"  # an empty database got the whole chain
    ADOPTED = "adopted"  # tables that create_all() built were stamped at head, no DDL
    UPGRADED = "upgraded"
    CURRENT = "current"  # nothing to do
    FAILED = "failed"  # rolled back: schema and version row as they were
    SKIPPED = "skipped"  # a dependency failed or was skipped
    STAMPED = "stamped"
    DOWNGRADED = "downgraded"
    ABORTED = "aborted"  # a downgrade that would drop data was not confirmed


#: Statuses an upgrade can end in, in the order the summary line counts them.
UPGRADE_STATUSES = (Status.INSTALLED, Status.ADOPTED, Status.UPGRADED, Status.CURRENT, Status.FAILED, Status.SKIPPED)


@dataclass(frozen=True)
class Outcome:
    """One plugin's result: its revision before and after, and why it failed or was skipped."""

    plugin: str
    status: Status
    from_revision: str | None = None
    to_revision: str | None = None
    error: str | None = None
    dropped: tuple[str, ...] = field(default=())

    @property
    def succeeded(self) -> bool:
        return self.status not in (Status.FAILED, Status.SKIPPED)

    def as_dict(self) -> dict[str, Any]:
        """The contract's result dict: ``{"from", "to", "status", "error"}``, plus ``"dropped"`` for downgrades."""
        result: dict[str, Any] = {
            "from": self.from_revision,
            "to": self.to_revision,
            "status": self.status.value,
            "error": self.error,
        }
        if self.status in (Status.DOWNGRADED, Status.ABORTED):
            result["dropped"] = list(self.dropped)
        return result

    def detail(self) -> str:
        """The one-line detail the CLI prints beside the status."""
        if self.status in (Status.INSTALLED, Status.ADOPTED):
            return f"{self.status} at {self.to_revision}"
        if self.status is Status.UPGRADED:
            return f"{self.from_revision} -> {self.to_revision}"
        if self.status is Status.CURRENT:
            return self.to_revision or "-"
        return self.error or "-"


@dataclass(frozen=True)
class PluginStatus:
    """Where one plugin's chain stands in the database."""

    name: str
    current: str | None
    head: str | None
    pending: list[str] = field(default_factory=list)
    problem: str | None = None  # the database's state is not one revision of the chain
    revision_dependencies: list[str] = field(default_factory=list)  # "0002_comments depends on blog@0002_blog"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "current": self.current, "head": self.head, "pending": list(self.pending),
            "problem": self.problem, "revision_dependencies": list(self.revision_dependencies),
        }
