"""Runs one invocation in a pooled container and turns whatever happens into a Result.
`execute` never raises: every failure becomes a recorded outcome."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from invoker import messages
from invoker.classify import Classified, classify_init, classify_run
from invoker.codecache import CodeCache, CodeMissing
from invoker.logs import DEVELOPER_ERROR_LINE, LogCollection, format_line, timestamp
from invoker.pool import ContainerPool, Slot, WarmKey
from invoker.protocol import (
    BLACKBOX_IMAGES_VARIABLE,
    Invocation,
    Outcome,
    Reason,
    Result,
    platform_env,
)
from invoker.sandbox import Container, ContainerSpec, ImageMissing, ImageRefused, ProvisionError

log = logging.getLogger(__name__)

MB = 1024 * 1024


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def context_env(inv: Invocation, deadline: int) -> dict[str, str]:
    """The `__OW_*` context of an activation (spec §6.1)."""
    env = {
        "__OW_NAMESPACE": inv.namespace,
        "__OW_ACTION_NAME": inv.action.fully_qualified,
        "__OW_ACTION_VERSION": inv.action.version,
        "__OW_ACTIVATION_ID": inv.activation_id,
        "__OW_TRANSACTION_ID": inv.transaction_id,
        "__OW_DEADLINE": str(deadline),
    }
    if inv.api_key:
        env["__OW_API_KEY"] = inv.api_key
    return env


def run_payload(inv: Invocation, deadline: int) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "value": inv.params,
        "namespace": inv.namespace,
        "action_name": inv.action.fully_qualified,
        "action_version": inv.action.version,
        "activation_id": inv.activation_id,
        "transaction_id": inv.transaction_id,
        "deadline": str(deadline),
        # OpenWhisk sets it in the container's environment only, which a stem cell started
        # before any activation cannot know: here each activation brings it.
        "api_host": inv.api_host,
    }
    if inv.api_key:
        payload["api_key"] = inv.api_key
    return payload


def warm_key(inv: Invocation) -> WarmKey:
    a = inv.action
    return WarmKey(inv.namespace, a.path, a.version, a.code_digest, a.kind, a.limits.memory)


# Receives an activation's result as soon as it is known, before its logs.
Answer = Callable[[Result], Awaitable[None]]
# Marks an activation as started (True), or says it must not start (False).
Claim = Callable[[], Awaitable[bool]]


class _Undelivered(Exception):
    """The container refused the connection: the request never reached the action."""


class Runner:
    def __init__(
        self,
        pool: ContainerPool,
        code: CodeCache,
        invoker_id: str,
        *,
        log_wait_s: float = 2.0,
    ) -> None:
        self.pool = pool
        self.code = code
        self.invoker_id = invoker_id
        self.log_wait_s = log_wait_s

    async def execute(
        self, inv: Invocation, answer: Answer | None = None, claim: Claim | None = None
    ) -> Result | None:
        """Run `inv`; `answer`, if given, gets the result as soon as it is known, before the
        logs are collected (the blocking caller's answer). `claim`, if given, is asked once a
        container is ready for it, just before it starts: when it says no, `inv` does not run
        and there is no result (None)."""
        started = now_ms()
        try:
            return await self._execute(inv, answer, claim)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("activation %s failed inside the invoker", inv.activation_id)
            return Result.failure(
                inv, Outcome.INTERNAL_ERROR, Reason.INTERNAL, messages.RUN_EXITED,
                start=started, end=now_ms(), invoker=self.invoker_id,
            )  # fmt: skip

    def _failure(self, inv: Invocation, reason: Reason, message: str, start: int) -> Result:
        return Result.failure(
            inv, Outcome.INTERNAL_ERROR, reason, message,
            start=start, end=now_ms(), invoker=self.invoker_id,
        )  # fmt: skip

    def _unusable_image(self, inv: Invocation, message: str) -> Result:
        """The action names an image this invoker cannot run: the developer's error."""
        return Result.failure(
            inv, Outcome.DEVELOPER_ERROR, Reason.PROVISION_FAILED, message,
            start=now_ms(), end=now_ms(), invoker=self.invoker_id,
        )  # fmt: skip

    async def _execute(
        self, inv: Invocation, answer: Answer | None, claim: Claim | None
    ) -> Result | None:
        action = inv.action
        spec = ContainerSpec(
            action.kind, action.image, action.limits.memory, name=action.name,
            env=platform_env(inv.api_host),
        )  # fmt: skip
        try:
            code = await self.code.get(action.code_digest) if action.code_digest else None
        except CodeMissing:
            return self._failure(inv, Reason.PROVISION_FAILED, messages.PROVISION_FAILED, now_ms())
        reuse = True
        while True:
            try:
                slot, warm = await self.pool.acquire(
                    warm_key(inv), spec, capacity=action.limits.concurrency, reuse=reuse
                )
            except ImageMissing:
                return self._unusable_image(inv, messages.image_missing(action.image))
            except ImageRefused:
                return self._unusable_image(
                    inv, messages.image_refused(action.image, BLACKBOX_IMAGES_VARIABLE)
                )
            except ProvisionError as exc:
                log.warning("activation %s: %s", inv.activation_id, exc)
                return self._failure(
                    inv, Reason.PROVISION_FAILED, messages.PROVISION_FAILED, now_ms()
                )
            if claim is not None:
                try:
                    claimed, claim = await claim(), None  # asked once, before the first start
                except BaseException:
                    await asyncio.shield(self.pool.unused(slot))
                    raise
                if not claimed:
                    await self.pool.unused(slot)
                    return None
            try:
                return await self._in_container(inv, slot, warm, code, answer, retry=reuse)
            except _Undelivered:
                # A reused container died before it could take the request: the action never
                # saw it, so run it once more, in a new container.
                log.warning(
                    "activation %s: container %s was dead, starting a new one",
                    inv.activation_id, slot.container.id,
                )  # fmt: skip
                await self.pool.discard(slot)
                reuse = False
            except BaseException:
                await asyncio.shield(self.pool.discard(slot))
                raise

    async def _in_container(
        self,
        inv: Invocation,
        slot: Slot,
        warm: bool,
        code: str | None,
        answer: Answer | None,
        *,
        retry: bool,
    ) -> Result:
        """Init (unless warm) and run; raises `_Undelivered` when `retry` is allowed and the
        container refused the first request."""
        container = slot.container
        timeout_ms = inv.action.limits.timeout
        start = now_ms()
        deadline = start + timeout_ms
        init_time: int | None = None
        if not warm:
            env = {**inv.init_env, **context_env(inv, deadline)}
            if slot.capacity > 1:
                env["__OW_ALLOW_CONCURRENT"] = "true"
            init = {
                "name": inv.action.name,
                "main": inv.action.main or "main",
                "binary": inv.action.binary,
                "env": env,
            }
            if code is not None:  # blackbox actions may come without code
                init["code"] = code
            exchange = await container.init({"value": init}, timeout_ms / 1000)
            if retry and not exchange.delivered:
                raise _Undelivered
            init_time = exchange.elapsed_ms
            oom = exchange.status is None and await container.was_oom_killed()
            failed = classify_init(exchange, timeout_ms, oom=oom)
            if failed is not None:
                return await self._finish(inv, slot, failed, start, init_time, answer, ran=False)
            self.pool.initialized(slot)
        exchange = await container.run(run_payload(inv, deadline), timeout_ms / 1000)
        if retry and warm and not exchange.delivered:
            raise _Undelivered
        oom = exchange.status is None and await container.was_oom_killed()
        classified = classify_run(exchange, timeout_ms, inv.result_limit, oom=oom)
        return await self._finish(inv, slot, classified, start, init_time, answer, ran=True)

    async def _finish(
        self,
        inv: Invocation,
        slot: Slot,
        c: Classified,
        start: int,
        init_time: int | None,
        answer: Answer | None,
        *,
        ran: bool,
    ) -> Result:
        """The result of a finished exchange (`ran`: /run was called, not only /init)."""
        result = Result(
            activation_id=inv.activation_id,
            namespace=inv.namespace,
            subject=inv.subject,
            action=inv.action,
            cause=inv.cause,
            binding=inv.binding,
            reply_to=inv.reply_to,
            outcome=c.outcome,
            reason=c.reason,
            result=c.result,
            start=start,
            end=now_ms(),
            wait_time=max(0, start - inv.accepted_at),
            init_time=init_time,
            invoker=self.invoker_id,
        )
        keep = c.outcome.keeps_container
        if keep:
            self.pool.finish(slot)  # the next activation of its key waits for it
        else:
            self.pool.retire(slot)  # nothing joins it while its logs are read
        if answer is not None:
            await self._answer(answer, result)
        limit = inv.action.limits.logs * MB
        shared = slot.capacity > 1
        if shared and ran:
            # Activations sharing a container: the proxy tags each one's lines with its id.
            logs = await self._logs(slot.container, limit, wait=keep, activation=inv.activation_id)
            if init_time is not None:  # what the initialisation wrote comes untagged, first
                init = await slot.container.collect_logs(limit, 0)
                logs.lines[:0] = init.lines
        else:
            logs = await self._logs(slot.container, limit, wait=keep)
        if c.outcome is Outcome.DEVELOPER_ERROR:
            logs.lines.append(format_line(timestamp(), "stderr", DEVELOPER_ERROR_LINE))
        # A shared container stays, whatever one activation's logs: the others run in it.
        if keep and (logs.complete or shared):
            await self.pool.release(slot)
        else:
            await self.pool.discard(slot)
        return result.model_copy(update={"logs": logs.lines})

    async def _answer(self, answer: Answer, result: Result) -> None:
        try:
            await answer(result)
        except Exception as exc:  # the record still reaches the caller, a little later
            log.warning("activation %s: could not answer early: %s", result.activation_id, exc)

    async def _logs(
        self, container: Container, limit: int, *, wait: bool, activation: str | None = None
    ) -> LogCollection:
        wait_s = self.log_wait_s if wait else 0.2
        collection = await container.collect_logs(limit, wait_s, activation)
        if limit == 0:
            collection.lines = []
        return collection
