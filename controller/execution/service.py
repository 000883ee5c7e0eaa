"""The executor: accepts invocations, hands them to invokers, and waits for blocking ones."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from controller.clock import now_ms
from controller.db.engine import UNREACHABLE as DATABASE_UNREACHABLE
from controller.domain import Action, KeyValue, Namespace
from controller.errors import InvalidInput
from controller.execution.dispatch import Admission, CodeMissing, Dispatcher, Stale
from controller.execution.journal import SequenceJournal
from controller.execution.reaper import reap_forever
from controller.execution.recorder import Recorder, Transaction, queue_reply
from controller.execution.tasks import cancel_all
from controller.execution.throttle import IN_FLIGHT_SLACK_MS, Throttle
from controller.execution.waiters import Waiters
from controller.limits import SystemLimits
from controller.params import merge
from controller.runtimes import BLACKBOX_KIND, Manifest
from controller.services import activations
from controller.services.activations import Activation
from invoker.protocol import ActionLimitsMsg, ActionRef, Invocation, Keys, Result

log = logging.getLogger(__name__)

_DB_POLL_S = 5.0


def new_controller_id() -> str:
    return f"{socket.gethostname().split('.')[0]}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class InvokeRequest:
    namespace: Namespace  # the invoking namespace
    action: Action  # without code
    params: dict[str, Any]
    layers: tuple[tuple[KeyValue, ...], ...] = ()  # package (and binding) parameters
    blocking: bool = True
    wait_ms: int = 60_000
    transaction_id: str = ""
    cause: str | None = None
    activation_id: str | None = None  # None: a new one
    binding: str | None = None  # `namespace/binding` when invoked through a binding
    revision: int | None = None  # the entity revision `action` was resolved at, if cached


@dataclass(frozen=True)
class Completed:
    activation: Activation


@dataclass(frozen=True)
class Pending:
    activation_id: str


def provides_api_key(action: Action) -> bool:
    """The API key reaches the action unless `provide-api-key` is set and falsy (§5.4)."""
    for kv in action.annotations:
        if kv.key == "provide-api-key":
            return kv.value is True or kv.value in ("true", "yes")
    return True


def is_final(action: Action) -> bool:
    return any(kv.key == "final" and kv.value is True for kv in action.annotations)


class Executor:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        manifest: Manifest,
        transaction: Transaction,
        load_code: Callable[[str], Awaitable[str | None]],
        *,
        api_host: str,
        limits: SystemLimits | None = None,
        controller_id: str | None = None,
    ) -> None:
        self.limits = limits or SystemLimits()
        self.throttle = Throttle(redis, keys)
        self.redis = redis
        self.keys = keys
        self.manifest = manifest
        self.transaction = transaction
        self.load_code = load_code
        self.api_host = api_host
        self.id = controller_id or new_controller_id()
        self.dispatcher = Dispatcher(redis, keys)
        self.waiters = Waiters()
        self.recorder = Recorder(
            redis, keys, self.id, transaction, self._notify, early_notify=self._resolve_local
        )
        self.journal = SequenceJournal(redis, keys, self.id)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        manifest = {
            "runtimes": {
                family: [rt.model_dump(by_alias=True) for rt in runtimes]
                for family, runtimes in self.manifest.families.items()
            }
        }
        await self.redis.set(self.keys.runtimes, json.dumps(manifest))
        await self.recorder.setup()
        self._tasks = [
            asyncio.create_task(self.recorder.run(), name="recorder"),
            asyncio.create_task(
                self.waiters.listen(self.redis, self.keys, self.id), name="replies"
            ),
            asyncio.create_task(reap_forever(self.redis, self.keys, self.id), name="reaper"),
            asyncio.create_task(self.journal.beat_forever(), name="heartbeat"),
            asyncio.create_task(
                self.journal.take_over_forever(self._store), name="sequence-takeover"
            ),
        ]

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        await self.journal.stop_beating()

    async def _store(self, activation: Activation, path: str) -> None:
        async with self.transaction() as session:
            await activations.store(session, activation, path)

    def _resolve_local(self, result: Result) -> None:
        """Wake a caller waiting in this process with the result itself (its record is being
        written; the result stays pending in Redis until it is)."""
        if result.reply_to == self.id:
            self.waiters.resolve(result.activation_id, result)

    def _notify(self, pipe: Pipeline, result: Result) -> None:
        """What follows a recorded result, on the recorder's pipeline."""
        self.throttle.release(pipe, result.namespace, result.activation_id)
        if result.reply_to and result.reply_to != self.id:
            queue_reply(pipe, self.keys, result)

    def image_of(self, action: Action) -> str:
        if action.exec.kind == BLACKBOX_KIND and action.exec.image:
            return action.exec.image
        runtime = self.manifest.get(action.exec.kind)
        if runtime is None:
            raise InvalidInput(
                f"The '{action.exec.kind}' runtime is not available on this platform."
            )
        return runtime.image

    def build(self, req: InvokeRequest, activation_id: str) -> Invocation:
        action = req.action
        merged = merge([*req.layers, action.parameters], req.params, final=is_final(action))
        limits = action.limits
        return Invocation(
            activation_id=activation_id,
            transaction_id=req.transaction_id or activation_id,
            namespace=req.namespace.name,
            subject=req.namespace.name,
            action=ActionRef(
                namespace=action.namespace,
                package=action.package,
                name=action.name,
                version=action.version,
                kind=action.exec.kind,
                image=self.image_of(action),
                main=action.exec.main,
                binary=action.exec.binary,
                code_digest=action.code_digest,
                limits=ActionLimitsMsg(
                    timeout=limits.timeout,
                    memory=limits.memory,
                    logs=limits.logs,
                    concurrency=limits.concurrency,
                ),
            ),
            params=merged.run,
            init_env=merged.init_env,
            api_key=req.namespace.auth if provides_api_key(action) else None,
            api_host=self.api_host,
            cause=req.cause,
            binding=req.binding,
            reply_to=self.id if req.blocking else None,
            accepted_at=now_ms(),
            result_limit=self.limits.result_max_bytes,
        )

    async def invoke(self, req: InvokeRequest) -> Completed | Pending:
        """Accept an invocation. Non-blocking: Pending at once. Blocking: Completed, or
        Pending if it is still running after `wait_ms` (it completes in the background).
        Stale when `req.revision` is no longer the entities' revision. Sequences are run by
        the entry point, not here."""
        activation_id = req.activation_id or uuid.uuid4().hex
        invocation = self.build(req, activation_id)
        future = self.waiters.register(activation_id) if req.blocking else None
        try:
            if req.action.code_digest:
                digest = req.action.code_digest
                await self.dispatcher.ensure_code(digest, lambda: self.load_code(digest))
            accepted = invocation.accepted_at
            admission = Admission(
                req.namespace.name,
                revision=req.revision,
                rate_allowed=self.limits.invocations_per_minute if req.cause is None else 0,
                inflight_allowed=self.limits.concurrent_invocations,
                now_ms=accepted,
                inflight_expiry_ms=accepted + req.action.limits.timeout + IN_FLIGHT_SLACK_MS,
            )
            try:
                await self.dispatcher.enqueue(invocation, admission)
            except CodeMissing as missing:
                lost = missing.digest
                await self.dispatcher.ensure_code(lost, lambda: self.load_code(lost))
                await self.dispatcher.enqueue(invocation, admission)
            if future is None:
                return Pending(activation_id)
            return await self._wait(activation_id, future, req.wait_ms)
        finally:
            self.waiters.discard(activation_id)

    async def check_revision(self, revision: int | None) -> None:
        """Stale unless `revision` (if any) is still the entities' revision."""
        if revision is None:
            return
        current = int(await self.redis.get(self.keys.entities_revision) or 0)
        if current != revision:
            raise Stale(current)

    async def _wait(
        self, activation_id: str, future: asyncio.Future[Result | None], wait_ms: int
    ) -> Completed | Pending:
        deadline = time.monotonic() + wait_ms / 1000
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                result = await asyncio.wait_for(asyncio.shield(future), min(remaining, _DB_POLL_S))
            except TimeoutError:
                result = None  # a lost notification costs at most one poll interval
            else:
                if result is not None:
                    return Completed(activations.from_result(result))
            try:
                async with self.transaction() as session:
                    found = await activations.get(session, activation_id)
            except DATABASE_UNREACHABLE as exc:  # it ran, or will: the caller gets its id
                log.warning("reading activation %s failed: %s", activation_id, exc)
                found = None
                await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            if found is not None:
                return Completed(found)
            if future.done():  # woken by another controller, but the record is not visible yet
                await asyncio.sleep(0.05)
        return Pending(activation_id)
