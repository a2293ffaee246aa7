"""What every command shares: its error handling, the click options several take, the question asked before data is dropped, logging."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from .errors import PluginMigrationError, describe_user_error, error_summary, user_code_location
from .registry import PROJECT_ROOT


def fails_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can act on into click's one-line ``Error: ...`` and exit 1.

    That includes any exception raised by the user's own code (a revision
    that cannot be imported, a models module that raises), named by file and
    line. An exception from this runtime itself keeps its traceback: it is a
    bug to report, not a mistake to fix.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PluginMigrationError as error:
            raise click.ClickException(str(error)) from None
        except SQLAlchemyError as error:
            raise click.ClickException(f"database error: {error_summary(error)}") from None
        except Exception as error:
            if is_alembic_command_error(error):
                raise click.ClickException(str(error)) from None
            if user_code_location(error, PROJECT_ROOT) is None:
                raise
            raise click.ClickException(describe_user_error(error, PROJECT_ROOT)) from None

    return wrapper


def is_alembic_command_error(error: Exception) -> bool:
    """Whether ``error`` is Alembic's ``CommandError`` (a user's mistake, said in one line).

    Looked up in ``sys.modules`` rather than imported: a command that never
    loaded Alembic cannot have raised it, and importing Alembic only to
    catch its exception would cost a deploy with nothing to do about 0.2 s.
    """
    alembic_util = sys.modules.get("alembic.util")
    return alembic_util is not None and isinstance(error, alembic_util.CommandError)


def writing_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--sql and --lock-timeout, shared by the commands that change the database."""
    command = click.option(
        "--lock-timeout",
        type=click.FloatRange(min=0),
        default=None,
        help="Seconds to wait for another migrator of this database to finish [default: 300].",
    )(command)
    return click.option("--sql", "sql", is_flag=True, help="Print the SQL instead of running it.")(command)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")

from_models_option = click.option(
    "--install-from-models", "from_models", is_flag=True,
    help="A plugin with nothing installed gets its tables from its models and its head stamped; "
    "no revision runs (README: a fresh database from the models).",
)


def database_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--database-url (repeatable, @FILE) and --jobs, for the commands that work on several databases at once."""
    command = click.option(
        "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
        help="With several databases: how many to work on at a time (worker processes).",
    )(command)
    return click.option(
        "--database-url", "database_urls", multiple=True, metavar="URL",
        help="The database, instead of the default one; repeat it (or give @FILE, one URL per line) for several.",
    )(command)


def confirm_drop(yes: bool, doing: str) -> Callable[[str, list[str]], bool]:
    """The question asked before tables or columns and their data are dropped; --yes answers it; nobody to ask means no."""

    def confirm(plugin: str, dropping: list[str]) -> bool:
        if yes:
            return True
        for kind, columns in (("tables", False), ("columns", True)):  # a column is named "table.column"
            if items := [item for item in dropping if ("." in item) is columns]:
                click.echo(f'{doing} drops these {kind} and their data: {", ".join(items)}', err=True)
        try:
            return click.confirm("Drop them?", default=False, err=True)
        except click.Abort:  # nobody to answer (closed stdin, Ctrl-C): the safe answer is no
            click.echo(err=True)
            return False

    return confirm


def configure_logging(verbose: bool) -> None:
    """Quiet by default: the commands say what happened; -v adds Alembic's INFO lines on stderr.

    Alembic logs through the standard ``logging`` module; an app that set up
    logging of its own (Flask does) would otherwise print them all.
    """
    logger = logging.getLogger("alembic")
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    if verbose and not any(isinstance(handler, logging.StreamHandler) for handler in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)-5.5s [%(name)s] %(message)s"))
        logger.addHandler(handler)
