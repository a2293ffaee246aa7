"""dev.py, the Quick start's entry point: when it keeps, refreshes or remakes the virtual environment."""

from __future__ import annotations

import dev

PY311 = "/usr/bin/python3 3.11.2 (main, ...) [GCC 12.2.0]"
PY313 = "/root/.pyenv/versions/3.13.0/bin/python 3.13.0 (main, ...)"


def test_the_venv_is_kept_while_requirements_and_interpreter_are_the_same() -> None:
    stamp = dev.venv_stamp(b"alembic==1\n", PY311)
    assert dev.venv_action(stamp, dev.venv_stamp(b"alembic==1\n", PY311)) == "keep"


def test_changed_requirements_are_installed_into_the_same_venv() -> None:
    assert dev.venv_action(dev.venv_stamp(b"alembic==1\n", PY311), dev.venv_stamp(b"alembic==2\n", PY311)) == "install"


def test_another_interpreter_remakes_the_venv() -> None:
    assert dev.venv_action(dev.venv_stamp(b"alembic==1\n", PY311), dev.venv_stamp(b"alembic==1\n", PY313)) == "recreate"
    # A stamp from before interpreters were recorded (a hash alone) remakes it too.
    assert dev.venv_action("0123abcd\n", dev.venv_stamp(b"alembic==1\n", PY311)) == "recreate"
    assert dev.venv_action("", dev.venv_stamp(b"alembic==1\n", PY311)) == "recreate"
