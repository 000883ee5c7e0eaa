"""The one entry point of every invocation (DESIGN.md, invariant 1). Every way into an action
(the OpenWhisk API, the seed API's execute, web actions, rule targets, sequence components)
hands it a way to resolve the caller and the target, and it invokes what that resolves to:
an action through the executor, or a sequence or a conductor action's composition through the
sequence runner, whose components come back here.

Resolutions come from the controller's entity cache (controller.execution.cache) at a known
revision; the executor's accept script refuses one that is stale, and it is resolved afresh
and accepted again, so a change or revocation on any controller holds for the next
invocation everywhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from controller.domain import Namespace
from controller.errors import HomerunError
from controller.execution.cache import EntityCache
from controller.execution.dispatch import Stale
from controller.execution.sequences import SequenceRunner
from controller.execution.service import Completed, Executor, InvokeRequest, Pending
from controller.names import ActionName
from controller.runtimes import SEQUENCE_KIND
from controller.services import resolver
from controller.services.resolver import Target

T = TypeVar("T")

_ATTEMPTS = 3  # resolutions tried before the last is invoked unchecked


class EngineUnavailable(HomerunError):
    """Invocations cannot be accepted: no execution engine is configured (503)."""


@dataclass(frozen=True)
class Resolved:
    """Who invokes what, and the entity revision that was true at (None: not from the cache,
    not checked)."""

    caller: Namespace  # the invoking namespace: records, throttles and `__OW_NAMESPACE`
    target: Target
    revision: int | None = None
    params: dict[str, Any] | None = None  # when they depend on what was resolved (web)


# Resolves the caller and the target; `True` asks for a fresh look at the database.
Resolve = Callable[[bool], Awaitable[Resolved]]


@dataclass(frozen=True)
class Call:
    """How to invoke: the parameters and the waiting."""

    params: dict[str, Any]
    blocking: bool = True
    wait_ms: int = 60_000
    transaction_id: str = ""
    cause: str | None = None  # the sequence this is a component of
    activation_id: str | None = None  # made beforehand (a sequence journals its components')


class EntryPoint:
    """`executor` is None without an execution engine (no Redis): callers are still told
    401, 403 or 404 first, then 503."""

    def __init__(self, executor: Executor | None, cache: EntityCache) -> None:
        self._executor = executor
        self.cache = cache
        self.sequences = SequenceRunner(self)

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            raise EngineUnavailable(
                "The execution engine is not configured: set HOMERUN_REDIS_URL and run invokers."
            )
        return self._executor

    async def lookup(
        self, key: Hashable, load: Callable[[AsyncSession], Awaitable[T]], *, fresh: bool = False
    ) -> tuple[T, int]:
        """A cached database lookup (a caller's identity, say) and its revision."""
        return await self.cache.get(key, load, fresh=fresh)

    async def target(
        self, caller: Namespace, namespace: str, name: ActionName, *, fresh: bool = False
    ) -> tuple[Target, int]:
        """What `caller` reaches as `namespace/name` (controller.services.resolver)."""
        return await self.cache.get(
            ("target", caller.id, namespace, name.package, name.name),
            lambda session: resolver.resolve(session, caller, namespace, name),
            fresh=fresh,
        )

    async def invoke(self, resolve: Resolve, call: Call) -> Completed | Pending:
        """Invoke what `resolve` finds, resolving afresh while its revision is stale."""
        resolved = await resolve(False)
        for _ in range(_ATTEMPTS - 1):
            try:
                return await self._invoke(resolved, call)
            except Stale as stale:
                self.cache.advance(stale.revision)
                resolved = await resolve(True)
        return await self._invoke(Resolved(resolved.caller, resolved.target, revision=None), call)

    async def invoke_target(
        self, caller: Namespace, target: Target, call: Call
    ) -> Completed | Pending:
        """Invoke a target resolved straight from the database (a fired rule's)."""
        return await self._invoke(Resolved(caller, target), call)

    async def _invoke(self, resolved: Resolved, call: Call) -> Completed | Pending:
        target = resolved.target
        request = InvokeRequest(
            namespace=resolved.caller,
            action=target.action,
            params=call.params if resolved.params is None else resolved.params,
            layers=target.layers,
            blocking=call.blocking,
            wait_ms=call.wait_ms,
            transaction_id=call.transaction_id,
            cause=call.cause,
            activation_id=call.activation_id,
            binding=target.binding,
            revision=resolved.revision,
        )
        if target.action.exec.kind == SEQUENCE_KIND or target.action.conductor:
            return await self.sequences.invoke(request)
        return await self.executor.invoke(request)
