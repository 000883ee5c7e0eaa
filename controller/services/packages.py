"""Packages and package bindings (shared/spec/openwhisk.md §2.6, §3.6).

A package groups actions, which inherit its parameters. A binding is a package of the caller's
that points at another package (its own, or a public one of another namespace) and adds or
overrides parameters; it holds no actions itself. Another namespace's packages are readable
only when published, and its bindings never are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import NoReturn

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from controller import messages
from controller.actionspec import bump_version, check_kv_size, parse_version
from controller.clock import now_ms
from controller.db.models import ActionRow, PackageRow
from controller.domain import Action, KeyValue, Namespace, kv_from_json, kv_json
from controller.errors import Conflict, InvalidInput, NotAuthorized, NotFound
from controller.limits import SystemLimits
from controller.names import DEFAULT_PACKAGE, ActionName, check_segment
from controller.services import actions, namespaces

BINDING_ANNOTATION = "binding"  # set by the server on every binding, never by the client
FEED_ANNOTATION = "feed"
CALLER_NAMESPACE = "_"

Layers = tuple[tuple[KeyValue, ...], ...]


@dataclass(frozen=True)
class BindingRef:
    """The package a binding points at. In a request `namespace` may be `_`, the caller's."""

    namespace: str
    name: str

    @property
    def path(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class PackageSpec:
    """A create or update request; None means 'empty on create, unchanged on update'."""

    parameters: tuple[KeyValue, ...] | None = None
    annotations: tuple[KeyValue, ...] | None = None
    publish: bool | None = None
    version: str | None = None
    binding: BindingRef | None = None


@dataclass(frozen=True)
class Package:
    namespace: str
    name: str
    binding: BindingRef | None = None
    parameters: tuple[KeyValue, ...] = ()
    annotations: tuple[KeyValue, ...] = ()
    version: str = "0.0.1"
    publish: bool = False
    updated: int = 0


@dataclass(frozen=True)
class PackageView:
    """A package as GET shows it: for a binding, the bound package's parameters merged under
    the binding's own, and the bound package's actions (without code)."""

    package: Package
    actions: tuple[Action, ...]


# Pure rules.


def inherit_parameters(
    package: Iterable[KeyValue], binding: Iterable[KeyValue]
) -> tuple[KeyValue, ...]:
    """The bound package's parameters overridden by the binding's, the package's order kept."""
    merged = {kv.key: kv for kv in package}
    merged.update({kv.key: kv for kv in binding})
    return tuple(merged.values())


def is_feed(action: Action) -> bool:
    """An action annotated `feed` (whatever the value) is listed among a package's feeds."""
    return any(kv.key == FEED_ANNOTATION for kv in action.annotations)


def with_binding_annotation(
    annotations: Iterable[KeyValue], binding: BindingRef | None
) -> tuple[KeyValue, ...]:
    """Drop any client-supplied `binding` annotation; a binding gets the server's."""
    result = [kv for kv in annotations if kv.key != BINDING_ANNOTATION]
    if binding is not None:
        value = {"namespace": binding.namespace, "name": binding.name}
        result.append(KeyValue(BINDING_ANNOTATION, value))
    return tuple(result)


def resolve_ref(ref: BindingRef, caller: Namespace) -> BindingRef:
    """Validate a requested binding target and resolve `_` to the caller's namespace."""
    namespace = ref.namespace
    if namespace == CALLER_NAMESPACE:
        namespace = caller.name
    else:
        check_segment(namespace, namespace=True)
    return BindingRef(namespace, check_segment(ref.name))


def _validate(spec: PackageSpec, limits: SystemLimits) -> None:
    for field, pairs in (("parameters", spec.parameters), ("annotations", spec.annotations)):
        if pairs is not None:
            check_kv_size(field, pairs, limits.parameters_max_bytes)
    if spec.version is not None:
        parse_version(spec.version)


# Rows.


def _binding_of(row: PackageRow, namespace: str) -> BindingRef | None:
    if row.binding_name is None:
        return None
    return BindingRef(row.binding_namespace or namespace, row.binding_name)


def _to_domain(row: PackageRow, namespace: str) -> Package:
    return Package(
        namespace=namespace,
        name=row.name,
        binding=_binding_of(row, namespace),
        parameters=kv_from_json(row.parameters),
        annotations=kv_from_json(row.annotations),
        version=row.version,
        publish=row.publish,
        updated=row.updated,
    )


async def _row(session: AsyncSession, namespace_id: int, name: str) -> PackageRow | None:
    return await session.scalar(
        select(PackageRow).where(PackageRow.namespace_id == namespace_id, PackageRow.name == name)
    )


async def _is_action(session: AsyncSession, namespace_id: int, name: str) -> bool:
    """Whether `name` is an action outside packages: OpenWhisk keeps one name space for all
    the collections of a namespace."""
    found = await session.scalar(
        select(ActionRow.id).where(
            ActionRow.namespace_id == namespace_id, ActionRow.package == "", ActionRow.name == name
        )
    )
    return found is not None


async def _missing(session: AsyncSession, owner: Namespace, name: str) -> NoReturn:
    if await _is_action(session, owner.id, name):
        raise Conflict(messages.NOT_IN_COLLECTION)
    raise NotFound(messages.ENTITY_NOT_FOUND)


async def _owner(session: AsyncSession, caller: Namespace, namespace: str) -> Namespace | None:
    if namespace == caller.name:
        return caller
    return await namespaces.get_by_name(session, namespace)


async def _public_package(session: AsyncSession, ref: BindingRef) -> tuple[Namespace, PackageRow]:
    """A package of another namespace: readable only if published and not a binding (a
    missing one is as unreadable as a private one: 403, never 404)."""
    owner = await namespaces.get_by_name(session, ref.namespace)
    row = None if owner is None else await _row(session, owner.id, ref.name)
    if owner is None or row is None or row.binding_name is not None or not row.publish:
        raise NotAuthorized(messages.not_authorized(ref.path))
    return owner, row


async def _bound(
    session: AsyncSession, caller: Namespace, ref: BindingRef
) -> tuple[Namespace, PackageRow]:
    """The package one of the caller's bindings points at, if the caller may still read it."""
    if ref.namespace != caller.name:
        return await _public_package(session, ref)
    row = await _row(session, caller.id, ref.name)
    if row is None or row.binding_name is not None:
        raise NotFound(messages.ENTITY_NOT_FOUND)
    return caller, row


async def _package_actions(
    session: AsyncSession, owner: Namespace, package: str
) -> tuple[Action, ...]:
    rows = await session.scalars(
        select(ActionRow)
        .where(ActionRow.namespace_id == owner.id, ActionRow.package == package)
        .order_by(ActionRow.name)
    )
    return tuple(actions.to_domain(row, owner.name, None) for row in rows)


def _visible(owner: Namespace, caller: Namespace) -> list[ColumnElement[bool]]:
    conditions = [PackageRow.namespace_id == owner.id]
    if owner.id != caller.id:
        conditions += [PackageRow.publish.is_(True), PackageRow.binding_name.is_(None)]
    return conditions


# Reads.


async def list_packages(
    session: AsyncSession, caller: Namespace, namespace: str, skip: int, limit: int
) -> list[Package]:
    """Packages of `namespace`, newest update first: all of the caller's own, only the public
    non-binding ones of another namespace (none of a namespace that does not exist)."""
    owner = await _owner(session, caller, namespace)
    if owner is None:
        return []
    rows = await session.scalars(
        select(PackageRow)
        .where(*_visible(owner, caller))
        .order_by(PackageRow.updated.desc(), PackageRow.id.desc())
        .offset(skip)
        .limit(limit)
    )
    return [_to_domain(row, owner.name) for row in rows]


async def count_packages(session: AsyncSession, caller: Namespace, namespace: str) -> int:
    owner = await _owner(session, caller, namespace)
    if owner is None:
        return 0
    query = select(func.count()).select_from(PackageRow).where(*_visible(owner, caller))
    return int(await session.scalar(query) or 0)


async def get_package(
    session: AsyncSession, caller: Namespace, namespace: str, name: str
) -> PackageView:
    check_segment(name)
    if namespace != caller.name:
        owner, public = await _public_package(session, BindingRef(namespace, name))
        return PackageView(
            _to_domain(public, owner.name), await _package_actions(session, owner, name)
        )
    row = await _row(session, caller.id, name)
    if row is None:
        await _missing(session, caller, name)
    package = _to_domain(row, caller.name)
    if package.binding is None:
        return PackageView(package, await _package_actions(session, caller, name))
    owner, target = await _bound(session, caller, package.binding)
    merged = inherit_parameters(kv_from_json(target.parameters), package.parameters)
    return PackageView(
        replace(package, parameters=merged), await _package_actions(session, owner, target.name)
    )


async def resolve_binding(
    session: AsyncSession, caller: Namespace, namespace: str, package: str
) -> tuple[Namespace, str, Layers] | None:
    """For an action addressed as `/{namespace}/{package}/...` where `package` is one of the
    caller's bindings: the bound package's owner and name, and the parameter layers (the
    bound package's, then the binding's). None when `package` is not a binding of the
    caller's. NotFound or NotAuthorized when the bound package is gone or no longer readable."""
    if not package or namespace != caller.name:
        return None
    row = await _row(session, caller.id, package)
    if row is None:
        return None
    binding = _to_domain(row, caller.name)
    if binding.binding is None:
        return None
    owner, target = await _bound(session, caller, binding.binding)
    return owner, target.name, (kv_from_json(target.parameters), binding.parameters)


# Writes (the caller's own namespace only; the API checks that first).


async def _check_target(session: AsyncSession, caller: Namespace, ref: BindingRef) -> None:
    """A binding may point at a readable package that is not itself a binding."""
    if ref.namespace != caller.name:
        await _public_package(session, ref)
        return
    row = await _row(session, caller.id, ref.name)
    if row is None:
        if await _is_action(session, caller.id, ref.name):
            raise Conflict(messages.BINDING_TO_NON_PACKAGE)
        raise InvalidInput(messages.BINDING_TARGET_MISSING)
    if row.binding_name is not None:
        raise InvalidInput(messages.BINDING_TO_BINDING)


async def _create(
    session: AsyncSession,
    caller: Namespace,
    name: str,
    spec: PackageSpec,
) -> Package:
    binding = spec.binding
    row = PackageRow(
        namespace_id=caller.id,
        name=name,
        publish=bool(spec.publish),
        binding_namespace=binding.namespace if binding else None,
        binding_name=binding.name if binding else None,
        parameters=kv_json(spec.parameters or ()),
        annotations=kv_json(with_binding_annotation(spec.annotations or (), binding)),
        version=spec.version or "0.0.1",
        updated=now_ms(),
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise Conflict(messages.RESOURCE_EXISTS) from None
    return _to_domain(row, caller.name)


async def _update(
    session: AsyncSession, caller: Namespace, row: PackageRow, spec: PackageSpec
) -> Package:
    binding = spec.binding or _binding_of(row, caller.name)
    if binding is not None:
        row.binding_namespace, row.binding_name = binding.namespace, binding.name
    if spec.parameters is not None:
        row.parameters = kv_json(spec.parameters)
    annotations = kv_from_json(row.annotations) if spec.annotations is None else spec.annotations
    row.annotations = kv_json(with_binding_annotation(annotations, binding))
    if spec.publish is not None:
        row.publish = spec.publish
    row.version = spec.version or bump_version(row.version)
    row.updated = now_ms()
    await session.flush()
    return _to_domain(row, caller.name)


async def put_package(
    session: AsyncSession,
    caller: Namespace,
    name: str,
    spec: PackageSpec,
    limits: SystemLimits,
    *,
    overwrite: bool,
) -> Package:
    """Create a package or binding, or (with `overwrite`) update it: supplied fields replace
    the old ones, the version takes the supplied value or the old one with patch + 1."""
    if check_segment(name) == DEFAULT_PACKAGE:
        raise InvalidInput(messages.RESERVED_PACKAGE)
    _validate(spec, limits)
    if spec.binding is not None:
        target = resolve_ref(spec.binding, caller)
        await _check_target(session, caller, target)
        spec = replace(spec, binding=target)
    row = await _row(session, caller.id, name)
    if row is None:
        if await _is_action(session, caller.id, name):
            raise Conflict(messages.NOT_IN_COLLECTION)
        return await _create(session, caller, name, spec)
    if not overwrite:
        raise Conflict(messages.RESOURCE_EXISTS)
    if spec.binding is not None and row.binding_name is None:
        raise Conflict(messages.PACKAGE_TO_BINDING)
    return await _update(session, caller, row, spec)


async def delete_package(
    session: AsyncSession, caller: Namespace, name: str, *, force: bool
) -> Package:
    """Delete a package or binding. A package that still holds actions needs `force`, which
    deletes them first (their code goes with them unless shared)."""
    check_segment(name)
    row = await _row(session, caller.id, name)
    if row is None:
        await _missing(session, caller, name)
    package = _to_domain(row, caller.name)
    if package.binding is None:
        contained = list(
            await session.scalars(
                select(ActionRow.name).where(
                    ActionRow.namespace_id == caller.id, ActionRow.package == name
                )
            )
        )
        if contained and not force:
            raise Conflict(messages.package_not_empty(len(contained)))
        for action in contained:
            await actions.delete_action(session, caller, ActionName(name, action))
    await session.delete(row)
    await session.flush()
    return package
