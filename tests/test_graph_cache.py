"""The cache of each chain's revision graph (issue 16, point 1): never wrong, never needed, and it saves the imports.

Between runs the tests add, edit (also keeping size and mtime), rename and
remove revisions, and check ``status`` and ``upgrade-all`` against what the
files say; an audit hook counts the revision files a run executes.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import stat
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from .helpers import Host, probe

REVISION = '''"""{message}"""
from alembic import op  # noqa: F401

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = {depends_on!r}


def upgrade():
    pass


def downgrade():
    pass
'''


def cache_file(host: Host) -> Path:
    return host.root / "shopapp" / "plugins" / "__pycache__" / "plugin-chains.json"


def versions(host: Host, plugin: str) -> Path:
    return host.root / "plugins" / plugin / "migrations" / "versions"


def add_revision(host: Host, plugin: str, revision: str, down: str, depends_on: str | None = None, file: str = "") -> Path:
    path = versions(host, plugin) / (file or f"{revision}.py")
    path.write_text(REVISION.format(message=revision, revision=revision, down=down, depends_on=depends_on))
    return path


def status(host: Host) -> dict[str, dict]:
    result = host.plugin_cli("status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def upgrade_all(host: Host) -> dict[str, dict]:
    result = host.plugin_cli("upgrade-all", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def changed(outcomes: dict[str, dict]) -> dict[str, tuple[str, str]]:
    return {name: (result["status"], result["to"]) for name, result in outcomes.items() if result["status"] != "current"}


def test_the_cache_follows_every_change_to_a_chain(demo_host: Host) -> None:
    host = demo_host
    assert set(changed(upgrade_all(host))) == {"network", "equipment", "computers", "printers", "usb", "notifications"}
    assert cache_file(host).is_file()
    assert changed(upgrade_all(host)) == {}

    # Added: the next status sees the new head, and upgrade-all runs it.
    add_revision(host, "usb", "0002_usb", "0001_baseline_usb")
    assert (status(host)["usb"]["head"], status(host)["usb"]["pending"]) == ("0002_usb", ["0002_usb"])
    assert changed(upgrade_all(host)) == {"usb": ("upgraded", "0002_usb")}

    # Edited with the same size and mtime: a new revision id, so a new head.
    third = add_revision(host, "usb", "0003_usb", "0002_usb")
    assert status(host)["usb"]["head"] == "0003_usb"
    before = third.stat()
    third.write_text(third.read_text().replace('"0003_usb"', '"0003_usc"'))
    os.utime(third, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (third.stat().st_size, third.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    # This cache is keyed by content, so it sees the edit. Python's bytecode cache is keyed by mtime and size,
    # so it would still hand Alembic the old code (plain `alembic` too): clear it, as such an edit needs anyway.
    shutil.rmtree(versions(host, "usb") / "__pycache__", ignore_errors=True)
    assert status(host)["usb"]["pending"] == ["0003_usc"]

    # Renamed out of Alembic's sight (not *.py): the revision is gone; renamed back, it is there again.
    hidden = third.rename(third.with_name("0003_usb.py.off"))
    assert (status(host)["usb"]["head"], status(host)["usb"]["pending"]) == ("0002_usb", [])
    assert changed(upgrade_all(host)) == {}
    hidden.rename(versions(host, "usb") / "0003_renamed.py")
    assert changed(upgrade_all(host)) == {"usb": ("upgraded", "0003_usc")}

    # A cross-plugin depends_on is cached with the chain, and an edit of it is seen.
    fourth = add_revision(host, "usb", "0004_usb", "0003_usc", depends_on="computers@0001_baseline_computers")
    assert status(host)["usb"]["revision_dependencies"] == ["0004_usb depends on computers@0001_baseline_computers"]
    assert status(host)["usb"]["revision_dependencies"] == ["0004_usb depends on computers@0001_baseline_computers"]
    fourth.write_text(fourth.read_text().replace("computers@0001_baseline_computers", "computers@0009_nowhere"))
    refused = host.plugin_cli("upgrade-all")
    assert refused.returncode == 1 and 'depends on "computers@0009_nowhere"' in refused.stdout + refused.stderr

    # Removed: the head falls back, and nothing is left to do.
    fourth.unlink()
    assert (status(host)["usb"]["head"], status(host)["usb"]["pending"]) == ("0003_usc", [])
    assert changed(upgrade_all(host)) == {}


def test_a_run_with_nothing_to_do_imports_no_revision_file(demo_host: Host) -> None:
    host = demo_host
    _, cold = probe(host, "upgrade-all")
    assert len(cold["executed"]) == 6, cold  # the probe sees revision files run: the first run loads every chain
    for command in ("upgrade-all", "status"):
        _, warm = probe(host, command)
        assert warm["executed"] == [], (command, warm)
        assert len(warm["opened"]) <= 6, warm  # each ini read once for the key, never parsed
        # Issue 16 point 3: importing Alembic was about 0.2 s of every start-up; with nothing to do, it is not needed.
        assert warm["loaded"] == [], (command, warm["loaded"][:5])

    # Only the plugin with work to do loads its chain; the others stay cached.
    add_revision(host, "printers", "0002_printers", "0001_baseline_printers")
    out, some = probe(host, "upgrade-all")
    assert "upgraded" in out
    assert sorted(some["executed"]) == ["printers/migrations/versions/0001_baseline.py",
                                        "printers/migrations/versions/0002_printers.py"], some
    assert "alembic.command" in some["loaded"] and not any(name.startswith("copier") for name in some["loaded"])
    assert probe(host, "upgrade-all")[1]["executed"] == []


def test_a_broken_or_unwritable_cache_only_costs_time(demo_host: Host) -> None:
    host = demo_host
    upgrade_all(host)
    cache = cache_file(host)

    cache.write_bytes(b"\x00garbage{[" * 100)
    add_revision(host, "usb", "0002_usb", "0001_baseline_usb")
    assert status(host)["usb"]["pending"] == ["0002_usb"]
    assert json.loads(cache.read_text())["format"] == 1, "the garbage was replaced by a good cache"

    # A valid cache, then a read-only folder (for root, which writes anyway, a folder where the file goes).
    folder = cache.parent
    add_revision(host, "usb", "0003_usb", "0002_usb")
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert status(host)["usb"]["pending"] == ["0002_usb", "0003_usb"]
        assert changed(upgrade_all(host)) == {"usb": ("upgraded", "0003_usb")}
        assert changed(upgrade_all(host)) == {}
    finally:
        folder.chmod(stat.S_IRWXU)
    cache.unlink()
    cache.mkdir()
    add_revision(host, "usb", "0004_usb", "0003_usb")
    assert changed(upgrade_all(host)) == {"usb": ("upgraded", "0004_usb")}
    assert status(host)["usb"]["pending"] == []
    assert cache.is_dir()


# -- the cache file as possibly hostile, in process ---------------------------------------------------------


@pytest.fixture
def graphcache(demo_host_template: Path) -> ModuleType:
    if str(demo_host_template) not in sys.path:
        sys.path.insert(0, str(demo_host_template))
    module = importlib.import_module("shopapp.plugins.graphcache")
    assert Path(module.__file__).is_relative_to(demo_host_template), "another shopapp was imported first"
    return module


def a_chain(root: Path) -> tuple[Path, list[str]]:
    (root / "versions").mkdir(parents=True)
    (root / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s\n")
    (root / "versions" / "0001.py").write_text('revision = "0001"\n')
    return root / "alembic.ini", [str(root / "versions")]


def stored(graphcache: ModuleType, path: Path, ini: Path):
    """What a new reader of the cache file at ``path`` finds for the chain."""
    return graphcache.GraphCache(path).get(ini)


def test_the_cache_file_is_checked_before_use(graphcache: ModuleType, tmp_path: Path, monkeypatch) -> None:
    ini, locations = a_chain(tmp_path / "chain")
    path = tmp_path / "cache" / "plugin-chains.json"
    graph = graphcache.Graph(("0002",), ("0001",), (("0002", ("0001",)), ("0001", ())), {"0002": ("/x/0002.py", ("blog@0002",))})
    cache = graphcache.GraphCache(path)
    cache.put(ini, graphcache.chain_key(graphcache.ini_digest(ini), locations), locations, graph)
    cache.save()
    assert stored(graphcache, path, ini) == graph
    good = json.loads(path.read_text())

    # Any change of a file under the chain, or of its ini, and the entry no longer applies.
    (tmp_path / "chain" / "versions" / "0001.py").write_text('revision = "0009"\n')
    assert stored(graphcache, path, ini) is None
    (tmp_path / "chain" / "versions" / "0001.py").write_text('revision = "0001"\n')
    assert stored(graphcache, path, ini) == graph
    (tmp_path / "chain" / "versions" / "sub").mkdir()
    assert stored(graphcache, path, ini) is None
    (tmp_path / "chain" / "versions" / "sub").rmdir()
    (tmp_path / "chain" / "versions" / "__pycache__").mkdir()
    assert stored(graphcache, path, ini) == graph, "Python's own cache is not part of the chain"
    ini.write_text(ini.read_text() + "version_locations = elsewhere\n")
    assert stored(graphcache, path, ini) is None
    ini.write_text("[alembic]\nscript_location = %(here)s\n")

    entry = good["chains"][str(ini)]
    hostile = [
        {**entry["graph"], "heads": [1]},
        {**entry["graph"], "heads": "0002"},
        {**entry["graph"], "revisions": [["0002"]]},
        {**entry["graph"], "foreign": {"0002": ["/x", [["nested"]]]}},
        {**entry["graph"], "extra": 1},
        {**entry["graph"], "heads": ["x" * 5000]},
    ]
    for graph_data in hostile:
        path.write_text(json.dumps({**good, "chains": {str(ini): {**entry, "graph": graph_data}}}))
        assert stored(graphcache, path, ini) is None, graph_data
    for text in ["[" * 100_000, "not json", json.dumps({**good, "format": 0}), json.dumps([good]),
                 json.dumps({**good, "chains": {str(ini): {**entry, "locations": "/"}}})]:
        path.write_text(text)
        assert stored(graphcache, path, ini) is None
    path.write_text(json.dumps(good))
    monkeypatch.setattr(graphcache, "MAX_BYTES", len(path.read_bytes()) - 1)
    assert stored(graphcache, path, ini) is None


def test_a_stamp_spares_reading_the_files_until_one_changes(graphcache: ModuleType, tmp_path: Path, monkeypatch) -> None:
    ini, locations = a_chain(tmp_path / "chain")
    revision = tmp_path / "chain" / "versions" / "0001.py"
    path = tmp_path / "cache" / "plugin-chains.json"
    graph = graphcache.Graph(("0001",), ("0001",), (("0001", ()),), {})

    def put() -> None:
        cache = graphcache.GraphCache(path)
        stamp = graphcache.chain_stamp(graphcache.ini_stat(ini), locations)
        cache.put(ini, graphcache.chain_key(graphcache.ini_digest(ini), locations), locations, graph, stamp)
        cache.save()

    # Files written just now may change again within their timestamps' granularity: no stamp yet.
    put()
    assert "stamp" not in json.loads(path.read_text())["chains"][str(ini)]
    monkeypatch.setattr(graphcache, "SETTLED_SECONDS", 0.0)  # as if they had been written long ago
    put()
    assert json.loads(path.read_text())["chains"][str(ini)]["stamp"]

    def no_reading(*args):
        raise AssertionError("the files were read although the stamp matched")

    with monkeypatch.context() as patched:
        patched.setattr(graphcache, "chain_key", no_reading)
        patched.setattr(graphcache, "ini_digest", no_reading)
        assert stored(graphcache, path, ini) == graph

    # Copied away and back with its times (cp -p, an unpacked archive): another stamp, the same content.
    time.sleep(0.05)  # past the clock tick of the file's ctime
    shutil.copy2(revision, tmp_path / "saved.py")
    revision.unlink()
    shutil.copy2(tmp_path / "saved.py", revision)
    reader = graphcache.GraphCache(path)
    assert reader.get(ini) == graph
    reader.save()  # the content matched: the new stamp is kept, so the next run reads no file again
    with monkeypatch.context() as patched:
        patched.setattr(graphcache, "chain_key", no_reading)
        assert stored(graphcache, path, ini) == graph

    # Edited with its size and mtime kept: the ctime moves, so the stamp no longer matches, nor does the content.
    time.sleep(0.05)
    before = revision.stat()
    revision.write_text(revision.read_text().replace("0001", "0009"))
    os.utime(revision, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (revision.stat().st_size, revision.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert revision.stat().st_ctime_ns != before.st_ctime_ns
    assert stored(graphcache, path, ini) is None
