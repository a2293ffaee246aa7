"""What autogenerate writes into a plugin's revision, so that the revision runs as written on every backend.

- ``render_item``: the imports a rendered type needs (the app's own
  ``TypeDecorator`` classes; Alembic adds the dialect modules itself), and
  server defaults every backend accepts (``sa.true()``, ``sa.func.now()``
  rather than one backend's SQL text);
- batch blocks pass ``naming_convention``: the constraints batch mode
  reflects without a name (SQLite tables made before constraints were
  named) get the names ``naming`` gives, so a revision can drop them by name;
- ``prepare_revision``: a column added with a named ``Enum`` needs its type
  on PostgreSQL before ``ADD COLUMN`` (``CREATE TABLE`` makes it by itself),
  so the revision creates it first, ``checkfirst`` (a no-op on SQLite);
- ``render_code``: the same rendering for code outside a revision (the frozen
  baseline), returning the imports with the code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from alembic.autogenerate import render_python_code, renderers
from alembic.autogenerate.api import AutogenContext
from alembic.autogenerate.render import default_renderers
from alembic.operations import ops
from sqlalchemy import Enum, Table
from sqlalchemy.sql.elements import False_, True_
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Alembic's ``render_item`` hook: add the imports a type needs; render portable server defaults."""
    if type_ == "type" and isinstance(obj, TypeEngine):
        module = type(obj).__module__
        if not module.startswith("sqlalchemy.") and module != "builtins":
            # Alembic renders such a type as module.Class(...): the module must be imported.
            autogen_context.imports.add(f"import {module}")
        astext_type = getattr(obj, "astext_type", None)
        if module.startswith("sqlalchemy.dialects.") and isinstance(astext_type, TypeEngine):
            # A dialect's JSON rendered outside its own dialect (a variant, in a revision written against
            # SQLite) would say Text() where the revision only knows sa.Text().
            dialect = module.split(".")[2]
            autogen_context.imports.add(f"from sqlalchemy.dialects import {dialect}")
            return f"{dialect}.{type(obj).__name__}(astext_type=sa.{astext_type!r})"
    if type_ == "server_default":
        return _portable_default(getattr(obj, "arg", None))
    return False


def _portable_default(value: Any) -> str | Literal[False]:
    if isinstance(value, (True_, False_)):
        return "sa.true()" if isinstance(value, True_) else "sa.false()"
    if isinstance(value, FunctionElement) and not list(value.clauses) and value.name.isidentifier():
        return f"sa.func.{value.name}()"  # now() on PostgreSQL, CURRENT_TIMESTAMP on SQLite
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


class CreateEnumTypeOp(ops.MigrateOperation):
    """Create a named enum type if it is missing (PostgreSQL) before a column that uses it is added."""

    def __init__(self, enum: Enum) -> None:
        self.enum = enum


@renderers.dispatch_for(CreateEnumTypeOp)
def _render_create_enum_type(autogen_context: AutogenContext, op: CreateEnumTypeOp) -> str:
    values = ", ".join(repr(value) for value in op.enum.enums)
    return f"sa.Enum({values}, name={op.enum.name!r}).create(op.get_bind(), checkfirst=True)"


def _named_enum(type_: Any) -> Enum | None:
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    return type_ if isinstance(type_, Enum) and type_.native_enum and type_.name else None


def enum_types(tables: Iterable[Table]) -> list[Enum]:
    """The named enum types the tables' columns use, each once (PostgreSQL makes them types of their own)."""
    found: dict[str, Enum] = {}
    for table in tables:
        for column in table.columns:
            enum = _named_enum(column.type)
            if enum is not None:
                found.setdefault(str(enum.name), enum)
    return list(found.values())


def add_enum_types(upgrade_ops: ops.UpgradeOps) -> None:
    """Put a CreateEnumTypeOp before each table's operations that add a column of a named enum type."""
    operations: list[ops.MigrateOperation] = []
    created: set[str] = set()
    for operation in upgrade_ops.ops:
        if isinstance(operation, ops.ModifyTableOps):
            for change in operation.ops:
                enum = _named_enum(change.column.type) if isinstance(change, ops.AddColumnOp) else None
                if enum is not None and enum.name not in created:
                    created.add(str(enum.name))
                    operations.append(CreateEnumTypeOp(enum))
        operations.append(operation)
    upgrade_ops.ops = operations


def prepare_revision(context: Any, revision: Any, directives: list[ops.MigrationScript]) -> None:
    """Alembic's ``process_revision_directives`` hook of a plugin's environment: enum types before their columns."""
    for script in directives:
        for upgrade_ops in script.upgrade_ops_list:
            add_enum_types(upgrade_ops)


def render_code(operations: ops.UpgradeOps) -> tuple[str, set[str]]:
    """Python code for ``operations`` as a revision would hold it, and the imports that code needs."""
    imports: list[set[str]] = []

    def render_and_keep_imports(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
        if not imports:
            imports.append(autogen_context.imports)  # the context's own set: Alembic adds dialect modules after this
        return render_item(type_, obj, autogen_context)

    code = render_python_code(operations, render_item=render_and_keep_imports)
    return code, set(imports[0]) if imports else set()
