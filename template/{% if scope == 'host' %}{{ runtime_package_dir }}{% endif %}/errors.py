"""The errors a user can act on: each message names what failed and the fix.

Third-party exceptions (Alembic's ``CommandError``, SQLAlchemy's errors) are
turned into these at the boundary where the user's words are chosen: the
command functions, and ``cli.fails_cleanly`` for whatever reaches the door.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from sqlalchemy.exc import NoSuchTableError


class PluginMigrationError(Exception):
    """A failure the user can act on; the message names what failed and the fix."""


class RegistryError(PluginMigrationError):
    """registry.json is unreadable, malformed, or inconsistent."""


class LockTimeout(PluginMigrationError):
    """Another migrator kept the database locked for longer than the lock timeout."""


def error_summary(error: BaseException) -> str:
    """The first line of an error, preferring the database driver's own message."""
    if isinstance(error, NoSuchTableError):  # its message is only the table's name
        return f"no such table: {error}"
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


#: SQLSTATE of PostgreSQL's "canceling statement due to lock timeout".
LOCK_NOT_AVAILABLE = "55P03"


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE a database driver attached to ``error`` (PostgreSQL), if any."""
    return getattr(getattr(error, "orig", None), "sqlstate", None)


def user_code_location(error: BaseException, root: Path) -> str | None:
    """``path:line`` (relative to ``root``) of the innermost place in the user's code where ``error`` arose.

    The user's code is everything in the repository ``root`` except this
    runtime package: plugins' revisions and models, the core models. None
    when the error did not come from there (or could not be compiled there).
    """
    def users(path: str) -> bool:
        resolved = Path(path).resolve()
        return resolved.is_relative_to(root) and not resolved.is_relative_to(_RUNTIME_DIR)

    if isinstance(error, SyntaxError) and error.filename and users(error.filename):
        return f"{Path(error.filename).resolve().relative_to(root)}:{error.lineno}"
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if users(frame.filename)]
    return f"{Path(frames[-1].filename).resolve().relative_to(root)}:{frames[-1].lineno}" if frames else None


def describe_user_error(error: BaseException, root: Path) -> str:
    """One line for an exception from user code: where it arose, its type and its message."""
    message = f"SyntaxError: {error.msg}" if isinstance(error, SyntaxError) else (
        f"{type(error).__name__}: {error_summary(error)}"
    )
    location = user_code_location(error, root.resolve())
    return f"{location}: {message}" if location else message


_RUNTIME_DIR = Path(__file__).resolve().parent
