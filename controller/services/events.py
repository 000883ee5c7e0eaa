"""Adobe I/O Events registrations that route events to a namespace's action.

Only storage and validation live here; delivering events is a later capability.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields, replace

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from controller import messages
from controller.clock import now_ms
from controller.db.models import ActionRow, EventRegistrationRow
from controller.domain import EventOfInterest, EventRegistration, IntegrationStatus, Namespace
from controller.errors import Conflict, InvalidInput, NotFound
from controller.names import ActionName, EntityPath


@dataclass(frozen=True)
class RegistrationSpec:
    """A registration as requested; None leaves a field unchanged on update."""

    id: str | None = None
    name: str | None = None
    description: str | None = None
    client_id: str | None = None
    type: str | None = None
    integration_status: str | None = None
    delivery_type: str | None = None
    webhook_url: str | None = None
    events_of_interest: tuple[EventOfInterest, ...] | None = None
    runtime_action: str | None = None
    registration_id: str | None = None
    consumer_id: str | None = None
    application_id: str | None = None


def parse_status(value: str, field: str = "status") -> IntegrationStatus:
    """`enabled` or `disabled`, in any case; errors name `field`."""
    try:
        return IntegrationStatus(value.lower())
    except ValueError:
        raise InvalidInput(f"{field}: {messages.bad_status(value)}") from None


def _view(row: EventRegistrationRow, namespace: str) -> EventRegistration:
    return EventRegistration(
        namespace=namespace,
        id=row.public_id,
        registration_id=row.registration_id,
        client_id=row.client_id,
        name=row.name,
        description=row.description,
        type=row.type,
        integration_status=IntegrationStatus(row.integration_status),
        delivery_type=row.delivery_type,
        webhook_url=row.webhook_url,
        events_of_interest=tuple(EventOfInterest(**e) for e in row.events_of_interest),
        runtime_action=row.runtime_action,
        consumer_id=row.consumer_id,
        application_id=row.application_id,
        updated=row.updated,
    )


def _spec_of(reg: EventRegistration) -> RegistrationSpec:
    return RegistrationSpec(
        id=reg.id,
        name=reg.name,
        description=reg.description,
        client_id=reg.client_id,
        type=reg.type,
        integration_status=reg.integration_status.value,
        delivery_type=reg.delivery_type,
        webhook_url=reg.webhook_url,
        events_of_interest=reg.events_of_interest,
        runtime_action=reg.runtime_action,
        registration_id=reg.registration_id,
        consumer_id=reg.consumer_id,
        application_id=reg.application_id,
    )


async def _check_runtime_action(session: AsyncSession, namespace: Namespace, ref: str) -> None:
    try:
        path = EntityPath.parse(ref, namespace.name)
    except InvalidInput:
        raise InvalidInput(f"runtime_action: '{ref}' is not a valid action name") from None
    if path.namespace != namespace.name:
        raise InvalidInput(
            f"runtime_action: {messages.runtime_action_missing(ref, namespace.name)}"
        )
    name: ActionName = path.action_name
    found = await session.scalar(
        select(ActionRow.id).where(
            ActionRow.namespace_id == namespace.id,
            ActionRow.package == name.package,
            ActionRow.name == name.name,
        )
    )
    if found is None:
        raise InvalidInput(
            f"runtime_action: {messages.runtime_action_missing(ref, namespace.name)}"
        )


async def _validate(session: AsyncSession, namespace: Namespace, spec: RegistrationSpec) -> None:
    for field in ("name", "client_id", "registration_id", "runtime_action"):
        if not getattr(spec, field):
            raise InvalidInput(f"{field}: a non-empty string is required")
    if not spec.events_of_interest:
        raise InvalidInput(f"events_of_interest: {messages.EVENTS_OF_INTEREST_EMPTY}")
    for i, event in enumerate(spec.events_of_interest):
        if not event.event_code or not event.provider:
            raise InvalidInput(
                f"events_of_interest[{i}]: 'event_code' and 'provider' must be non-empty"
            )
    if spec.integration_status is not None:
        parse_status(spec.integration_status, "integration_status")
    assert spec.runtime_action is not None
    await _check_runtime_action(session, namespace, spec.runtime_action)


async def _row(
    session: AsyncSession, namespace: Namespace, client_id: str, registration_id: str
) -> EventRegistrationRow:
    row = await session.scalar(
        select(EventRegistrationRow).where(
            EventRegistrationRow.namespace_id == namespace.id,
            EventRegistrationRow.client_id == client_id,
            EventRegistrationRow.registration_id == registration_id,
        )
    )
    if row is None:
        raise NotFound(messages.registration_not_found(client_id, registration_id))
    return row


def _apply(row: EventRegistrationRow, spec: RegistrationSpec) -> None:
    row.public_id = spec.id or row.public_id
    row.name = spec.name or row.name
    for field in ("description", "type", "delivery_type", "webhook_url"):
        value = getattr(spec, field)
        if value is not None:
            setattr(row, field, value)
    if spec.integration_status is not None:
        row.integration_status = parse_status(spec.integration_status, "integration_status").value
    if spec.events_of_interest is not None:
        row.events_of_interest = [
            {"event_code": e.event_code, "provider": e.provider} for e in spec.events_of_interest
        ]
    if spec.runtime_action is not None:
        row.runtime_action = spec.runtime_action
    if spec.consumer_id is not None:
        row.consumer_id = spec.consumer_id
    if spec.application_id is not None:
        row.application_id = spec.application_id
    row.updated = now_ms()


async def register(
    session: AsyncSession, namespace: Namespace, spec: RegistrationSpec
) -> EventRegistration:
    """Create a registration; ids the caller leaves out are generated."""
    registration_id = spec.registration_id or str(uuid.uuid4())
    spec = replace(spec, registration_id=registration_id)
    await _validate(session, namespace, spec)
    assert spec.client_id is not None and spec.name is not None
    now = now_ms()
    row = EventRegistrationRow(
        namespace_id=namespace.id,
        public_id=spec.id or registration_id,
        registration_id=registration_id,
        client_id=spec.client_id,
        name=spec.name,
        integration_status=IntegrationStatus.ENABLED.value,
        events_of_interest=[],
        runtime_action="",
        created=now,
        updated=now,
    )
    _apply(row, spec)
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise Conflict(messages.registration_exists(spec.client_id, registration_id)) from None
    return _view(row, namespace.name)


async def get(
    session: AsyncSession, namespace: Namespace, client_id: str, registration_id: str
) -> EventRegistration:
    return _view(await _row(session, namespace, client_id, registration_id), namespace.name)


async def update(
    session: AsyncSession,
    namespace: Namespace,
    client_id: str,
    registration_id: str,
    spec: RegistrationSpec,
) -> EventRegistration:
    """Change the supplied fields of a registration; the ids in the path are authoritative."""
    for field, path_value in (("client_id", client_id), ("registration_id", registration_id)):
        given = getattr(spec, field)
        if given is not None and given != path_value:
            raise InvalidInput(f"{field}: '{given}' {messages.NAME_MISMATCH}")
    row = await _row(session, namespace, client_id, registration_id)
    base = _spec_of(_view(row, namespace.name))
    merged = RegistrationSpec(
        **{
            f.name: base_value if (value := getattr(spec, f.name)) is None else value
            for f in fields(RegistrationSpec)
            for base_value in [getattr(base, f.name)]
        }
    )
    await _validate(session, namespace, merged)
    _apply(row, spec)
    await session.flush()
    return _view(row, namespace.name)


async def set_status(
    session: AsyncSession,
    namespace: Namespace,
    client_id: str,
    registration_id: str,
    status: str,
) -> EventRegistration:
    parsed = parse_status(status)
    row = await _row(session, namespace, client_id, registration_id)
    row.integration_status = parsed.value
    row.updated = now_ms()
    await session.flush()
    return _view(row, namespace.name)


async def delete(
    session: AsyncSession, namespace: Namespace, client_id: str, registration_id: str
) -> EventRegistration:
    row = await _row(session, namespace, client_id, registration_id)
    registration = _view(row, namespace.name)
    await session.delete(row)
    await session.flush()
    return registration
