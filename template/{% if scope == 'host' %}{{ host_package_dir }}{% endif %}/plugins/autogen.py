"""What autogenerate writes into a plugin's revision, so that the revision runs as written on every backend.

- batch blocks pass ``naming_convention``: the constraints batch mode
  reflects without a name (SQLite tables made before constraints were
  named) get the names ``naming`` gives, so a revision can drop them by name.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.autogenerate.render import default_renderers
from alembic.operations import ops


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Alembic's ``render_item`` hook of a plugin's environment: Alembic's own rendering, for now."""
    return False


@renderers.dispatch_for(ops.ModifyTableOps, replace=True)
def _render_batch_with_naming(autogen_context: AutogenContext, op: ops.ModifyTableOps) -> list[str]:
    """Alembic's batch block, naming the constraints that batch mode reflects unnamed (SQLite tables made before).

    Only in a plugin's revisions (their ``render_item`` is this module's); other
    environments in the same process render as Alembic does.
    """
    lines: list[str] = default_renderers.dispatch(op)(autogen_context, op)
    header = "with op.batch_alter_table("
    if autogen_context.opts.get("render_item") is not render_item or not lines or not lines[0].startswith(header):
        return lines
    autogen_context.imports.add(f"from {__package__}.alembic_template import NAMING_CONVENTION")
    lines[0] = lines[0].replace(") as batch_op:", ", naming_convention=NAMING_CONVENTION) as batch_op:")
    return lines
