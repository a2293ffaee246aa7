"""``python -m <host>.plugins COMMAND``: the plugin commands without Flask; the database is DATABASE_URL."""

import os

from .cli import make_cli

if __name__ == "__main__":
    make_cli(lambda: os.environ.get("DATABASE_URL"))(prog_name=f"python -m {__package__}")
