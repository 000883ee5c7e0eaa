"""Periodic housekeeping in the controller: activation retention, expired State keys."""

from __future__ import annotations

import asyncio
import logging

from controller.clock import now_ms
from controller.execution.recorder import Transaction
from controller.execution.tasks import check_cancelled
from controller.services import activations, statestore

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000


async def purge_once(transaction: Transaction, retention_days: int) -> int:
    async with transaction() as session:
        removed = await activations.purge(session, now_ms() - retention_days * DAY_MS)
    if removed:
        log.info("purged %d activations older than %d days", removed, retention_days)
    return removed


async def sweep_state_once(transaction: Transaction) -> int:
    """Reclaim the space of expired State keys (they are invisible from their expiry on)."""
    async with transaction() as session:
        removed = await statestore.sweep(session)
    if removed:
        log.info("swept %d expired State keys", removed)
    return removed


async def purge_forever(
    transaction: Transaction, retention_days: int, interval_s: float = 600.0
) -> None:
    """Keep the activations and State tables bounded; every controller may run it (deletes
    are idempotent)."""
    while True:
        check_cancelled()
        # Sleep first: a controller that stops right after starting never leaves a database
        # call behind in a driver thread.
        await asyncio.sleep(interval_s)
        try:
            await purge_once(transaction, retention_days)
            await sweep_state_once(transaction)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("housekeeping failed")
