"""A controller's cache of what invocations look up in the database: callers' identities and
the actions they reach. Every entry is valid at one entity revision, a counter in Redis that
every committed change to namespaces, packages, actions, tokens or API keys bumps (on any
controller, and the `homerun admin` commands). The accept script checks the revision an
invocation was resolved at, in the same round trip that enqueues it; a stale one is refused,
resolved afresh and accepted again, so no controller ever runs what another one changed or
revoked, and a warm invocation of an unchanged action makes no SQL query at all.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from controller.clock import now_ms
from controller.execution.recorder import Transaction
from invoker.protocol import Keys

T = TypeVar("T")

# KEYS[1] the revision; ARGV[1] now (ms). A missing revision (a new or restarted Redis) starts
# at the clock, above any revision handed out before, so that no old cache entry matches it.
_CURRENT = """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return tonumber(redis.call('GET', KEYS[1]))
"""
_BUMP = """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('INCR', KEYS[1])
"""


async def bump_revision(redis: Redis, keys: Keys) -> int:
    """Tell every controller that cached entities changed; the new revision."""
    return int(await redis.eval(_BUMP, 1, keys.entities_revision, now_ms()))


MAX_ENTRIES = 20_000


@dataclass(frozen=True)
class _Entry:
    value: Any
    revision: int


class EntityCache:
    def __init__(
        self,
        redis: Redis | None,
        keys: Keys,
        transaction: Transaction,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        """Without Redis (no execution engine) nothing is kept: every lookup is fresh."""
        self.redis = redis
        self.keys = keys
        self.transaction = transaction
        self.max_entries = max_entries
        self.revision = -1  # the newest revision this controller knows of
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._current = None if redis is None else redis.register_script(_CURRENT)

    async def get(
        self, key: Hashable, load: Callable[[AsyncSession], Awaitable[T]], *, fresh: bool = False
    ) -> tuple[T, int]:
        """The value `load` finds for `key`, and the revision it is valid at: from the cache
        when it holds one at the newest known revision (and not `fresh`), else loaded."""
        if self.redis is None or self._current is None:
            async with self.transaction() as session:
                return await load(session), 0
        entry = None if fresh else self._entries.get(key)
        if entry is not None and entry.revision == self.revision:
            self._entries.move_to_end(key)
            value: T = entry.value
            return value, entry.revision
        # Read the revision before the database: a change committed in between makes the
        # entry look older than it is (refused once, then refilled), never newer.
        revision = int(await self._current(keys=[self.keys.entities_revision], args=[now_ms()]))
        async with self.transaction() as session:
            value = await load(session)
        self.advance(revision)
        if revision == self.revision:
            self._entries[key] = _Entry(value, revision)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value, revision

    def advance(self, revision: int) -> None:
        """Learn of a newer revision: every entry filled before it is stale."""
        if revision > self.revision:
            self.revision = revision
            self._entries.clear()

    async def changed(self) -> None:
        """Entities were changed (and committed) here: bump the revision for everyone."""
        if self.redis is not None:
            self.advance(await bump_revision(self.redis, self.keys))

    def __len__(self) -> int:
        return len(self._entries)
