"""The system catalog: `whisk.system` and its public `utils` package of built-in actions.

`sync` makes the database match the source files shipped in `controller/catalog/`; it runs
after migrations (`homerun db upgrade`) and is idempotent: an action whose code is unchanged
keeps its version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.actionspec import ActionSpec, ExecSpec
from controller.clock import now_ms
from controller.db.models import PackageRow
from controller.domain import KeyValue, Namespace
from controller.errors import NotFound
from controller.names import SYSTEM_NAMESPACE, ActionName
from controller.services import actions, namespaces
from controller.services.actions import WriteContext

CATALOG_DIR = Path(__file__).resolve().parent.parent / "catalog"
UTILS_PACKAGE = "utils"


@dataclass(frozen=True)
class BuiltIn:
    name: str
    source: str
    description: str


BUILT_INS = (
    BuiltIn("echo", "echo.js", "Returns the input parameters unchanged."),
    BuiltIn("cat", "cat.js", "Joins an array of lines into one text."),
    BuiltIn("sort", "sort.js", "Sorts an array of lines."),
    BuiltIn("head", "head.js", "Keeps the first lines of an array."),
    BuiltIn("split", "split.js", "Splits a text into an array of lines."),
    BuiltIn("date", "date.js", "Returns the current date and time."),
)


async def system_namespace(session: AsyncSession) -> Namespace:
    return await namespaces.ensure(session, None, None, name=SYSTEM_NAMESPACE)


async def _ensure_public_package(session: AsyncSession, namespace: Namespace, name: str) -> None:
    row = await session.scalar(
        select(PackageRow).where(PackageRow.namespace_id == namespace.id, PackageRow.name == name)
    )
    if row is None:
        session.add(
            PackageRow(
                namespace_id=namespace.id,
                name=name,
                publish=True,
                annotations=[{"key": "description", "value": "Building blocks for sequences"}],
                updated=now_ms(),
            )
        )
    elif not row.publish:
        row.publish = True
        row.updated = now_ms()
    await session.flush()


async def sync(session: AsyncSession, ctx: WriteContext) -> Namespace:
    """Create or refresh the built-in actions; returns the system namespace."""
    namespace = await system_namespace(session)
    await _ensure_public_package(session, namespace, UTILS_PACKAGE)
    kind = ctx.manifest.resolve("nodejs:default")
    for builtin in BUILT_INS:
        code = (CATALOG_DIR / builtin.source).read_text()
        name = ActionName(UTILS_PACKAGE, builtin.name)
        spec = ActionSpec(
            exec=ExecSpec(kind=kind, code=code),
            annotations=(KeyValue("description", builtin.description),),
        )
        try:
            current = await actions.get_action(session, namespace, name)
        except NotFound:
            await actions.create_action(session, namespace, name, spec, ctx)
            continue
        if current.exec.code != code or current.exec.kind != kind:
            await actions.update_action(session, namespace, name, spec, ctx, honour_version=False)
    return namespace
