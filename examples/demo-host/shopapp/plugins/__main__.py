"""``python -m <host>.plugins COMMAND``: the plugin commands without Flask; the database is DATABASE_URL."""

import gc
import sys

if __name__ == "__main__":
    try:
        from .cli import make_cli

        # This process runs one command and exits: what the imports built
        # (SQLAlchemy's, the driver's, the app's: most of the objects there
        # will ever be) lives until then, so the collector need not walk it in
        # each full collection of the run and once more at exit; that walking
        # was a sixth of a run with nothing to do (bench/README.md).
        gc.freeze()
        make_cli()(prog_name=f"python -m {__package__}")
    except SyntaxError as error:
        # A module that does not parse (conflict markers left by a host update,
        # say) is reported as a finding or one line, not as a traceback.
        try:
            from .conflicts import explain_syntax_error
        except SyntaxError:  # conflicts.py itself
            sys.exit(f"Error: {error.filename}:{error.lineno}: {error.msg}")
        sys.exit(explain_syntax_error(error))
