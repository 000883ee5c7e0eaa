"""Sequences run in the controller (shared/spec/openwhisk.md §7): components one after another,
each blocking, the result of one becoming the input of the next; the first error stops it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from controller.clock import now_ms
from controller.domain import Namespace
from controller.errors import NotAuthorized, NotFound
from controller.names import EntityPath
from controller.services import activations, resolver
from controller.services.activations import Activation
from controller.services.resolver import Target
from invoker.protocol import Outcome

if TYPE_CHECKING:
    from controller.execution.service import Completed, Executor, InvokeRequest, Pending

log = logging.getLogger(__name__)

COMPONENT_MISSING = "Sequence component does not exist."
COMPONENT_WAIT_MS = 60_000


def _failure(status: Outcome, message: str) -> dict[str, Any]:
    return {
        "status": status.value,
        "statusCode": status.status_code,
        "success": False,
        "result": {"error": message},
    }


class SequenceRunner:
    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._running: set[asyncio.Task[Activation]] = set()

    async def invoke(self, req: InvokeRequest) -> Completed | Pending:
        from controller.execution.service import Completed, Pending

        activation_id = uuid.uuid4().hex
        task = asyncio.create_task(self._run(req, activation_id))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        if not req.blocking:
            return Pending(activation_id)
        try:
            return Completed(await asyncio.wait_for(asyncio.shield(task), req.wait_ms / 1000))
        except TimeoutError:
            return Pending(activation_id)

    async def _resolve(self, component: str, caller: Namespace) -> Target:
        """The component as the namespace invoking the sequence may invoke it now: a
        sequence never lends its owner's rights to its caller."""
        path = EntityPath.parse(component, caller.name)
        async with self.executor.transaction() as session:
            return await resolver.resolve(session, caller, path.namespace, path.action_name)

    async def _run(self, req: InvokeRequest, activation_id: str) -> Activation:
        from controller.execution.service import Pending

        sequence = req.action
        start = now_ms()
        params: Any = req.params
        ids: list[str] = []
        duration = 0
        memory = 0
        response: dict[str, Any] | None = None
        for component in sequence.exec.components:
            try:
                target = await self._resolve(component, req.namespace)
            except NotFound:
                response = _failure(Outcome.APPLICATION_ERROR, COMPONENT_MISSING)
                break
            except NotAuthorized as exc:
                response = _failure(Outcome.APPLICATION_ERROR, exc.message)
                break
            memory = max(memory, target.action.limits.memory)
            step = replace(
                req,
                action=target.action,
                params=params if isinstance(params, dict) else {},
                layers=target.layers,
                binding=target.binding,
                blocking=True,
                wait_ms=target.action.limits.timeout + COMPONENT_WAIT_MS,
                cause=activation_id,
            )
            outcome = await self.executor.invoke(step)
            if isinstance(outcome, Pending):
                message = (
                    f"Timeout reached when retrieving activation {outcome.activation_id} "
                    "for sequence component."
                )
                ids.append(outcome.activation_id)
                response = _failure(Outcome.INTERNAL_ERROR, message)
                break
            done = outcome.activation
            ids.append(done.activation_id)
            duration += done.duration
            response = done.response
            if not done.response.get("success"):
                break
            params = done.response.get("result", {})
        assert response is not None  # a sequence has at least one component
        record = Activation(
            activation_id=activation_id,
            namespace=req.namespace.name,
            name=sequence.name,
            subject=req.namespace.name,
            version=sequence.version,
            start=start,
            end=now_ms(),
            duration=duration,
            status_code=int(response.get("statusCode", 0 if response.get("success") else 1)),
            response=response,
            logs=ids,
            annotations=[
                {"key": "topmost", "value": req.cause is None},
                {"key": "path", "value": sequence.path},
                {"key": "kind", "value": "sequence"},
                {"key": "waitTime", "value": 0},
                {
                    "key": "limits",
                    "value": {
                        "timeout": sequence.limits.timeout,
                        "memory": memory or sequence.limits.memory,
                        "logs": sequence.limits.logs,
                    },
                },
                *([{"key": "causedBy", "value": "sequence"}] if req.cause else []),
            ],
            cause=req.cause,
        )
        async with self.executor.transaction() as session:
            await activations.store(session, record, sequence.path)
        return record
