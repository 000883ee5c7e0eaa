"""Actions: create, read, update, delete, list. Code lives in the code store."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from controller import messages
from controller.actionspec import (
    ActionSpec,
    bump_version,
    check_kv_size,
    merge_annotations,
    parse_version,
    resolve_exec,
    resolve_limits,
    with_server_annotations,
)
from controller.clock import now_ms
from controller.db.models import ActionRow, PackageRow
from controller.domain import Action, ActionLimits, Exec, KeyValue, Namespace, kv_from_json, kv_json
from controller.errors import Conflict, InvalidInput, NotFound
from controller.limits import SystemLimits
from controller.names import ActionName, EntityPath
from controller.runtimes import SEQUENCE_KIND, Manifest
from controller.services import codestore, resolver


@dataclass(frozen=True)
class WriteContext:
    """What validating an action write needs besides the request."""

    manifest: Manifest
    limits: SystemLimits
    blackbox_images: tuple[str, ...] = ()  # patterns of the images blackbox actions may use


def to_domain(row: ActionRow, namespace: str, code: str | None) -> Action:
    return Action(
        namespace=namespace,
        package=row.package,
        name=row.name,
        exec=Exec(
            kind=row.kind,
            code=code,
            binary=row.binary,
            main=row.main,
            image=row.image,
            components=tuple(row.components or ()),
        ),
        limits=ActionLimits(row.timeout, row.memory, row.logs, row.concurrency),
        version=row.version,
        publish=row.publish,
        parameters=kv_from_json(row.parameters),
        annotations=kv_from_json(row.annotations),
        updated=row.updated,
        code_digest=row.code_digest,
    )


async def _row(session: AsyncSession, namespace_id: int, name: ActionName) -> ActionRow | None:
    return await session.scalar(
        select(ActionRow).where(
            ActionRow.namespace_id == namespace_id,
            ActionRow.package == name.package,
            ActionRow.name == name.name,
        )
    )


async def list_actions(
    session: AsyncSession, namespace: Namespace, skip: int = 0, limit: int | None = None
) -> list[Action]:
    """Actions of a namespace (packaged ones included), newest update first, without code."""
    query = (
        select(ActionRow)
        .where(ActionRow.namespace_id == namespace.id)
        .order_by(ActionRow.updated.desc(), ActionRow.id.desc())
        .offset(skip)
    )
    if limit is not None:
        query = query.limit(limit)
    rows = await session.scalars(query)
    return [to_domain(row, namespace.name, None) for row in rows]


async def count_actions(session: AsyncSession, namespace: Namespace) -> int:
    query = (
        select(func.count()).select_from(ActionRow).where(ActionRow.namespace_id == namespace.id)
    )
    return int(await session.scalar(query) or 0)


async def get_action(
    session: AsyncSession, namespace: Namespace, name: ActionName, *, with_code: bool = True
) -> Action:
    row = await _row(session, namespace.id, name)
    if row is None:
        raise NotFound(messages.action_not_found(namespace.name, str(name)))
    code = await codestore.get(session, row.code_digest) if with_code and row.code_digest else None
    return to_domain(row, namespace.name, code)


async def _ensure_package(
    session: AsyncSession, namespace: Namespace, package: str, *, create: bool
) -> None:
    row = await session.scalar(
        select(PackageRow).where(
            PackageRow.namespace_id == namespace.id, PackageRow.name == package
        )
    )
    if row is None:
        if not create:
            raise NotFound(
                f"The package '{package}' does not exist in namespace '{namespace.name}'."
            )
        async with session.begin_nested():
            session.add(PackageRow(namespace_id=namespace.id, name=package, updated=now_ms()))
        return
    if row.binding_name is not None:
        raise InvalidInput("Operation not permitted on package binding.")


def _validate_common(spec: ActionSpec, ctx: WriteContext) -> None:
    limit = ctx.limits.parameters_max_bytes
    if spec.parameters is not None:
        check_kv_size("parameters", spec.parameters, limit)
    if spec.annotations is not None:
        check_kv_size("annotations", spec.annotations, limit)
    if spec.version is not None:
        parse_version(spec.version)


async def create_action(
    session: AsyncSession,
    namespace: Namespace,
    name: ActionName,
    spec: ActionSpec,
    ctx: WriteContext,
    *,
    create_package: bool = True,
) -> Action:
    """Create an action; Conflict if the name is taken."""
    if spec.exec is None:
        raise InvalidInput(messages.EXEC_UNDEFINED)
    _validate_common(spec, ctx)
    exec_ = resolve_exec(spec.exec, ctx.manifest, ctx.limits, blackbox_images=ctx.blackbox_images)
    concurrent = ctx.manifest.runs_concurrently(exec_.kind)
    limits = resolve_limits(spec.limits, None, ctx.limits, concurrent=concurrent)
    if await _row(session, namespace.id, name) is not None:
        raise Conflict(messages.action_exists(namespace.name, str(name)))
    if exec_.kind == SEQUENCE_KIND:
        await check_sequence(session, namespace, name, exec_.components, ctx.limits)
    if name.package:
        await _ensure_package(session, namespace, name.package, create=create_package)
    digest = await codestore.put(session, exec_.code) if exec_.code is not None else None
    row = ActionRow(
        namespace_id=namespace.id,
        package=name.package,
        name=name.name,
        kind=exec_.kind,
        main=exec_.main,
        binary=exec_.binary,
        image=exec_.image,
        components=_resolved_components(namespace, exec_.components) or None,
        code_digest=digest,
        parameters=kv_json(spec.parameters or ()),
        annotations=kv_json(
            with_server_annotations(spec.annotations or (), exec_.kind, creating=True)
        ),
        timeout=limits.timeout,
        memory=limits.memory,
        logs=limits.logs,
        concurrency=limits.concurrency,
        version=spec.version or "0.0.1",
        publish=bool(spec.publish),
        updated=now_ms(),
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise Conflict(messages.action_exists(namespace.name, str(name))) from None
    return to_domain(row, namespace.name, exec_.code)


async def update_action(
    session: AsyncSession,
    namespace: Namespace,
    name: ActionName,
    spec: ActionSpec,
    ctx: WriteContext,
    *,
    honour_version: bool = True,
    delete_annotations: tuple[str, ...] = (),
) -> Action:
    """Update an existing action: supplied fields replace (annotations merge), the version
    takes the supplied value or the old one with patch + 1."""
    row = await _row(session, namespace.id, name)
    if row is None:
        raise NotFound(messages.action_not_found(namespace.name, str(name)))
    _validate_common(spec, ctx)
    old_digest = row.code_digest
    code: str | None = None
    if spec.exec is not None:
        requested = spec.exec
        if requested.kind is None:  # new code alone keeps the kind
            requested = replace(requested, kind=row.kind)
        exec_ = resolve_exec(
            requested, ctx.manifest, ctx.limits, blackbox_images=ctx.blackbox_images
        )
        if exec_.kind == SEQUENCE_KIND:
            await check_sequence(session, namespace, name, exec_.components, ctx.limits)
        row.kind = exec_.kind
        row.main = exec_.main
        row.binary = exec_.binary
        row.image = exec_.image
        row.components = _resolved_components(namespace, exec_.components) or None
        row.code_digest = (
            await codestore.put(session, exec_.code) if exec_.code is not None else None
        )
        code = exec_.code
    elif row.code_digest:
        code = await codestore.get(session, row.code_digest)
    current = ActionLimits(row.timeout, row.memory, row.logs, row.concurrency)
    concurrent = ctx.manifest.runs_concurrently(row.kind)
    limits = resolve_limits(spec.limits, current, ctx.limits, concurrent=concurrent)
    row.timeout, row.memory, row.logs = limits.timeout, limits.memory, limits.logs
    row.concurrency = limits.concurrency
    if spec.parameters is not None:
        row.parameters = kv_json(spec.parameters)
    kept = tuple(kv for kv in kv_from_json(row.annotations) if kv.key not in delete_annotations)
    annotations = merge_annotations(kept, spec.annotations)
    row.annotations = kv_json(with_server_annotations(annotations, row.kind, creating=False))
    if spec.publish is not None:
        row.publish = spec.publish
    if honour_version and spec.version is not None:
        row.version = spec.version
    else:
        row.version = bump_version(row.version)
    row.updated = now_ms()
    await session.flush()
    if old_digest and old_digest != row.code_digest:
        await codestore.collect_garbage(session, [old_digest])
    return to_domain(row, namespace.name, code)


async def delete_action(session: AsyncSession, namespace: Namespace, name: ActionName) -> Action:
    action = await get_action(session, namespace, name)
    row = await _row(session, namespace.id, name)
    await session.delete(row)
    await session.flush()
    if action.code_digest:
        await codestore.collect_garbage(session, [action.code_digest])
    return action


def _resolved_components(namespace: Namespace, components: tuple[str, ...]) -> list[str]:
    return [str(EntityPath.parse(c, namespace.name)) for c in components]


async def _lookup_component(session: AsyncSession, caller: Namespace, path: EntityPath) -> Action:
    """A sequence component the caller may invoke (controller.services.resolver)."""
    try:
        target = await resolver.resolve(session, caller, path.namespace, path.action_name)
    except NotFound:
        raise InvalidInput(f"exec.components: {messages.SEQUENCE_COMPONENT_MISSING}") from None
    return target.action


async def check_sequence(
    session: AsyncSession,
    namespace: Namespace,
    name: ActionName,
    components: tuple[str, ...],
    limits: SystemLimits,
) -> None:
    """Components must exist and be readable, must not lead back to this action, and the
    sequence inlined into atomic actions must stay within the length limit."""
    self_path = str(EntityPath(namespace.name, name.package, name.name))
    atomic = visited = 0
    pending = [EntityPath.parse(c, namespace.name) for c in components]
    while pending:
        path = pending.pop()
        if str(path) == self_path:
            raise InvalidInput(f"exec.components: {messages.SEQUENCE_SELF}")
        visited += 1
        if visited > 4 * limits.sequence_max_length:
            # Only a cycle among existing sequences gets here; refuse rather than loop.
            raise InvalidInput(f"exec.components: {messages.SEQUENCE_TOO_LONG}")
        component = await _lookup_component(session, namespace, path)
        if component.exec.kind == SEQUENCE_KIND:
            owner = component.namespace
            pending.extend(EntityPath.parse(c, owner) for c in component.exec.components)
        else:
            atomic += 1
        if atomic > limits.sequence_max_length:
            raise InvalidInput(f"exec.components: {messages.SEQUENCE_TOO_LONG}")


async def package_parameters(
    session: AsyncSession, namespace: Namespace, package: str
) -> tuple[KeyValue, ...]:
    """The parameters of a package of `namespace` (none for the default package)."""
    if not package:
        return ()
    raw = await session.scalar(
        select(PackageRow.parameters).where(
            PackageRow.namespace_id == namespace.id, PackageRow.name == package
        )
    )
    return kv_from_json(raw)


async def package_is_public(session: AsyncSession, namespace: Namespace, package: str) -> bool:
    """Published, and a real package: another namespace's binding is never readable."""
    publish = await session.scalar(
        select(PackageRow.publish).where(
            PackageRow.namespace_id == namespace.id,
            PackageRow.name == package,
            PackageRow.binding_name.is_(None),
        )
    )
    return bool(publish)


async def list_package_actions(
    session: AsyncSession, namespace: Namespace, package: str, skip: int, limit: int
) -> list[Action]:
    rows = await session.scalars(
        select(ActionRow)
        .where(ActionRow.namespace_id == namespace.id, ActionRow.package == package)
        .order_by(ActionRow.updated.desc(), ActionRow.id.desc())
        .offset(skip)
        .limit(limit)
    )
    return [to_domain(row, namespace.name, None) for row in rows]
