"""Stopping background tasks reliably."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_all(tasks: Iterable[asyncio.Task[Any]], timeout_s: float = 10.0) -> None:
    """Cancel tasks and wait for them, cancelling again while they linger: on Python 3.11 a
    cancellation can be swallowed inside `asyncio.wait_for` (CPython gh-86296), which the
    Redis client uses for every command."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    pending = {task for task in tasks if not task.done()}
    while pending and loop.time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)


def check_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop. Loops call it each round: the
    cancellation itself can be swallowed (gh-86296) or turned into a driver error that the
    loop's retry would absorb, but the task's cancel request count stays."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
