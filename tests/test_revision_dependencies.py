"""A revision that depends on another plugin's revision (issue 13, point 6), end to end through both doors.

Plugin "blog" (posts) grows a table, tags, in its revision 0002_blog, which
also adds a first tag. Plugin "comments" depends on blog;
its revision 0002_comments adds a foreign key into tags and tags every
comment with that first tag, so it declares Alembic's
``depends_on = "0002_blog"``: run before 0002_blog, it fails on both
backends (no table tags to point into, no row to copy).
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from .helpers import Database, Host, commit_all, copier, copy_host, copy_plugin, make_sqlalchemy_app, run

POSTS = '''from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.models import Base


class Post(Base):
    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80))
'''
TAGS = POSTS + '''

class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
'''
COMMENTS = '''from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.models import Base


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"))
    body: Mapped[str] = mapped_column(String(200))
'''
TAGGED_COMMENTS = COMMENTS + '''    tag_id: Mapped[int | None] = mapped_column(ForeignKey("tags.id"))
'''

#: The Flask door: a plain Flask app (no Flask-SQLAlchemy) whose database is SHOPAPP_DATABASE_URI.
FLASK_APP = '''import os

from flask import Flask


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["SHOPAPP_DATABASE_URI"]
    from shopapp.plugins import init_app

    init_app(app)
    return app
'''

DEPENDS_ON_LINE = "depends_on: Union[str, Sequence[str], None] = "


def ok(result) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def error_line(result) -> str:
    """The one `Error: ...` line of a refused command (and no traceback)."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


def cli(host: Host, door: str, *args: str):
    """A plugin command on the host's database, through `python -m shopapp.plugins` or `flask plugin`."""
    if door == "flask":
        return host.flask_cli(*args, env={"SHOPAPP_DATABASE_URI": host.database.url})
    return host.plugin_cli(*args)


def add_to_revision(path: Path, upgrade: str, depends_on: str | None = None) -> None:
    """Append a line to a revision's upgrade(), and set its depends_on, as a user edits a written revision."""
    text = path.read_text()
    head, tail = text.split("\n\n\ndef downgrade()")
    text = head.rstrip("\n") + f"\n    {upgrade}\n\n\ndef downgrade()" + tail
    if depends_on is not None:
        text = re.sub(rf"^{re.escape(DEPENDS_ON_LINE)}.*$", DEPENDS_ON_LINE + depends_on, text, flags=re.M)
    path.write_text(text)


def revision(host: Host, plugin: str, message: str) -> Path:
    output = ok(host.plugin_cli("revision", plugin, "-m", message, "--autogenerate"))
    return Path(output.splitlines()[0].removeprefix("wrote "))


@pytest.fixture(scope="module")
def linked_host(tmp_path_factory: pytest.TempPathFactory, template_repo: Path) -> Path:
    """blog and comments, each at 0002, 0002_comments depending on 0002_blog; written against a SQLite dev database."""
    root = tmp_path_factory.mktemp("linked") / "host"
    make_sqlalchemy_app(root, "shopapp")
    (root / "shopapp" / "__init__.py").write_text(FLASK_APP)
    assert copy_host(root, template=template_repo).returncode == 0
    for name, tables, depends_on, models in (("blog", ["posts"], [], POSTS), ("comments", ["comments"], ["blog"], COMMENTS)):
        result = copy_plugin(root, template=template_repo, plugin_name=name, tables=tables, depends_on=depends_on,
                             with_models=False)
        assert result.returncode == 0, result.stderr
        (root / "plugins" / name / "models.py").write_text(models)
    commit_all(root, "blog and comments")
    host = Host(root, database=Database(f"sqlite:///{root.parent / 'dev.sqlite3'}"))
    ok(host.plugin_cli("upgrade-all"))

    (root / "plugins/blog/models.py").write_text(TAGS)
    commit_all(root, "blog's tags")
    update = copier(root, "update", "--trust", "--defaults", "-a", ".copier-answers.plugin-blog.yml",
                    "-d", "tables=[posts, tags]")
    assert update.returncode == 0, update.stderr
    add_to_revision(revision(host, "blog", "tags"), 'op.execute("INSERT INTO tags (name) VALUES (\'general\')")')
    ok(host.plugin_cli("migrate", "blog"))

    (root / "plugins/comments/models.py").write_text(TAGGED_COMMENTS)
    add_to_revision(revision(host, "comments", "tag comments"),
                    'op.execute("UPDATE comments SET tag_id = (SELECT min(id) FROM tags)")', "'0002_blog'")
    ok(host.plugin_cli("migrate", "comments"))
    commit_all(root, "comments depend on blog's tags")
    return root


@pytest.fixture
def linked(linked_host: Path, tmp_path: Path, database: Database) -> Host:
    """A private copy of the linked host, with an empty database on each backend."""
    shutil.copytree(linked_host, tmp_path / "host", symlinks=True)
    return Host(tmp_path / "host", database=database)


def comments_revision(host: Host) -> Path:
    return host.root / FILE


# -- the dependency runs first ---------------------------------------------------------------------


@pytest.mark.parametrize("door", ["python", "flask"])
def test_a_fresh_upgrade_all_runs_the_revision_after_the_one_it_depends_on(linked: Host, door: str) -> None:
    done = ok(cli(linked, door, "upgrade-all"))
    assert re.search(r"^blog\s+installed\s+installed at 0002_blog$", done, re.M), done
    assert re.search(r"^comments\s+installed\s+installed at 0002_comments$", done, re.M), done
    assert linked.database.version_of("blog") == ["0002_blog"]
    assert linked.database.version_of("comments") == ["0002_comments"]

    status = ok(cli(linked, door, "status"))
    assert "comments: 0002_comments depends on blog@0002_blog" in status
    history = ok(cli(linked, door, "history", "comments")).splitlines()
    assert history[0] == (
        "0001_baseline_comments -> 0002_comments (head, current), tag comments; depends on blog@0002_blog"
    )
    assert "depends on" not in history[1]
    assert "depends on" not in ok(cli(linked, door, "history", "blog"))


def test_a_database_where_the_dependency_is_behind_upgrades_it_first(linked: Host) -> None:
    ok(linked.plugin_cli("upgrade-all"))
    ok(linked.plugin_cli("downgrade", "comments", "0001_baseline_comments", "--yes"))
    ok(linked.plugin_cli("downgrade", "blog", "0001_baseline_blog", "--yes"))
    linked.database.execute("INSERT INTO posts (id, title) VALUES (1, 'hello')")
    linked.database.execute("INSERT INTO comments (id, post_id, body) VALUES (1, 1, 'first')")
    status = ok(linked.plugin_cli("status", "--json"))
    assert '"0002_comments depends on blog@0002_blog"' in status

    done = ok(linked.plugin_cli("migrate", "comments"))
    assert re.search(r"^blog\s+upgraded\s+0001_baseline_blog -> 0002_blog$", done, re.M), done
    assert re.search(r"^comments\s+upgraded\s+0001_baseline_comments -> 0002_comments$", done, re.M), done
    # 0002_comments ran once tags held blog's first tag.
    assert linked.database.execute(
        "SELECT comments.body, tags.name FROM comments JOIN tags ON tags.id = comments.tag_id"
    ) == [("first", "general")]


# SQLite's batch mode cannot preview (Alembic reflects the table it copies), so --sql is shown on PostgreSQL.
@pytest.mark.parametrize("new_database", ["postgresql"], indirect=True)
def test_sql_previews_the_order_the_run_uses(linked: Host) -> None:
    preview = ok(linked.plugin_cli("upgrade-all", "--sql"))
    assert linked.database.tables() == set()
    assert preview.index("CREATE TABLE tags") < preview.index("-- plugin comments: base -> head")
    assert "-- plugin comments: base -> head\n-- 0002_comments depends on blog@0002_blog\n" in preview
    assert preview.index("INSERT INTO tags") < preview.index("UPDATE comments SET tag_id")

    ok(linked.plugin_cli("upgrade-all"))
    ok(linked.plugin_cli("downgrade", "comments", "0001_baseline_comments", "--yes"))
    ok(linked.plugin_cli("downgrade", "blog", "0001_baseline_blog", "--yes"))
    preview = ok(linked.flask_cli("migrate", "comments", "--sql", env={"SHOPAPP_DATABASE_URI": linked.database.url}))
    assert preview.index("-- plugin blog: 0001_baseline_blog -> head") < preview.index(
        "-- plugin comments: 0001_baseline_comments -> head\n-- 0002_comments depends on blog@0002_blog\n"
    )
    assert linked.database.version_of("blog") == ["0001_baseline_blog"]


# -- refused: nothing is migrated ------------------------------------------------------------------

FILE = "plugins/comments/migrations/versions/0002_comments_tag_comments.py"
REFUSED = [
    pytest.param(
        "comments", "'0009_blog'",
        f'{FILE}: revision 0002_comments depends on "0009_blog", which is no revision of any registered plugin; '
        'name a revision of a plugin "comments" depends on (blog) as "PLUGIN@REVISION", or remove it from the '
        "depends_on of that revision; nothing was migrated",
        id="unknown-revision",
    ),
    pytest.param(
        "comments", "'blog@0009_blog'",
        f'{FILE}: revision 0002_comments depends on "blog@0009_blog", which is no revision of plugin blog',
        id="unknown-qualified-revision",
    ),
    pytest.param(
        "comments", "['0002_blog', 'wiki@0001_baseline_wiki']",
        f'{FILE}: revision 0002_comments depends on "wiki@0001_baseline_wiki", which is no revision of plugin wiki',
        id="unknown-plugin",
    ),
    pytest.param(
        "blog", "'0001_baseline_comments'",
        'plugins/blog/migrations/versions/0002_blog_tags.py: revision 0002_blog depends on "0001_baseline_comments" of '
        'plugin "comments", but plugin "blog" does not depend on "comments"; add it with `copier update --trust '
        "--defaults -a .copier-answers.plugin-blog.yml -d 'depends_on=[comments, ...]'`; nothing was migrated",
        id="plugin-not-depended-on",
    ),
]


@pytest.mark.parametrize("new_database", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("plugin", "depends_on", "message"), REFUSED)
def test_a_dependency_on_an_unknown_revision_or_an_undeclared_plugin_is_refused(
    linked: Host, plugin: str, depends_on: str, message: str
) -> None:
    [path] = (linked.root / "plugins" / plugin / "migrations/versions").glob("0002_*.py")
    text = path.read_text()
    path.write_text(re.sub(rf"^{re.escape(DEPENDS_ON_LINE)}.*$", DEPENDS_ON_LINE + depends_on, text, flags=re.M))

    for args in (["upgrade-all"], ["upgrade-all", "--sql"], ["migrate", "comments"]):
        assert error_line(linked.plugin_cli(*args)).startswith(f"Error: {message}")
    assert linked.database.tables() == set()
    assert error_line(linked.flask_cli("upgrade-all", env={"SHOPAPP_DATABASE_URI": linked.database.url})).startswith(
        f"Error: {message}"
    )
    assert "(unresolved: run `check`)" in ok(linked.plugin_cli("status"))  # status reads and shows; it refuses nothing
    checked = linked.plugin_cli("check")
    assert checked.returncode == 1
    assert any(line.startswith(message.removesuffix("; nothing was migrated")) for line in checked.stdout.splitlines())
    assert linked.database.tables() == set()


@pytest.mark.parametrize("new_database", ["sqlite"], indirect=True)
def test_the_plugin_qualified_spelling_and_plain_alembic_work_too(linked: Host) -> None:
    add_to_revision(comments_revision(linked), "pass", "'blog@0002_blog'")
    assert "comments: 0002_comments depends on blog@0002_blog" in ok(linked.plugin_cli("status"))
    ok(linked.plugin_cli("check"))
    # Plain Alembic, through the plugin's env.py, also runs the chain without the other plugin's revision.
    alembic = [sys.executable, "-m", "alembic", "-c"]
    env = {"DATABASE_URL": linked.database.url}
    ok(run([*alembic, "plugins/blog/migrations/alembic.ini", "upgrade", "head"], linked.root, env))
    ok(run([*alembic, "plugins/comments/migrations/alembic.ini", "upgrade", "head"], linked.root, env))
    assert linked.database.version_of("comments") == ["0002_comments"]


# -- downgrade ------------------------------------------------------------------------------------


def test_downgrading_below_a_revision_another_plugin_needs_is_refused(linked: Host) -> None:
    ok(linked.plugin_cli("upgrade-all"))
    refusal = (
        'Error: refusing to downgrade "blog" to 0001_baseline_blog, nothing was changed: revision 0002_comments of '
        'plugin "comments", applied in this database, depends on blog@0002_blog; downgrade "comments" below '
        "0002_comments first (`downgrade comments 0001_baseline_comments`)"
    )
    assert error_line(linked.plugin_cli("downgrade", "blog", "0001_baseline_blog", "--yes")) == refusal
    assert error_line(linked.plugin_cli("downgrade", "--yes", "--", "blog", "-1")) == refusal.replace(
        "to 0001_baseline_blog", "to -1"
    )
    assert error_line(linked.plugin_cli("downgrade", "blog", "0001_baseline_blog", "--sql")) == refusal
    assert error_line(linked.flask_cli(
        "downgrade", "blog", "0001_baseline_blog", "--yes", env={"SHOPAPP_DATABASE_URI": linked.database.url}
    )) == refusal
    assert linked.database.version_of("blog") == ["0002_blog"]
    assert "tags" in linked.database.tables()

    ok(linked.plugin_cli("downgrade", "comments", "0001_baseline_comments", "--yes"))
    ok(linked.plugin_cli("downgrade", "blog", "0001_baseline_blog", "--yes"))
    assert linked.database.version_of("blog") == ["0001_baseline_blog"]


# -- the plan -------------------------------------------------------------------------------------


@pytest.mark.parametrize("new_database", ["sqlite"], indirect=True)
def test_the_plan_holds_back_a_revision_whose_dependency_would_stay_below_it(linked: Host) -> None:
    """The commands upgrade dependencies to their heads; a plan with a lower target for one skips what needs more."""
    result = linked.python(
        "from shopapp.plugins import PluginManager\n"
        "from shopapp.plugins.plan import make_plan\n"
        "from shopapp.plugins.versions import DatabaseState\n"
        "chains = PluginManager().chains\n"
        "targets = {'blog': '0001_baseline_blog'}\n"
        "for step in make_plan(chains, DatabaseState(frozenset(), {}), ['blog', 'comments'], targets):\n"
        "    print(step.plugin, step.action, step.reason)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "blog install ",
        "comments skip 0002_comments depends on blog@0002_blog, which blog would not reach "
        "(it would be at 0001_baseline_blog)",
    ]
