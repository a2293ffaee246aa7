"""Conflict markers left by an update, and a runtime file that no longer parses.

A host update can leave ``<<<<<<<`` blocks in a runtime module; importing it
then fails with a SyntaxError before any command runs. ``__main__`` catches
that and calls ``explain_syntax_error``, which reports it with the words that
check-scaffolding uses for conflict markers anywhere. So this module imports
nothing from the package: it must work when the other modules do not.
"""

from __future__ import annotations

from pathlib import Path

CONFLICT_MARKERS = ("<<<<<<< ", ">>>>>>> ")
CONFLICT_PROBLEM = "holds conflict markers from an update"

# The repository root, as registry.PROJECT_ROOT finds it (one parent per dot in
# this module's name); not imported from there, for the reason above.
_ROOT = Path(__file__).resolve().parents[__name__.count(".")]


def holds_conflict_markers(text: str) -> bool:
    return any(line.startswith(CONFLICT_MARKERS) for line in text.splitlines())


def conflict_fix(path: str) -> str:
    return f"resolve the <<<<<<< ... >>>>>>> blocks in {path} and commit"


def explain_syntax_error(error: SyntaxError) -> str:
    """Report a module that does not parse: conflict markers as check-scaffolding's finding, on stdout.

    Returns the one ``Error: ...`` line to exit with.
    """
    path = Path(error.filename or "<unknown>")
    try:
        shown = path.resolve().relative_to(_ROOT).as_posix()
    except (OSError, ValueError):
        shown = str(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    if holds_conflict_markers(text):
        print(f"{shown}: {CONFLICT_PROBLEM}\n  fix: {conflict_fix(shown)}")
        return "Error: 1 scaffolding problem(s), each with its fix above"
    return f"Error: {shown}:{error.lineno}: {error.msg}; fix it (or restore the file from git) and run the command again"
