"""The system catalog: public packages of built-in actions, in namespaces of their own.

- `/whisk.system/utils`: OpenWhisk's building blocks for sequences (echo, cat, sort, ...).
- `/adobeio/shared-validators-v1/{headless-v2,app-registry,headless}` and the same under
  `adobeio-stage`: the validators that `aio app deploy` puts first in the web sequence of a
  `require-adobe-auth` action (shared/spec/adobe-runtime.md §4.3). They run as the namespace
  of that sequence and ask the API about its request's token (controller.services.adobeauth),
  so they need its API key (`provide-api-key`).

`sync` makes the database match the source files shipped in `controller/catalog/`; it runs
after migrations (`homerun db upgrade`) and is idempotent: an action whose code is unchanged
keeps its version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.actionspec import ActionSpec, ExecSpec
from controller.clock import now_ms
from controller.db.models import PackageRow
from controller.domain import KeyValue, Namespace
from controller.errors import Conflict, NotFound
from controller.names import SYSTEM_NAMESPACE, ActionName
from controller.services import actions, namespaces
from controller.services.actions import WriteContext

log = logging.getLogger(__name__)

CATALOG_DIR = Path(__file__).resolve().parent.parent / "catalog"
UTILS_PACKAGE = "utils"


@dataclass(frozen=True)
class BuiltIn:
    name: str
    source: str
    description: str
    annotations: tuple[KeyValue, ...] = ()

    @property
    def all_annotations(self) -> tuple[KeyValue, ...]:
        return (KeyValue("description", self.description), *self.annotations)


@dataclass(frozen=True)
class CatalogPackage:
    """A public package of built-ins in a namespace of its own (created if need be)."""

    namespace: str
    name: str
    description: str
    actions: tuple[BuiltIn, ...]


BUILT_INS = (
    BuiltIn("echo", "echo.js", "Returns the input parameters unchanged."),
    BuiltIn("cat", "cat.js", "Joins an array of lines into one text."),
    BuiltIn("sort", "sort.js", "Sorts an array of lines."),
    BuiltIn("head", "head.js", "Keeps the first lines of an array."),
    BuiltIn("split", "split.js", "Splits a text into an array of lines."),
    BuiltIn("date", "date.js", "Returns the current date and time."),
)

ADOBE_NAMESPACES = ("adobeio", "adobeio-stage")
VALIDATORS_PACKAGE = "shared-validators-v1"
_VALIDATOR = "adobe-auth-validator.js"
_VALIDATOR_ANNOTATIONS: tuple[KeyValue, ...] = (KeyValue("provide-api-key", True),)
VALIDATORS = (
    BuiltIn("headless-v2", _VALIDATOR, "require-adobe-auth: lets a request with a bearer token "
            "of the namespace through to the next action", _VALIDATOR_ANNOTATIONS),
    BuiltIn("app-registry", _VALIDATOR, "require-adobe-auth, for apps with a frontend: the same "
            "check as headless-v2", _VALIDATOR_ANNOTATIONS),
    BuiltIn("headless", _VALIDATOR, "require-adobe-auth (the name of older aio releases): the "
            "same check as headless-v2", _VALIDATOR_ANNOTATIONS),
)  # fmt: skip
PACKAGES = (
    CatalogPackage(SYSTEM_NAMESPACE, UTILS_PACKAGE, "Building blocks for sequences", BUILT_INS),
    *(
        CatalogPackage(namespace, VALIDATORS_PACKAGE, "Homerun's require-adobe-auth validators",
                       VALIDATORS)
        for namespace in ADOBE_NAMESPACES
    ),
)  # fmt: skip


async def system_namespace(session: AsyncSession) -> Namespace:
    return await namespaces.ensure(session, None, None, name=SYSTEM_NAMESPACE)


async def _ensure_public_package(
    session: AsyncSession, namespace: Namespace, name: str, description: str
) -> None:
    row = await session.scalar(
        select(PackageRow).where(PackageRow.namespace_id == namespace.id, PackageRow.name == name)
    )
    if row is None:
        session.add(
            PackageRow(
                namespace_id=namespace.id,
                name=name,
                publish=True,
                annotations=[{"key": "description", "value": description}],
                updated=now_ms(),
            )
        )
    elif not row.publish:
        row.publish = True
        row.updated = now_ms()
    await session.flush()


async def sync(session: AsyncSession, ctx: WriteContext) -> Namespace:
    """Create or refresh the built-in actions; returns the system namespace."""
    kind = ctx.manifest.resolve("nodejs:default")
    for package in PACKAGES:
        try:
            namespace = await namespaces.ensure(session, None, None, name=package.namespace)
        except Conflict:  # an organization's namespace has the name: it keeps it
            log.warning("the namespace %s is not the catalog's: its built-ins are not installed",
                        package.namespace)  # fmt: skip
            continue
        await _ensure_public_package(session, namespace, package.name, package.description)
        for builtin in package.actions:
            await _sync_action(session, ctx, namespace, ActionName(package.name, builtin.name),
                               builtin, kind)  # fmt: skip
    return await system_namespace(session)


async def _sync_action(
    session: AsyncSession,
    ctx: WriteContext,
    namespace: Namespace,
    name: ActionName,
    builtin: BuiltIn,
    kind: str,
) -> None:
    code = (CATALOG_DIR / builtin.source).read_text()
    spec = ActionSpec(exec=ExecSpec(kind=kind, code=code), annotations=builtin.all_annotations)
    try:
        current = await actions.get_action(session, namespace, name)
    except NotFound:
        await actions.create_action(session, namespace, name, spec, ctx)
        return
    stale = current.exec.code != code or current.exec.kind != kind
    if stale or any(kv not in current.annotations for kv in builtin.all_annotations):
        await actions.update_action(session, namespace, name, spec, ctx, honour_version=False)
