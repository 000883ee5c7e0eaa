"""Choosing an invoker and enqueuing an invocation; making action code available to it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from controller.errors import HomerunError
from invoker.protocol import FIELD, Invocation, InvokerInfo, Keys, live_invokers

CODE_TTL_S = 7 * 24 * 3600
_KNOWN_CODE_S = 30.0  # bounds how long code lost with a Redis restart stays missing
_INVOKERS_CACHE_S = 1.0


class NoInvokers(HomerunError):
    """No invoker is alive to take the invocation (503)."""


class Dispatcher:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._invokers: list[InvokerInfo] = []
        self._invokers_at = 0.0
        self._known_code: dict[str, float] = {}

    async def invokers(self) -> list[InvokerInfo]:
        now = time.monotonic()
        if now - self._invokers_at > _INVOKERS_CACHE_S or not self._invokers:
            self._invokers = await live_invokers(self.redis, self.keys)
            self._invokers_at = now
        return self._invokers

    async def choose(self, home_key: str) -> str:
        """The action's home invoker (a hash over the live ones), or the next ones in turn
        when it is full; the home one when all are full (work queues there, oldest first)."""
        infos = await self.invokers()
        if not infos:
            raise NoInvokers("No invokers are available to run the action; try again later.")
        home = int.from_bytes(hashlib.sha256(home_key.encode()).digest()[:8], "big") % len(infos)
        for step in range(len(infos)):
            info = infos[(home + step) % len(infos)]
            if await self.redis.xlen(self.keys.queue(info.id)) < info.slots:
                return info.id
        return infos[home].id

    async def enqueue(self, invocation: Invocation) -> str:
        target = await self.choose(f"{invocation.namespace}/{invocation.action.path}")
        await self.redis.xadd(self.keys.queue(target), {FIELD: invocation.encode()})
        return target

    async def ensure_code(self, digest: str, load: Callable[[], Awaitable[str | None]]) -> None:
        """Put the code of `digest` in Redis unless it is known to be there."""
        now = time.monotonic()
        if self._known_code.get(digest, 0.0) > now:
            return
        key = self.keys.code(digest)
        if await self.redis.expire(key, CODE_TTL_S):
            self._known_code[digest] = now + _KNOWN_CODE_S
            return
        code = await load()
        if code is None:
            raise HomerunError(f"the code of digest {digest} is missing from the database")
        await self.redis.set(key, code, ex=CODE_TTL_S)
        self._known_code[digest] = now + _KNOWN_CODE_S
