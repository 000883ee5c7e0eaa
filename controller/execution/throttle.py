"""Namespace throttles shared by every controller through Redis (shared/spec/openwhisk.md §9):
invocations per calendar minute, and concurrent in-flight activations. Invocations are
counted and admitted by the accept script (controller.execution.dispatch), in the round trip
that enqueues them; fires and sequences are counted here."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from controller.errors import HomerunError
from invoker.protocol import Keys

IN_FLIGHT_SLACK_MS = 120_000  # an in-flight mark outlives its deadline by this much

# KEYS[1] minute counter; ARGV[1] allowed. Counts this request; returns the count.
_RATE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], 120000) end
return count
"""


class Throttled(HomerunError):
    """Too many requests (429)."""


def rate_message(count: int, allowed: int) -> str:
    return f"Too many requests in the last minute (count: {count}, allowed: {allowed})."


def concurrency_message(count: int, allowed: int) -> str:
    return f"Too many concurrent requests in flight (count: {count}, allowed: {allowed})."


class Throttle:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._rate = redis.register_script(_RATE)

    async def check_rate(
        self, namespace: str, allowed: int, now_ms: int, kind: str = "invoke"
    ) -> None:
        key = self.keys.throttle(f"{kind}:{namespace}:{now_ms // 60_000}")
        count = int(await self._rate(keys=[key], args=[allowed]))
        if count > allowed:
            raise Throttled(rate_message(count, allowed))

    def release(self, pipe: Pipeline, namespace: str, activation_id: str) -> None:
        """Queue, on `pipe`, the end of an activation's in-flight mark."""
        pipe.zrem(self.keys.throttle(f"inflight:{namespace}"), activation_id)
