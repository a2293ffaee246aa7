"""The errors a user can act on: each message names what failed and the fix.

Third-party exceptions (Alembic's ``CommandError``, SQLAlchemy's errors) are
turned into these at the boundary where the user's words are chosen: the
command functions, and ``cli.fails_cleanly`` for whatever reaches the door.
"""

from __future__ import annotations


class PluginMigrationError(Exception):
    """A failure the user can act on; the message names what failed and the fix."""


class RegistryError(PluginMigrationError):
    """registry.json is unreadable, malformed, or inconsistent."""


class LockTimeout(PluginMigrationError):
    """Another migrator kept the database locked for longer than the lock timeout."""


def error_summary(error: BaseException) -> str:
    """The first line of an error, preferring the database driver's own message."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
