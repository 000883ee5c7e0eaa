"""Rules: create, read, update, delete, list, enable and disable (shared/spec/openwhisk.md §3.4).

A rule's status is not stored with the rule: as in OpenWhisk, it is the link the rule's trigger
keeps (`controller.services.triggers`). A rule whose trigger is gone reads as inactive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from controller import messages
from controller.actionspec import bump_version, check_kv_size, parse_version
from controller.clock import now_ms
from controller.db.models import RuleRow, TriggerRow
from controller.domain import KeyValue, Namespace, kv_from_json, kv_json
from controller.errors import Conflict, InvalidInput, NotAuthorized, NotFound
from controller.limits import SystemLimits
from controller.names import EntityPath
from controller.services import resolver, triggers
from controller.services.triggers import RuleLink, RuleStatus, ref_from, ref_path


@dataclass(frozen=True)
class Rule:
    namespace: str
    name: str
    trigger: EntityPath
    action: EntityPath
    version: str
    publish: bool
    annotations: tuple[KeyValue, ...]
    updated: int
    status: RuleStatus | None = None  # None where it is not computed (lists)


@dataclass(frozen=True)
class RuleSpec:
    """A create or update request; None keeps the old value. References are resolved
    against the rule's namespace already."""

    trigger: EntityPath | None = None
    action: EntityPath | None = None
    annotations: tuple[KeyValue, ...] | None = None
    version: str | None = None
    publish: bool | None = None


def parse_status(value: Any) -> RuleStatus:
    """The status a `POST /rules/{name}` body asks for."""
    if value is None:
        raise InvalidInput(messages.malformed(messages.RULE_STATUS_MISSING))
    try:
        return RuleStatus(value)
    except ValueError:
        raise InvalidInput(messages.rule_state_invalid(str(value))) from None


def _key(namespace: Namespace, name: str) -> str:
    return f"{namespace.name}/{name}"


def _to_domain(row: RuleRow, namespace: str, status: RuleStatus | None) -> Rule:
    return Rule(
        namespace=namespace,
        name=row.name,
        trigger=ref_from(row.trigger_path, row.trigger_name),
        action=ref_from(row.action_path, row.action_name),
        version=row.version,
        publish=row.publish,
        annotations=kv_from_json(row.annotations),
        updated=row.updated,
        status=status,
    )


async def _row(session: AsyncSession, namespace: Namespace, name: str) -> RuleRow:
    row = await session.scalar(
        select(RuleRow).where(RuleRow.namespace_id == namespace.id, RuleRow.name == name)
    )
    if row is None:
        raise NotFound(messages.ENTITY_NOT_FOUND)
    return row


async def _trigger_of(
    session: AsyncSession, namespace: Namespace, row: RuleRow, *, lock: bool = False
) -> TriggerRow | None:
    if row.trigger_path != namespace.name:
        return None
    return await triggers.trigger_row(session, namespace.id, row.trigger_name, lock=lock)


def _status(trigger: TriggerRow | None, key: str) -> RuleStatus:
    link = triggers.link_of(trigger, key) if trigger is not None else None
    return link.status if link is not None else RuleStatus.INACTIVE


async def list_rules(
    session: AsyncSession, namespace: Namespace, skip: int, limit: int
) -> list[Rule]:
    """Newest update first, without status."""
    rows = await session.scalars(
        select(RuleRow)
        .where(RuleRow.namespace_id == namespace.id)
        .order_by(RuleRow.updated.desc(), RuleRow.id.desc())
        .offset(skip)
        .limit(limit)
    )
    return [_to_domain(row, namespace.name, None) for row in rows]


async def count_rules(session: AsyncSession, namespace: Namespace) -> int:
    query = select(func.count()).select_from(RuleRow).where(RuleRow.namespace_id == namespace.id)
    return int(await session.scalar(query) or 0)


async def get_rule(session: AsyncSession, namespace: Namespace, name: str) -> Rule:
    row = await _row(session, namespace, name)
    trigger = await _trigger_of(session, namespace, row)
    return _to_domain(row, namespace.name, _status(trigger, _key(namespace, name)))


async def _linkable_trigger(
    session: AsyncSession, namespace: Namespace, trigger: EntityPath, action: EntityPath
) -> TriggerRow:
    """The trigger a rule may link to `action`, locked for the link; 403 when either is in
    another namespace the caller may not read, 400 when either does not exist."""
    if trigger.namespace != namespace.name:
        raise NotAuthorized(messages.not_authorized(str(trigger).lstrip("/")))
    try:
        await resolver.resolve(session, namespace, action.namespace, action.action_name)
        action_exists = True
    except NotFound:
        action_exists = False
    row = None
    if not trigger.package:
        row = await triggers.trigger_row(session, namespace.id, trigger.name, lock=True)
    if row is None:
        raise InvalidInput(messages.trigger_missing(str(trigger)))
    if not action_exists:
        raise InvalidInput(messages.rule_action_missing(str(action)))
    return row


def _validate(spec: RuleSpec, limits: SystemLimits) -> None:
    if spec.annotations is not None:
        check_kv_size("annotations", spec.annotations, limits.parameters_max_bytes)
    if spec.version is not None:
        parse_version(spec.version)


async def put_rule(
    session: AsyncSession, namespace: Namespace, name: str, spec: RuleSpec,
    limits: SystemLimits, *, overwrite: bool,
) -> Rule:  # fmt: skip
    """Create the rule (active), or with `overwrite` update it (its status is kept). Both need
    the trigger and the action to exist."""
    _validate(spec, limits)
    row = await session.scalar(
        select(RuleRow).where(RuleRow.namespace_id == namespace.id, RuleRow.name == name)
    )
    if row is not None and not overwrite:
        raise Conflict(messages.RESOURCE_EXISTS)
    if row is None:
        return await _create(session, namespace, name, spec)
    return await _update(session, namespace, row, spec)


async def _create(session: AsyncSession, namespace: Namespace, name: str, spec: RuleSpec) -> Rule:
    if spec.trigger is None or spec.action is None:
        raise InvalidInput(messages.RULE_NEEDS_TRIGGER_AND_ACTION)
    trigger = await _linkable_trigger(session, namespace, spec.trigger, spec.action)
    row = RuleRow(
        namespace_id=namespace.id,
        name=name,
        trigger_path=ref_path(spec.trigger),
        trigger_name=spec.trigger.name,
        action_path=ref_path(spec.action),
        action_name=spec.action.name,
        annotations=kv_json(spec.annotations or ()),
        version=spec.version or "0.0.1",
        publish=bool(spec.publish),
        updated=now_ms(),
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise Conflict(messages.RESOURCE_EXISTS) from None
    triggers.set_link(trigger, _key(namespace, name), RuleLink(spec.action, RuleStatus.ACTIVE))
    await session.flush()
    return _to_domain(row, namespace.name, RuleStatus.ACTIVE)


async def _update(
    session: AsyncSession, namespace: Namespace, row: RuleRow, spec: RuleSpec
) -> Rule:
    key = _key(namespace, row.name)
    old = _to_domain(row, namespace.name, None)
    old_trigger = await _trigger_of(session, namespace, row, lock=True)
    status = _status(old_trigger, key)
    new_trigger_path = spec.trigger or old.trigger
    action = spec.action or old.action
    trigger = await _linkable_trigger(session, namespace, new_trigger_path, action)
    if old_trigger is not None and old_trigger is not trigger:
        triggers.set_link(old_trigger, key, None)
    triggers.set_link(trigger, key, RuleLink(action, status))
    row.trigger_path, row.trigger_name = ref_path(new_trigger_path), new_trigger_path.name
    row.action_path, row.action_name = ref_path(action), action.name
    if spec.annotations is not None:
        row.annotations = kv_json(spec.annotations)
    if spec.publish is not None:
        row.publish = spec.publish
    row.version = spec.version or bump_version(row.version)
    row.updated = now_ms()
    await session.flush()
    return _to_domain(row, namespace.name, status)


async def delete_rule(session: AsyncSession, namespace: Namespace, name: str) -> Rule:
    """Delete the rule and its link on the trigger; it is reported inactive."""
    row = await _row(session, namespace, name)
    trigger = await _trigger_of(session, namespace, row, lock=True)
    if trigger is not None:
        triggers.set_link(trigger, _key(namespace, name), None)
    rule = _to_domain(row, namespace.name, RuleStatus.INACTIVE)
    await session.delete(row)
    await session.flush()
    return rule


async def set_status(
    session: AsyncSession, namespace: Namespace, name: str, status: RuleStatus
) -> None:
    """Enable or disable the rule (nothing to do when it is in that state already). Changing
    it needs the trigger: a rule whose trigger is gone is inactive and stays so."""
    row = await _row(session, namespace, name)
    key = _key(namespace, name)
    trigger = await _trigger_of(session, namespace, row, lock=True)
    if _status(trigger, key) is status:
        return
    if trigger is None:
        raise NotFound(messages.RULE_TRIGGER_GONE)
    triggers.set_link(trigger, key, RuleLink(ref_from(row.action_path, row.action_name), status))
    await session.flush()
