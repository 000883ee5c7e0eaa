"""Sequences in flight, journaled in Redis so that none is lost with the controller running it.

A sequence runs as a task of the controller that accepted it. Before it is accepted, its
record's fixed fields are written to a hash (`Keys.sequence`), indexed in one sorted set
(`Keys.sequences`); before each component is invoked, the component's activation id is added;
once the sequence's record is stored, the hash goes. Every controller beats a key of its own
(`Keys.controller_alive`). A journal whose controller stopped beating is taken over by another
controller, which records the sequence as a `whisk internal error` naming the components it
started (their own records, made by the invokers, say how far each got).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from controller.clock import now_ms
from controller.execution.reaper import REDIS_SETTLE_S
from controller.execution.tasks import check_cancelled
from controller.services.activations import Activation
from invoker.protocol import Keys, Outcome

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
ALIVE_MS = 5_000  # a controller silent this long is gone
TAKEOVER_LOCK_MS = 15_000
ORPHANED = (
    "The controller running this sequence stopped before the sequence ended; "
    "its components ran as far as their own activations show."
)


@dataclass(frozen=True)
class SequenceStart:
    """What a sequence's record holds from its start on."""

    activation_id: str
    namespace: str
    name: str
    version: str
    path: str
    start: int
    cause: str | None
    limits: dict[str, int]  # timeout, memory, logs
    conductor: bool = False  # a composition of a conductor action, not a sequence


def sequence_record(
    started: SequenceStart,
    response: dict[str, Any],
    components: list[str],
    *,
    duration: int,
    memory: int,
) -> Activation:
    """The activation record of a sequence: ended, or orphaned by its controller."""
    limits = {**started.limits, "memory": memory or started.limits["memory"]}
    return Activation(
        activation_id=started.activation_id,
        namespace=started.namespace,
        name=started.name,
        subject=started.namespace,
        version=started.version,
        start=started.start,
        end=now_ms(),
        duration=duration,
        status_code=int(response.get("statusCode", 0 if response.get("success") else 1)),
        response=response,
        logs=components,
        annotations=[
            {"key": "topmost", "value": started.cause is None},
            {"key": "path", "value": started.path},
            {"key": "kind", "value": "sequence"},
            {"key": "waitTime", "value": 0},
            {"key": "limits", "value": limits},
            *([{"key": "conductor", "value": True}] if started.conductor else []),
            *([{"key": "causedBy", "value": "sequence"}] if started.cause else []),
        ],
        cause=started.cause,
    )


def failure(status: Outcome, message: str) -> dict[str, Any]:
    return {
        "status": status.value,
        "statusCode": status.status_code,
        "success": False,
        "result": {"error": message},
    }


class SequenceJournal:
    """The journals of one controller's sequences, and the takeover of other controllers'."""

    def __init__(self, redis: Redis, keys: Keys, owner: str) -> None:
        self.redis = redis
        self.keys = keys
        self.owner = owner
        self._running: set[str] = set()

    async def begin(self, started: SequenceStart) -> None:
        """Journal a sequence before it is accepted (a Redis error: not accepted)."""
        self._running.add(started.activation_id)  # before it shows: ours, and running
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(
                    self.keys.sequence(started.activation_id),
                    mapping={
                        "owner": self.owner,
                        "start": json.dumps(asdict(started)),
                        "components": "[]",
                    },
                )
                pipe.zadd(self.keys.sequences, {started.activation_id: started.start})
                await pipe.execute()
        except BaseException:
            self._running.discard(started.activation_id)
            raise

    async def components(self, activation_id: str, components: list[str]) -> None:
        """Note the components started so far, before the last of them is invoked."""
        await self.redis.hset(
            self.keys.sequence(activation_id), "components", json.dumps(components)
        )

    def release(self, activation_id: str) -> None:
        """The sequence stopped short of its record (cancelled, or the database failed): the
        takeover records it, as if this controller had stopped."""
        self._running.discard(activation_id)

    async def end(self, activation_id: str) -> None:
        """The sequence is recorded: forget it. Should Redis not answer, this controller's own
        takeover finds the journal later, and storing the record again is a no-op."""
        self._running.discard(activation_id)
        try:
            await self._forget(activation_id)
        except RedisError as exc:
            log.warning("could not forget the journal of sequence %s: %s", activation_id, exc)

    async def _forget(self, activation_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.sequence(activation_id))
            pipe.zrem(self.keys.sequences, activation_id)
            await pipe.execute()

    async def beat_forever(self) -> None:
        while True:
            check_cancelled()
            try:
                await self.redis.set(self.keys.controller_alive(self.owner), 1, px=ALIVE_MS)
            except RedisError as exc:
                log.warning("controller heartbeat failed: %s", exc)
            await asyncio.sleep(HEARTBEAT_S)

    async def stop_beating(self) -> None:
        """A controller that stops hands its unfinished sequences over at once."""
        try:
            await self.redis.delete(self.keys.controller_alive(self.owner))
        except RedisError as exc:
            log.warning("could not withdraw the controller heartbeat: %s", exc)

    async def take_over_once(self, store: Callable[[Activation, str], Awaitable[None]]) -> int:
        """Record each sequence whose controller is gone as failed; how many."""
        if int((await self.redis.info("server"))["uptime_in_seconds"]) < REDIS_SETTLE_S:
            return 0  # heartbeats that expired while Redis was down have not come back yet
        listed = await self.redis.zrange(self.keys.sequences, 0, -1)
        ids = [i for i in map(_text, listed) if i not in self._running]
        if not ids:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for activation_id in ids:
                pipe.hget(self.keys.sequence(activation_id), "owner")
            owners: dict[str, str | None] = {
                i: None if raw is None else _text(raw)
                for i, raw in zip(ids, await pipe.execute(), strict=True)
            }
        others = sorted({o for o in owners.values() if o and o != self.owner})
        async with self.redis.pipeline(transaction=False) as pipe:
            for owner in others:
                pipe.exists(self.keys.controller_alive(owner))
            alive = {o for o, up in zip(others, await pipe.execute(), strict=True) if up}
        taken = 0
        for activation_id, left_by in owners.items():
            if left_by is None:  # its record was stored and the journal forgotten meanwhile
                await self.redis.zrem(self.keys.sequences, activation_id)
            elif left_by not in alive and await self._take_over(activation_id, left_by, store):
                taken += 1
        return taken

    async def _take_over(
        self, activation_id: str, owner: str, store: Callable[[Activation, str], Awaitable[None]]
    ) -> bool:
        lock = self.keys.sequence_lock(activation_id)
        if not await self.redis.set(lock, self.owner, nx=True, px=TAKEOVER_LOCK_MS):
            return False  # another controller is on it
        try:
            journal = await self.redis.hgetall(self.keys.sequence(activation_id))
            if not journal:
                return False
            started = SequenceStart(**json.loads(journal[b"start"]))
            components: list[str] = json.loads(journal[b"components"])
            response = failure(Outcome.INTERNAL_ERROR, ORPHANED)
            record = sequence_record(started, response, components, duration=0, memory=0)
            await store(record, started.path)
            await self._forget(activation_id)
        finally:
            await self.redis.delete(lock)
        log.warning(
            "sequence %s was left by controller %s after starting %d components: recorded as "
            "failed", activation_id, owner, len(components),
        )  # fmt: skip
        return True

    async def take_over_forever(
        self, store: Callable[[Activation, str], Awaitable[None]], interval_s: float = 1.0
    ) -> None:
        while True:
            check_cancelled()
            try:
                await self.take_over_once(store)
            except asyncio.CancelledError:
                raise
            except (RedisError, ValueError, KeyError) as exc:
                log.warning("taking over sequences failed: %s", exc)
            except Exception:
                log.exception("taking over sequences failed")
            await asyncio.sleep(interval_s)


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
