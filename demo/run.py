"""The Quick start demo: a Flask app, the host scope, the seed commit's six plugins, SQLite.

    python3 dev.py demo [DEST]      (default DEST: build/demo)

Every step runs the same commands a user types, and prints them first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE.parent

#: The seed commit's six plugins: (name, tables, depends_on). computers has
#: foreign keys into network and equipment; printers into network; usb into computers.
PLUGINS = [
    ("network", ["subnets", "network_devices"], []),
    ("equipment", ["equipment_types", "equipment"], []),
    ("computers", ["computers"], ["network", "equipment"]),
    ("printers", ["printers", "print_queues"], ["network"]),
    ("usb", ["usb_devices"], ["computers"]),
    ("notifications", ["notifications", "notification_subscriptions"], []),
]


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None, quiet: bool = False) -> None:
    if not quiet:
        print(f"\n$ {' '.join(command)}", flush=True)
    subprocess.run(command, cwd=cwd, env={**os.environ, **(env or {})}, check=True,
                   stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.DEVNULL if quiet else None)


def copier(*args: str) -> list[str]:
    return [sys.executable, "-m", "copier", *args]


def git_commit(dest: Path, message: str) -> None:
    run(["git", "add", "-A"], dest, quiet=True)
    run(["git", "-c", "user.name=demo", "-c", "user.email=demo@example.invalid", "commit", "-qm", message], dest, quiet=True)


def build_host(dest: Path, template: Path = TEMPLATE, quiet: bool = False) -> None:
    """Make the demo application in dest and scaffold the host and the six plugins into it."""
    shutil.copytree(HERE / "shopapp", dest / "shopapp")
    run(["git", "init", "-q"], dest, quiet=True)
    git_commit(dest, "The shop app, before plugin migrations")
    run(copier("copy", "--trust", "--defaults", "--quiet", "-d", "scope=host", "-d", "host_package=shopapp",
               "-d", "model_base=shopapp.models:db.Model", str(template), "."), dest, quiet=quiet)
    git_commit(dest, "Add the plugin-migration runtime")
    for name, tables, depends_on in PLUGINS:
        # The demo's models are richer than the generated skeleton, which is
        # only written where no models.py exists yet.
        (dest / "plugins" / name).mkdir(parents=True)
        shutil.copy(HERE / "plugins" / name / "models.py", dest / "plugins" / name / "models.py")
        run(copier("copy", "--trust", "--defaults", "--quiet", "-d", f"plugin_name={name}",
                   "-d", f"tables=[{', '.join(tables)}]", "-d", f"depends_on=[{', '.join(depends_on)}]",
                   str(template), "."), dest, quiet=quiet)
        git_commit(dest, f"Add the {name} plugin")


def main(argv: list[str]) -> int:
    dest = Path(argv[0]) if argv else TEMPLATE / "build" / "demo"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    dest = dest.resolve()
    print(f"Building the demo host in {dest}")
    build_host(dest)
    flask = [sys.executable, "-m", "flask", "--app", "shopapp:create_app", "plugin"]
    env = {"SHOPAPP_DATABASE_URI": "sqlite:///shopdb.sqlite3"}
    run([*flask, "list"], dest, env)
    run([*flask, "upgrade-all"], dest, env)
    run([*flask, "status"], dest, env)
    print("\nAgain: Alembic skips applied revisions, so every plugin is current.")
    run([*flask, "upgrade-all"], dest, env)
    print(f"\nDone. Explore it: cd {dest} && {sys.executable} -m flask --app shopapp:create_app plugin --help")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
