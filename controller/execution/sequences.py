"""Sequences run in the controller (shared/spec/openwhisk.md §7): components one after another,
each blocking, the result of one becoming the input of the next; the first error stops it.
Compositions of conductor actions run here too, journaled and recorded the same way; their
steps are controller.execution.conductor's."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

from controller.clock import now_ms
from controller.errors import NotAuthorized, NotFound
from controller.execution.conductor import conduct
from controller.execution.journal import SequenceStart, failure, sequence_record
from controller.names import EntityPath
from controller.runtimes import SEQUENCE_KIND
from controller.services import activations
from controller.services.activations import Activation
from controller.services.resolver import Target
from invoker.protocol import Outcome

if TYPE_CHECKING:
    from controller.execution.entry import EntryPoint
    from controller.execution.service import Completed, InvokeRequest, Pending

log = logging.getLogger(__name__)

COMPONENT_MISSING = "Sequence component does not exist."
COMPONENT_WAIT_MS = 60_000


class SequenceRunner:
    """Runs sequences for the entry point, each component invoked back through it."""

    def __init__(self, entry: EntryPoint) -> None:
        self.entry = entry
        self._running: set[asyncio.Task[Activation]] = set()

    async def invoke(self, req: InvokeRequest) -> Completed | Pending:
        """Start the sequence `req.action` (Stale when `req.revision` is, before anything
        ran; counted against the per-minute rate unless it is itself a component)."""
        from controller.execution.service import Completed, Pending

        executor = self.entry.executor
        await executor.check_revision(req.revision)
        if req.cause is None:
            await executor.throttle.check_rate(
                req.namespace.name, executor.limits.invocations_per_minute, now_ms()
            )
        activation_id = req.activation_id or uuid.uuid4().hex
        sequence = req.action
        started = SequenceStart(
            activation_id=activation_id,
            namespace=req.namespace.name,
            name=sequence.name,
            version=sequence.version,
            path=sequence.path,
            start=now_ms(),
            cause=req.cause,
            limits={
                "timeout": sequence.limits.timeout,
                "memory": sequence.limits.memory,
                "logs": sequence.limits.logs,
            },
            conductor=sequence.exec.kind != SEQUENCE_KIND,
        )
        await executor.journal.begin(started)
        task = asyncio.create_task(self._run(req, started))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        if not req.blocking:
            return Pending(activation_id)
        try:
            return Completed(await asyncio.wait_for(asyncio.shield(task), req.wait_ms / 1000))
        except TimeoutError:
            return Pending(activation_id)

    async def step(
        self, req: InvokeRequest, component: str, params: Any, cause: str, activation_id: str
    ) -> tuple[Target, Completed | Pending]:
        """One component, as the namespace invoking the sequence may invoke it now: a
        sequence never lends its owner's rights to its caller."""
        from controller.execution.entry import Call, Resolved

        caller = req.namespace
        path = EntityPath.parse(component, caller.name)
        first = await self.entry.target(caller, path.namespace, path.action_name)

        async def resolve(fresh: bool) -> Resolved:
            target, revision = (
                await self.entry.target(caller, path.namespace, path.action_name, fresh=True)
                if fresh
                else first
            )
            return Resolved(caller, target, revision)

        call = Call(
            params=params if isinstance(params, dict) else {},
            blocking=True,
            wait_ms=first[0].action.limits.timeout + COMPONENT_WAIT_MS,
            transaction_id=req.transaction_id,
            cause=cause,
            activation_id=activation_id,
        )
        return first[0], await self.entry.invoke(resolve, call)

    async def _run(self, req: InvokeRequest, started: SequenceStart) -> Activation:
        journal = self.entry.executor.journal
        try:
            if started.conductor:
                record = await conduct(self, req, started)
            else:
                record = await self._components(req, started)
            async with self.entry.executor.transaction() as session:
                await activations.store(session, record, started.path)
        except BaseException:
            journal.release(started.activation_id)
            raise
        await journal.end(started.activation_id)
        return record

    async def _components(self, req: InvokeRequest, started: SequenceStart) -> Activation:
        """Invoke the components in turn: the sequence's record."""
        from controller.execution.service import Pending

        params: Any = req.params
        ids: list[str] = []
        duration = 0
        memory = 0
        response: dict[str, Any] | None = None
        for component in req.action.exec.components:
            component_id = uuid.uuid4().hex
            await self.entry.executor.journal.components(
                started.activation_id, [*ids, component_id]
            )
            try:
                target, outcome = await self.step(
                    req, component, params, started.activation_id, component_id
                )
            except NotFound:
                response = failure(Outcome.APPLICATION_ERROR, COMPONENT_MISSING)
                break
            except NotAuthorized as exc:
                response = failure(Outcome.APPLICATION_ERROR, exc.message)
                break
            if isinstance(outcome, Pending):
                message = (
                    f"Timeout reached when retrieving activation {outcome.activation_id} "
                    "for sequence component."
                )
                ids.append(outcome.activation_id)
                response = failure(Outcome.INTERNAL_ERROR, message)
                break
            memory = max(memory, target.action.limits.memory)
            done = outcome.activation
            ids.append(done.activation_id)
            duration += done.duration
            response = done.response
            if not done.response.get("success"):
                break
            params = done.response.get("result", {})
        assert response is not None  # a sequence has at least one component
        return sequence_record(started, response, ids, duration=duration, memory=memory)
