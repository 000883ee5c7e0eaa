"""Consumes invoker results: one activation record each, then wakes the waiting caller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.ext.asyncio import AsyncSession

from controller.execution.tasks import check_cancelled
from controller.services import activations
from invoker.protocol import FIELD, RECORDERS_GROUP, Keys, Reply, Result, is_nogroup

log = logging.getLogger(__name__)

Transaction = Callable[[], Any]  # an async context manager factory yielding a session
Notify = Callable[[Pipeline, Result], None]
"""`notify` queues, on the pipeline that acknowledges a batch of recorded results, what follows
each (its in-flight mark goes, remote waiters hear of it); `early_notify` runs before they
are recorded, for waiters in this process, which get the result itself."""

CLAIM_IDLE_MS = 30_000


class Recorder:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        consumer: str,
        transaction: Transaction,
        notify: Notify,
        early_notify: Callable[[Result], None] = lambda result: None,
        *,
        batch: int = 100,
        block_ms: int = 1000,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.transaction = transaction
        self.notify = notify
        self.early_notify = early_notify
        self.batch = batch
        self.block_ms = block_ms

    async def setup(self) -> None:
        with contextlib.suppress(ResponseError):  # BUSYGROUP
            await self.redis.xgroup_create(self.keys.results, RECORDERS_GROUP, "0", mkstream=True)

    async def run(self) -> None:
        await self.setup()
        await self._consume("0")  # our own unacknowledged results from an earlier life
        rounds = 0
        while True:
            check_cancelled()
            try:
                handled = await self._consume(">")
                rounds += 1
                if not handled or rounds % 50 == 0:
                    await self._claim_abandoned()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recording results failed; retrying")
                await asyncio.sleep(1.0)

    async def _consume(self, start: str) -> int:
        try:
            reply: Any = await self.redis.xreadgroup(
                RECORDERS_GROUP, self.consumer, {self.keys.results: start},
                count=self.batch, block=None if start == "0" else self.block_ms,
            )  # fmt: skip
        except ResponseError as exc:
            if not is_nogroup(exc):
                raise
            log.warning("the results stream lost its group (Redis restarted empty): %s", exc)
            await self.setup()
            return 0
        entries = [(eid, f) for _s, msgs in reply or [] for eid, f in msgs if f]
        await self._record(entries)
        return len(entries)

    async def _claim_abandoned(self) -> None:
        """Take over results another (dead) controller read but never acknowledged."""
        try:
            claimed_reply: Any = await self.redis.xautoclaim(
                self.keys.results, RECORDERS_GROUP, self.consumer, CLAIM_IDLE_MS, "0-0",
                count=self.batch,
            )  # fmt: skip
        except RedisError as exc:
            log.warning("claiming abandoned results failed: %s", exc)
            return
        await self._record([(eid, f) for eid, f in claimed_reply[1] if f])

    async def _record(self, entries: list[tuple[Any, dict[bytes, bytes]]]) -> None:
        if not entries:
            return
        results = []
        for _entry_id, fields in entries:
            try:
                results.append(Result.decode(fields.get(FIELD.encode(), b"")))
            except ValueError as exc:
                log.error("dropping an undecodable result: %s", exc)
        for result in results:
            self.early_notify(result)
        async with self.transaction() as session:
            await self._store(session, results)
        # Acknowledge only once recorded: a recorder dying before this leaves the results
        # pending, and another one claims and records them.
        ids = [eid for eid, _ in entries]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.keys.results, RECORDERS_GROUP, *ids)
            pipe.xdel(self.keys.results, *ids)
            for result in results:
                self.notify(pipe, result)
            await pipe.execute()

    async def _store(self, session: AsyncSession, results: list[Result]) -> None:
        await activations.record_all(session, results)


def queue_reply(pipe: Pipeline, keys: Keys, result: Result) -> None:
    """Tell the controller the caller waits in that the record is written."""
    if result.reply_to:
        pipe.publish(
            keys.replies(result.reply_to), Reply(activation_id=result.activation_id).encode()
        )
