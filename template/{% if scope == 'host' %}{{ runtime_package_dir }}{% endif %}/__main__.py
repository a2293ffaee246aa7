"""``python -m <host>.plugins COMMAND``: the plugin commands without Flask; the database is DATABASE_URL."""

import sys

if __name__ == "__main__":
    try:
        from .cli import make_cli

        make_cli()(prog_name=f"python -m {__package__}")
    except SyntaxError as error:
        # A module that does not parse (conflict markers left by a host update,
        # say) is reported as a finding or one line, not as a traceback.
        try:
            from .conflicts import explain_syntax_error
        except SyntaxError:  # conflicts.py itself
            sys.exit(f"Error: {error.filename}:{error.lineno}: {error.msg}")
        sys.exit(explain_syntax_error(error))
