"""Several databases in one command (sister sites, one database per tenant), and quiet output."""

from __future__ import annotations

import json
from pathlib import Path

from .helpers import Host

PLUGINS = ["equipment", "network", "notifications", "computers", "printers", "usb"]
UNREACHABLE = {"sqlite": "sqlite:////nonexistent-folder/site.db", "postgresql": "postgresql+psycopg://nobody@127.0.0.1:1/none"}


def sites(host: Host, new_database, count: int = 2) -> list[str]:
    """``count`` empty databases on the host's backend, and one that cannot be reached."""
    return [new_database().url for _ in range(count)] + [UNREACHABLE[host.database.backend]]


def as_args(urls: list[str]) -> list[str]:
    return [arg for url in urls for arg in ("--database-url", url)]


def test_upgrade_all_over_several_databases_goes_on_past_one_that_fails(demo_host: Host, new_database) -> None:
    urls = sites(demo_host, new_database)
    result = demo_host.plugin_cli("upgrade-all", *as_args(urls))

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"{url}: 6 plugins: 6 installed" for url in urls[:2]]
    assert lines[2].startswith(f"{urls[2]}: failed: ")
    assert lines[3] == "3 databases: 2 succeeded, 1 failed"
    [error] = result.stderr.strip().splitlines()
    assert error.startswith(f"Error: 1 of 3 databases failed: {urls[2]} (")
    for url in urls[:2]:
        status = json.loads(demo_host.plugin_cli("status", "--json", database_url=url).stdout)
        assert {plugin["name"]: plugin["current"] for plugin in status} == {name: f"0001_baseline_{name}" for name in PLUGINS}


def test_jobs_and_a_file_of_urls_give_the_same_results(demo_host: Host, new_database, tmp_path: Path) -> None:
    urls = sites(demo_host, new_database, count=3)
    listing = tmp_path / "sites.txt"
    listing.write_text("# every site\n" + "\n".join(urls) + "\n\n")

    parallel = demo_host.plugin_cli("upgrade-all", "--database-url", f"@{listing}", "--jobs", "2", "--json")
    assert parallel.returncode == 1
    runs = json.loads(parallel.stdout)
    assert list(runs) == urls
    for url in urls[:3]:
        assert {name: result["status"] for name, result in runs[url].items()} == dict.fromkeys(PLUGINS, "installed")
    assert set(runs[urls[3]]) == {"error"}

    again = demo_host.plugin_cli("upgrade-all", "--database-url", f"@{listing}", "--jobs", "2")
    assert again.stdout.splitlines()[:3] == [f"{url}: 6 plugins: 6 current" for url in urls[:3]]

    status = demo_host.plugin_cli("status", *as_args(urls[:2]), "--jobs", "2", "--json")
    assert status.returncode == 0, status.stderr
    assert {url: [p["pending"] for p in plugins] for url, plugins in json.loads(status.stdout).items()} == {
        url: [[]] * 6 for url in urls[:2]
    }


def test_the_flask_door_takes_several_databases_too(demo_host: Host, new_database) -> None:
    urls = sites(demo_host, new_database)[:2]
    result = demo_host.flask_cli("upgrade-all", *as_args(urls))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [*(f"{url}: 6 plugins: 6 installed" for url in urls), "2 databases: 2 succeeded, 0 failed"]


def test_one_database_url_is_that_database(demo_host: Host, new_database) -> None:
    other = new_database().url
    result = demo_host.plugin_cli("upgrade-all", "--database-url", other)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "6 plugins: 6 installed"
    assert demo_host.database.tables() == set(), "the default database was touched"


def test_a_bad_list_of_databases_is_refused_before_any_is_touched(demo_host: Host, new_database, tmp_path: Path) -> None:
    url = new_database().url
    twice = demo_host.plugin_cli("upgrade-all", "--database-url", url, "--database-url", url)
    assert twice.returncode == 1
    assert twice.stderr.strip() == f"Error: database listed twice: {url}; list each database once"
    missing = demo_host.plugin_cli("upgrade-all", "--database-url", f"@{tmp_path / 'none.txt'}")
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"Error: cannot read the database list {tmp_path / 'none.txt'}: No such file or directory"


def test_commands_are_quiet_unless_verbose(demo_host: Host) -> None:
    quiet = demo_host.flask_cli("upgrade-all", env={"SHOPAPP_DATABASE_URI": demo_host.database.url})
    assert quiet.returncode == 0, quiet.stderr
    assert "alembic" not in quiet.stderr and "INFO" not in quiet.stdout + quiet.stderr
    assert demo_host.plugin_cli("downgrade", "usb", "base", "--yes").returncode == 0

    verbose = demo_host.plugin_cli("-v", "upgrade-all")
    assert verbose.returncode == 0, verbose.stderr
    assert "INFO  [alembic.runtime.migration] Running upgrade  -> 0001_baseline_usb" in verbose.stderr
