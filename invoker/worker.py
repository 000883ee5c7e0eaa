"""The invoker's worker: reads its queue, runs invocations within a concurrency bound,
heartbeats its capacity, drains on SIGTERM. Constructed from arguments only."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from invoker import messages
from invoker.pool import ContainerPool, StemCellSpec
from invoker.protocol import (
    CLAIM_SCRIPT,
    COMPLETE_SCRIPT,
    FIELD,
    INVOKER_GROUP,
    Invocation,
    InvokerInfo,
    Keys,
    Outcome,
    Reason,
    Result,
    is_nogroup,
    live_invokers,
    reap_queue,
    stem_cells_of,
)
from invoker.runner import Runner, now_ms

T = TypeVar("T")

MANIFEST_POLL_S = 0.25  # until a controller has published the runtimes manifest

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        invoker_id: str,
        runner: Runner,
        pool: ContainerPool,
        *,
        slots: int = 16,
        memory_mb: int = 2048,
        heartbeat_s: float = 1.0,
        alive_ttl_s: float = 5.0,
        drain_timeout_s: float = 60.0,
        block_ms: int = 500,
        prewarm: bool = True,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.id = invoker_id
        self.runner = runner
        self.pool = pool
        self.slots = slots
        self.memory_mb = memory_mb
        self.heartbeat_s = heartbeat_s
        self.alive_ttl_s = alive_ttl_s
        self.drain_timeout_s = drain_timeout_s
        self.block_ms = block_ms
        self.prewarm = prewarm
        self.started = now_ms()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._claim = redis.register_script(CLAIM_SCRIPT)
        self._complete = redis.register_script(COMPLETE_SCRIPT)
        self.completed = 0
        self._prewarming: asyncio.Task[None] | None = None
        self._departing = False

    # Lifecycle.

    async def startup(self) -> None:
        await self._ensure_group()
        await self._heartbeat_once()
        if self.prewarm:
            await self._prewarm()

    async def _ensure_group(self) -> None:
        """The queue's consumer group, at start and whenever Redis lost it (restarted
        without persistence)."""
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists already
            await self.redis.xgroup_create(
                self.keys.queue(self.id), INVOKER_GROUP, "0", mkstream=True
            )

    async def _prewarm(self) -> None:
        self._prewarming = asyncio.create_task(self._prewarm_once_published())

    async def _prewarm_once_published(self) -> None:
        """Start the stem cells of the manifest the controllers publish, once one has (an
        invoker may start first: the standalone starts both at once)."""
        raw = None
        while raw is None:
            if self._departing:
                return
            try:
                raw = await self.redis.get(self.keys.runtimes)
            except RedisError as exc:
                log.warning("reading the runtimes manifest failed: %s", exc)
            if raw is None:
                await asyncio.sleep(MANIFEST_POLL_S)
        cells = stem_cells_of(json.loads(raw))
        self.pool.stem_cells = tuple(
            StemCellSpec(c.kind, c.image, c.memory, c.count) for c in cells
        )
        await self.pool.prewarm()

    async def run(self, *, burst: bool = False) -> None:
        """Serve until `stop()`; with `burst`, stop once the queue is empty and idle."""
        await self.startup()
        background = [
            asyncio.create_task(self._heartbeat(), name="heartbeat"),
            asyncio.create_task(self._tend_idle(), name="idle-containers"),
        ]
        try:
            await self._recover_pending()
            await self._serve(burst)
            await self._drain()
        finally:
            # The loops also watch this flag: a cancellation can be lost inside the Redis
            # client (CPython gh-86296), and a heartbeat after departure would re-register.
            self._departing = True
            for task in background:
                task.cancel()
            await asyncio.wait(background, timeout=5)
            await self._depart()

    def stop(self) -> None:
        """Stop taking work; running invocations finish (up to the drain timeout)."""
        self._stopping.set()

    async def _serve(self, burst: bool) -> None:
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                free = self.slots - len(self._tasks)
                if free <= 0:
                    await asyncio.wait([stop, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
                    continue
                entries = await self._read(">", free)
                if not entries and burst and not self._tasks:
                    return
                for entry_id, raw in entries:
                    self._spawn(entry_id, raw)
        finally:
            stop.cancel()

    async def _read(self, start: str, count: int) -> list[tuple[str, bytes]]:
        try:
            reply: Any = await self.redis.xreadgroup(
                INVOKER_GROUP, self.id, {self.keys.queue(self.id): start},
                count=count, block=None if start == "0" else self.block_ms,
            )  # fmt: skip
        except RedisError as exc:
            log.warning("reading the queue failed: %s", exc)
            if is_nogroup(exc):  # Redis came back empty: read on at once
                with contextlib.suppress(RedisError):
                    await self._ensure_group()
                    return []
            await asyncio.sleep(0.5)
            return []
        entries = []
        for _stream, messages_ in reply or []:
            for entry_id, fields in messages_:
                if fields:  # a deleted entry still pending shows with no fields
                    # An entry without the field is dropped by _handle, like bad JSON.
                    entries.append((_str(entry_id), fields.get(FIELD.encode(), b"")))
        return entries

    def _spawn(self, entry_id: str, raw: bytes) -> None:
        task = asyncio.create_task(self._handle(entry_id, raw))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _recover_pending(self) -> None:
        """Entries delivered to an earlier life of this invoker id: those that had started
        are recorded as lost, the others run now."""
        running = await self.redis.hgetall(self.keys.running(self.id))
        started = {_str(v) for v in running.values()}
        for entry_id, raw in await self._read("0", 10_000):
            if entry_id in started:
                inv = Invocation.decode(raw)
                result = Result.failure(
                    inv, Outcome.INTERNAL_ERROR, Reason.ABANDONED, messages.ABANDONED,
                    start=now_ms(), end=now_ms(), invoker=self.id,
                )  # fmt: skip
                await self._publish(entry_id, inv.activation_id, result)
            else:
                self._spawn(entry_id, raw)

    async def _drain(self) -> None:
        if self._tasks:
            log.info("draining %d running activations", len(self._tasks))
            _, pending = await asyncio.wait(self._tasks, timeout=self.drain_timeout_s)
            # Cancel again while any lingers: a cancellation can be swallowed inside the
            # Redis client on Python 3.11 (CPython gh-86296).
            for _ in range(100):
                if not pending:
                    break
                for task in pending:
                    task.cancel()
                _, pending = await asyncio.wait(pending, timeout=0.1)

    async def _depart(self) -> None:
        """Hand queued work to live invokers, then deregister (when nothing is left)."""
        try:
            await self.redis.delete(self.keys.alive(self.id))
            others = [i.id for i in await live_invokers(self.redis, self.keys) if i.id != self.id]
            await reap_queue(self.redis, self.keys, self.id, others, now_ms())
            if not await self.redis.xlen(self.keys.queue(self.id)):
                await self.redis.hdel(self.keys.invokers, self.id)
                await self.redis.delete(self.keys.queue(self.id), self.keys.running(self.id))
        except Exception as exc:  # whatever happens, the containers go
            log.warning("could not hand over queued work: %s", exc)
        finally:
            await self.pool.close()

    # One invocation.

    async def _answer(self, result: Result) -> None:
        """The blocking caller's answer, straight to the controller that waits (its record
        follows through the results stream)."""
        assert result.reply_to is not None
        await self.redis.publish(self.keys.replies(result.reply_to), result.encode())

    async def _handle(self, entry_id: str, raw: bytes) -> None:
        try:
            inv = Invocation.decode(raw)
        except ValueError as exc:
            await self._refuse(entry_id, raw, exc)
            return
        # What the claim returned: None if not yet (or it never went through), "" if the reaper
        # had moved the entry, else the epoch of Redis's data at the claim (it started).
        epoch: str | None = None

        async def claim() -> bool:
            """Mark it started once its container is ready (until then, a crash of this
            invoker leaves it to run elsewhere, not to be recorded as lost)."""
            nonlocal epoch
            reply = await self._retrying(
                f"claiming {inv.activation_id}",
                lambda: self._claim(
                    keys=[self.keys.queue(self.id), self.keys.running(self.id), self.keys.epoch],
                    args=[entry_id, inv.activation_id, secrets.token_hex(8)],
                ),
            )
            if reply is not None:
                epoch = "" if reply == 0 else _str(reply)
            return bool(epoch)

        try:
            result = await self.runner.execute(inv, self._answer if inv.reply_to else None, claim)
            if result is None:
                if epoch == "":  # the reaper moved it elsewhere
                    await self.redis.xack(self.keys.queue(self.id), INVOKER_GROUP, entry_id)
                return  # or Redis is gone: the entry stays pending for a later life
        except asyncio.CancelledError:
            if not epoch:  # it never started: it stays queued, for another invoker
                raise
            result = Result.failure(
                inv, Outcome.INTERNAL_ERROR, Reason.ABANDONED, messages.ABANDONED,
                start=now_ms(), end=now_ms(), invoker=self.id,
            )  # fmt: skip
            await asyncio.shield(self._publish(entry_id, inv.activation_id, result, epoch))
            raise
        await asyncio.shield(self._publish(entry_id, inv.activation_id, result, epoch or ""))
        self.completed += 1

    async def _refuse(self, entry_id: str, raw: bytes, exc: ValueError) -> None:
        """A queue entry that is not a valid invocation: recorded as a failed activation when
        enough of it reads (its id, namespace and action), else dropped with a log line."""
        inv = Invocation.salvage(raw)
        if inv is None:
            log.error("dropping an undecodable queue entry %s: %s", entry_id, exc)
            await self.redis.xack(self.keys.queue(self.id), INVOKER_GROUP, entry_id)
            await self.redis.xdel(self.keys.queue(self.id), entry_id)
            return
        log.error("invocation %s could not be decoded: %s", inv.activation_id, exc)
        result = Result.failure(
            inv, Outcome.INTERNAL_ERROR, Reason.INTERNAL, messages.UNDECODABLE,
            start=now_ms(), end=now_ms(), invoker=self.id,
        )  # fmt: skip
        await self._publish(entry_id, inv.activation_id, result)

    async def _publish(
        self, entry_id: str, activation_id: str, result: Result, epoch: str = ""
    ) -> None:
        """Complete the entry and append the result, retrying through Redis hiccups; with
        the `epoch` of its claim, even if Redis lost the entry since (see COMPLETE_SCRIPT)."""
        keys = [
            self.keys.queue(self.id), self.keys.running(self.id), self.keys.results,
            self.keys.epoch,
        ]  # fmt: skip
        try:
            encoded = result.encode()
        except ValueError as exc:  # checked where it came in, so a bug: still recorded
            log.error("the result of %s could not be encoded: %s", activation_id, exc)
            encoded = result.model_copy(
                update={"result": {"error": messages.UNENCODABLE}, "logs": []}
            ).encode()
        args = [entry_id, activation_id, encoded, INVOKER_GROUP, FIELD, epoch]
        await self._retrying(
            f"publishing the result of {activation_id}",
            lambda: self._complete(keys=keys, args=args),
        )

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T | None:
        """`call()`, tried again through Redis errors with a growing pause; None if it never
        went through."""
        for attempt in range(20):
            try:
                return await call()
            except RedisError as exc:
                log.warning("%s failed (attempt %d): %s", what, attempt + 1, exc)
                await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
        log.error("giving up %s", what)
        return None

    # Heartbeat.

    def info(self) -> InvokerInfo:
        return InvokerInfo(
            id=self.id,
            slots=self.slots,
            memory_mb=self.memory_mb,
            sandbox=self.pool.sandbox.name,
            started=self.started,
            heartbeat=now_ms(),
        )

    async def _heartbeat_once(self) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.alive(self.id), "1", px=int(self.alive_ttl_s * 1000))
            pipe.hset(self.keys.invokers, self.id, self.info().encode())
            await pipe.execute()

    async def _heartbeat(self) -> None:
        """Its own task: nothing slow (container removal, say) may delay a heartbeat, or the
        invoker would look dead and have its work reaped."""
        while not self._departing:
            await asyncio.sleep(self.heartbeat_s)
            if self._departing:
                return
            try:
                await self._heartbeat_once()
            except RedisError as exc:
                log.warning("heartbeat failed: %s", exc)

    async def _tend_idle(self) -> None:
        """Expire idle containers and pause those past the pause grace: one sweep of the pool
        now and then, so that an activation pays nothing for either."""
        interval = max(1.0, min(10.0, self.pool.idle_timeout_s / 4))
        if self.pool.pause_grace_s:
            # A container is paused within a quarter of the grace after it is due.
            interval = min(interval, max(0.05, self.pool.pause_grace_s / 4))
        while not self._departing:
            await asyncio.sleep(interval)
            try:
                await self.pool.evict_idle()
                await self.pool.pause_idle()
            except Exception:
                log.exception("tending idle containers failed")


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
