"""Finds invokers whose heartbeat stopped and settles their queued and running work."""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from controller.clock import now_ms
from controller.execution.tasks import check_cancelled
from invoker.protocol import Keys, dead_invokers, forget_invoker, live_invokers, reap_queue

log = logging.getLogger(__name__)

# A Redis that started less than this ago has not heard from live invokers yet: the alive
# keys it loaded from its append-only file expired while it was down. (Invokers heartbeat
# every second or so by default, and their keys live 5 s.)
REDIS_SETTLE_S = 10


async def reap_once(redis: Redis, keys: Keys, owner: str) -> tuple[int, int]:
    """One pass over the dead invokers; returns (redelivered, failed) totals. Nothing is
    reaped while Redis itself has just started."""
    totals = [0, 0]
    if int((await redis.info("server"))["uptime_in_seconds"]) < REDIS_SETTLE_S:
        return 0, 0
    for dead in await dead_invokers(redis, keys):
        if not await redis.set(keys.reaper_lock(dead), owner, nx=True, px=15_000):
            continue  # another controller is on it
        try:
            live = [info.id for info in await live_invokers(redis, keys)]
            redelivered, failed = await reap_queue(redis, keys, dead, live, now_ms())
            totals[0] += redelivered
            totals[1] += failed
            if redelivered or failed:
                log.warning(
                    "invoker %s is gone: %d invocations redelivered, %d recorded as lost",
                    dead, redelivered, failed,
                )  # fmt: skip
            await forget_invoker(redis, keys, dead)
        finally:
            await redis.delete(keys.reaper_lock(dead))
    return totals[0], totals[1]


async def reap_forever(redis: Redis, keys: Keys, owner: str, interval_s: float = 1.0) -> None:
    while True:
        check_cancelled()
        try:
            await reap_once(redis, keys, owner)
        except asyncio.CancelledError:
            raise
        except (RedisError, ValueError) as exc:
            log.warning("reaping failed: %s", exc)
        await asyncio.sleep(interval_s)
