"""This repository's own regeneration check: examples/demo-host is what the template generates now.

A template change that alters generated output fails here until
`python3 dev.py examples` is run and its diff committed, so reviewers see the
change as a diff of a real host.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from demo.run import EXAMPLE, write_example


def files_under(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_the_committed_example_host_is_what_the_template_generates(tmp_path: Path) -> None:
    fresh = tmp_path / "demo-host"
    write_example(fresh)
    expected, committed = files_under(fresh), files_under(EXAMPLE)

    diffs = []
    for name in sorted(expected.keys() | committed.keys()):
        if expected.get(name) != committed.get(name):
            diffs.extend(difflib.unified_diff(
                committed.get(name, b"").decode().splitlines(keepends=True),
                expected.get(name, b"").decode().splitlines(keepends=True),
                f"examples/demo-host/{name} (committed)",
                f"examples/demo-host/{name} (template now)",
            ))
    assert not diffs, "run `python3 dev.py examples` and commit the result:\n" + "".join(diffs[:200])
