"""Namespace throttles shared by every controller through Redis (shared/spec/openwhisk.md §9):
invocations per calendar minute, and concurrent in-flight activations."""

from __future__ import annotations

from redis.asyncio import Redis

from controller.errors import HomerunError
from invoker.protocol import Keys

_IN_FLIGHT_SLACK_MS = 120_000

# KEYS[1] minute counter; ARGV[1] allowed. Counts this request; returns the count.
_RATE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], 120000) end
return count
"""

# KEYS[1] in-flight sorted set (member: activation id, score: expiry ms)
# ARGV[1] now ms, ARGV[2] allowed, ARGV[3] activation id, ARGV[4] expiry ms.
# Drops expired members (work lost to a crash), then admits unless at the limit.
# Returns -1 when admitted, else the current count.
_CONCURRENT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local count = redis.call('ZCARD', KEYS[1])
if count >= tonumber(ARGV[2]) then return count end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('PEXPIRE', KEYS[1], 86400000)
return -1
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
        self._concurrent = redis.register_script(_CONCURRENT)

    async def check_rate(
        self, namespace: str, allowed: int, now_ms: int, kind: str = "invoke"
    ) -> None:
        key = self.keys.throttle(f"{kind}:{namespace}:{now_ms // 60_000}")
        count = int(await self._rate(keys=[key], args=[allowed]))
        if count > allowed:
            raise Throttled(rate_message(count, allowed))

    async def admit(
        self, namespace: str, activation_id: str, allowed: int, now_ms: int, timeout_ms: int
    ) -> None:
        """Count the activation as in flight until `release` (or its deadline passes)."""
        key = self.keys.throttle(f"inflight:{namespace}")
        expiry = now_ms + timeout_ms + _IN_FLIGHT_SLACK_MS
        count = int(
            await self._concurrent(keys=[key], args=[now_ms, allowed, activation_id, expiry])
        )
        if count >= 0:
            raise Throttled(concurrency_message(count, allowed))

    async def release(self, namespace: str, activation_id: str) -> None:
        await self.redis.zrem(self.keys.throttle(f"inflight:{namespace}"), activation_id)
