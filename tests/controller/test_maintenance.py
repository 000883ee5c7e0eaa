"""Activation retention keeps the table bounded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx

from controller.clock import now_ms
from controller.db.engine import create_engine, session_factory
from controller.maintenance import DAY_MS, purge_once
from controller.services import activations
from controller.services.activations import Activation
from controller.settings import Settings
from controller.setup import in_transaction


def activation(activation_id: str, start: int) -> Activation:
    return Activation(
        activation_id=activation_id, namespace="acme-int1", name="a", subject="acme-int1",
        version="0.0.1", start=start, end=start + 1, duration=1, status_code=0,
        response={"status": "success", "success": True, "result": {}}, logs=[], annotations=[],
    )  # fmt: skip


async def test_purge_removes_only_old_activations(
    client: httpx.AsyncClient,
    settings: Settings,
    create_namespace: Callable[[str, str], Awaitable[dict[str, Any]]],
) -> None:
    await create_namespace("acme", "int1")
    old, recent = "a" * 32, "b" * 32
    now = now_ms()

    async def seed(session: Any) -> None:
        await activations.store(session, activation(old, now - 8 * DAY_MS), "acme-int1/a")
        await activations.store(session, activation(recent, now - 6 * DAY_MS), "acme-int1/a")

    await in_transaction(settings, seed)
    engine = create_engine(settings.effective_database_url)
    sessions = session_factory(engine)

    def transaction() -> AbstractAsyncContextManager[Any]:
        return sessions.begin()

    try:
        assert await purge_once(transaction, 7) == 1
        assert await purge_once(transaction, 7) == 0
    finally:
        await engine.dispose()

    async def remaining(session: Any) -> list[Any]:
        return [await activations.get(session, i) for i in (old, recent)]

    gone, kept = await in_transaction(settings, remaining)
    assert gone is None and kept is not None
