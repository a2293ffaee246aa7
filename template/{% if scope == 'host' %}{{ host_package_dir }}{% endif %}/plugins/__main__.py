"""``python -m <host>.plugins COMMAND``: the plugin commands without Flask; the database is DATABASE_URL."""

from .cli import make_cli

if __name__ == "__main__":
    make_cli()(prog_name=f"python -m {__package__}")
