"""Triggers: create, read, update, delete, list, and firing them (shared/spec/openwhisk.md
§3.3, §10.1). As in OpenWhisk, a trigger holds the links of the rules that name it, each with
the rule's status; `controller.services.rules` maintains them."""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from controller import messages
from controller.actionspec import bump_version, check_kv_size, parse_version
from controller.clock import now_ms
from controller.db.models import TriggerRow
from controller.domain import KeyValue, Namespace, kv_from_json, kv_json
from controller.errors import Conflict, HomerunError, InvalidInput, NotFound
from controller.limits import SystemLimits
from controller.names import EntityPath
from controller.services import resolver

log = logging.getLogger(__name__)

FEED_ANNOTATION = "feed"


class RuleStatus(enum.StrEnum):
    """Whether a rule fires its action when its trigger fires."""

    ACTIVE = "active"
    INACTIVE = "inactive"


@dataclass(frozen=True)
class RuleLink:
    """A rule as its trigger records it: the action it fires and its status."""

    action: EntityPath
    status: RuleStatus


@dataclass(frozen=True)
class Trigger:
    namespace: str
    name: str
    version: str
    publish: bool
    parameters: tuple[KeyValue, ...]
    annotations: tuple[KeyValue, ...]
    updated: int
    rules: Mapping[str, RuleLink] | None  # keyed "<ns>/<rule>"; None until a rule names it


@dataclass(frozen=True)
class TriggerSpec:
    """A create or update request; None keeps the old value (or the default on create)."""

    parameters: tuple[KeyValue, ...] | None = None
    annotations: tuple[KeyValue, ...] | None = None
    version: str | None = None
    publish: bool | None = None


def ref_path(path: EntityPath) -> str:
    """OpenWhisk's `path` of a reference: the namespace, and the package if any."""
    return f"{path.namespace}/{path.package}" if path.package else path.namespace


def ref_from(path: str, name: str) -> EntityPath:
    namespace, _, package = path.partition("/")
    return EntityPath(namespace, package, name)


def _links(raw: dict[str, Any] | None) -> dict[str, RuleLink] | None:
    if raw is None:
        return None
    return {
        key: RuleLink(
            ref_from(link["action"]["path"], link["action"]["name"]), RuleStatus(link["status"])
        )
        for key, link in raw.items()
    }


def to_domain(row: TriggerRow, namespace: str) -> Trigger:
    return Trigger(
        namespace=namespace,
        name=row.name,
        version=row.version,
        publish=row.publish,
        parameters=kv_from_json(row.parameters),
        annotations=kv_from_json(row.annotations),
        updated=row.updated,
        rules=_links(row.rules),
    )


def link_of(row: TriggerRow, rule: str) -> RuleLink | None:
    """The link of `rule` ("<ns>/<name>") on the trigger, if it has one."""
    return (_links(row.rules) or {}).get(rule)


def set_link(row: TriggerRow, rule: str, link: RuleLink | None) -> None:
    """Record (or, with None, remove) the link of `rule` on the trigger."""
    rules = dict(row.rules or {})  # a new object, so that the JSON column is seen as changed
    if link is None:
        rules.pop(rule, None)
    else:
        rules[rule] = {
            "action": {"path": ref_path(link.action), "name": link.action.name},
            "status": link.status.value,
        }
    row.rules = rules


async def trigger_row(
    session: AsyncSession, namespace_id: int, name: str, *, lock: bool = False
) -> TriggerRow | None:
    """The trigger's row; `lock` takes a row lock for a read-modify-write of its links."""
    query = select(TriggerRow).where(
        TriggerRow.namespace_id == namespace_id, TriggerRow.name == name
    )
    if lock:
        query = query.with_for_update()
    return await session.scalar(query)


async def list_triggers(
    session: AsyncSession, namespace: Namespace, skip: int, limit: int
) -> list[Trigger]:
    """Newest update first."""
    rows = await session.scalars(
        select(TriggerRow)
        .where(TriggerRow.namespace_id == namespace.id)
        .order_by(TriggerRow.updated.desc(), TriggerRow.id.desc())
        .offset(skip)
        .limit(limit)
    )
    return [to_domain(row, namespace.name) for row in rows]


async def count_triggers(session: AsyncSession, namespace: Namespace) -> int:
    query = select(func.count()).select_from(TriggerRow)
    query = query.where(TriggerRow.namespace_id == namespace.id)
    return int(await session.scalar(query) or 0)


async def get_trigger(session: AsyncSession, namespace: Namespace, name: str) -> Trigger:
    row = await trigger_row(session, namespace.id, name)
    if row is None:
        raise NotFound(messages.ENTITY_NOT_FOUND)
    return to_domain(row, namespace.name)


def _is_entity_path(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        EntityPath.parse(value, "_")
    except InvalidInput:
        return False
    return True


def _validate(spec: TriggerSpec, limits: SystemLimits) -> None:
    if spec.parameters is not None:
        check_kv_size("parameters", spec.parameters, limits.parameters_max_bytes)
    if spec.annotations is not None:
        check_kv_size("annotations", spec.annotations, limits.parameters_max_bytes)
        for kv in spec.annotations:
            if kv.key == FEED_ANNOTATION and not _is_entity_path(kv.value):
                raise InvalidInput(messages.FEED_NAME_INVALID)
    if spec.version is not None:
        parse_version(spec.version)


async def put_trigger(
    session: AsyncSession, namespace: Namespace, name: str, spec: TriggerSpec,
    limits: SystemLimits, *, overwrite: bool,
) -> Trigger:  # fmt: skip
    """Create the trigger, or with `overwrite` update it: supplied fields replace the old ones,
    the version is the supplied one or the old one with patch + 1, rule links are kept."""
    _validate(spec, limits)
    row = await trigger_row(session, namespace.id, name)
    if row is not None and not overwrite:
        raise Conflict(messages.RESOURCE_EXISTS)
    if row is None:
        row = TriggerRow(
            namespace_id=namespace.id,
            name=name,
            parameters=kv_json(spec.parameters or ()),
            annotations=kv_json(spec.annotations or ()),
            rules=None,
            version=spec.version or "0.0.1",
            publish=bool(spec.publish),
            updated=now_ms(),
        )
        try:
            async with session.begin_nested():
                session.add(row)
        except IntegrityError:
            raise Conflict(messages.RESOURCE_EXISTS) from None
        return to_domain(row, namespace.name)
    if spec.parameters is not None:
        row.parameters = kv_json(spec.parameters)
    if spec.annotations is not None:
        row.annotations = kv_json(spec.annotations)
    if spec.publish is not None:
        row.publish = spec.publish
    row.version = spec.version or bump_version(row.version)
    row.updated = now_ms()
    await session.flush()
    return to_domain(row, namespace.name)


async def delete_trigger(session: AsyncSession, namespace: Namespace, name: str) -> Trigger:
    """Delete the trigger; its rules stay, inactive until a trigger of that name links them."""
    row = await trigger_row(session, namespace.id, name, lock=True)
    if row is None:
        raise NotFound(messages.ENTITY_NOT_FOUND)
    trigger = to_domain(row, namespace.name)
    await session.delete(row)
    await session.flush()
    return trigger


# Firing.


@dataclass(frozen=True)
class RuleFiring:
    """An active rule of a fired trigger: its action, or why that cannot be invoked."""

    rule: str  # "<ns>/<rule>"
    action: EntityPath  # as the rule names it
    target: resolver.Target | None
    error: HomerunError | None = None


@dataclass(frozen=True)
class FirePlan:
    caller: Namespace
    trigger: Trigger
    firings: tuple[RuleFiring, ...]  # empty: no active rule, nothing to record


async def plan_fire(session: AsyncSession, caller: Namespace, name: str) -> FirePlan:
    """What firing the trigger `name` of `caller` would activate (NotFound without it)."""
    trigger = await get_trigger(session, caller, name)
    firings = []
    for rule, link in (trigger.rules or {}).items():
        if link.status is not RuleStatus.ACTIVE:
            continue
        try:
            target = await resolver.resolve(
                session, caller, link.action.namespace, link.action.action_name
            )
        except HomerunError as exc:
            firings.append(RuleFiring(rule, link.action, None, exc))
        else:
            firings.append(RuleFiring(rule, link.action, target))
    return FirePlan(caller, trigger, tuple(firings))
