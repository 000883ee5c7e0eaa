"""Log forwarding settings (Adobe I/O Runtime's `aio rt namespace log-forwarding`).

Homerun keeps every activation's logs itself; the settings are stored and reported so that the
tools work, and `adobe_io_runtime` (the default) means logs stay in Homerun. Forwarding to the
other destinations is not performed: `errors` says so.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.clock import now_ms
from controller.db.models import LogForwardingRow
from controller.domain import Namespace
from controller.errors import InvalidInput

DEFAULT = "adobe_io_runtime"
DESTINATIONS: dict[str, tuple[str, ...]] = {
    DEFAULT: (),
    "azure_log_analytics": ("customer_id", "shared_key", "log_type"),
    "splunk_hec": ("host", "port", "index", "hec_token"),
    "new_relic": ("base_uri", "license_key"),
}


def validate(body: Any) -> tuple[str, dict[str, Any]]:
    """`{destination: {settings}}` with exactly one known destination and its fields."""
    if not isinstance(body, dict) or len(body) != 1:
        raise InvalidInput('Log forwarding takes exactly one destination: {"<name>": {...}}.')
    ((destination, config),) = body.items()
    if destination not in DESTINATIONS:
        known = ", ".join(sorted(DESTINATIONS))
        raise InvalidInput(f"Unknown log forwarding destination '{destination}' ({known}).")
    if not isinstance(config, dict):
        raise InvalidInput(f"{destination}: the settings must be a JSON object.")
    missing = [f for f in DESTINATIONS[destination] if f not in config]
    if missing:
        raise InvalidInput(f"{destination}: missing {', '.join(missing)}.")
    return destination, config


async def get(session: AsyncSession, namespace: Namespace) -> dict[str, Any]:
    row = await session.get(LogForwardingRow, namespace.id)
    if row is None:
        return {DEFAULT: {}}
    return {row.destination: row.config}


async def put(session: AsyncSession, namespace: Namespace, body: Any) -> dict[str, Any]:
    destination, config = validate(body)
    row = await session.get(LogForwardingRow, namespace.id)
    if row is None:
        row = LogForwardingRow(namespace_id=namespace.id, destination=destination, config=config)
        session.add(row)
    row.destination, row.config, row.updated = destination, config, now_ms()
    await session.flush()
    return {destination: config}


async def errors(session: AsyncSession, namespace: Namespace) -> dict[str, Any]:
    current = await session.scalar(
        select(LogForwardingRow.destination).where(LogForwardingRow.namespace_id == namespace.id)
    )
    destination = current or DEFAULT
    problems = []
    if destination != DEFAULT:
        problems.append(
            f"Homerun keeps activation logs itself and does not forward them to {destination}."
        )
    return {"destination": destination, "errors": problems}
