"""The steps of a conductor action's composition (an action annotated `conductor: true`), as
OpenWhisk runs them (shared/spec/openwhisk.md §7): the conductor runs on the input; while its
result names an `action`, that component runs on the result's `params`, and the conductor again
on the component's result with the `state` it returned merged over it. A conductor result
without `action` ends the composition: its `params` (or, without them, the whole result) is the
composition's result, under the conductor's status. What goes wrong with a component (a name
that does not parse or resolve, one the caller may not invoke, too many of them) goes back to
the conductor as `{"error": ...}`, for the composition to handle; more than twice the sequence
limit of conductor runs, or a step that does not answer in time, ends it.

The sequence runner (controller.execution.sequences) journals and records compositions as it
does sequences: the record is a `sequence` whose `logs` list every step's activation, with
the annotation `conductor: true`.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controller import messages
from controller.domain import Action
from controller.errors import InvalidInput, NotAuthorized, NotFound
from controller.execution.journal import SequenceStart, failure, sequence_record
from controller.names import EntityPath
from controller.services.activations import Activation
from invoker.protocol import Outcome

if TYPE_CHECKING:
    from controller.execution.sequences import SequenceRunner
    from controller.execution.service import Completed, InvokeRequest, Pending

STEP_WAIT_MS = 60_000  # beyond a step's own time limit


def _boxed(value: Any, name: str) -> dict[str, Any]:
    """A conductor's `params` or `state` as an object (another value is boxed under `name`)."""
    return value if isinstance(value, dict) else {name: value}


@dataclass
class _Session:
    """What the composition did so far."""

    memory: int
    ids: list[str] = field(default_factory=list)
    duration: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    conductors: int = 0
    components: int = 0


async def conduct(runner: SequenceRunner, req: InvokeRequest, started: SequenceStart) -> Activation:
    """Run the composition of `req.action` (a conductor action): its record."""
    limit = runner.entry.executor.limits.sequence_max_length
    session = _Session(memory=req.action.limits.memory)
    payload: dict[str, Any] = req.params
    while True:
        if session.conductors > 2 * limit:
            response = failure(Outcome.APPLICATION_ERROR, messages.COMPOSITION_TOO_LONG)
            break
        session.conductors += 1
        done = await _run_conductor(runner, req, started, session, {**payload, **session.state})
        if not isinstance(done, Activation):
            response = done
            break
        result = done.response.get("result")
        result = result if isinstance(result, dict) else {}
        params = _boxed(result["params"], "value") if "params" in result else None
        session.state = _boxed(result["state"], "state") if "state" in result else {}
        if "action" not in result:
            response = {**done.response, "result": result if params is None else params}
            break
        if session.components >= limit:
            payload = {"error": messages.COMPOSITION_TOO_LONG}
            continue
        outcome = await _run_component(runner, req, started, session, result["action"], params)
        if isinstance(outcome, str):  # the component could not be invoked: the conductor's
            payload = {"error": outcome}
            continue
        if not isinstance(outcome, Activation):
            response = outcome
            break
        component_result = outcome.response.get("result")
        payload = component_result if isinstance(component_result, dict) else {}
    return sequence_record(
        started, response, session.ids, duration=session.duration, memory=session.memory
    )


async def _run_conductor(
    runner: SequenceRunner,
    req: InvokeRequest,
    started: SequenceStart,
    session: _Session,
    params: dict[str, Any],
) -> Activation | dict[str, Any]:
    """Run the conductor action itself (through the executor: running it again as a
    composition would never end); its activation, or the composition's failed response."""
    step_id = uuid.uuid4().hex
    await runner.entry.executor.journal.components(started.activation_id, [*session.ids, step_id])
    conductor = dataclasses.replace(
        req,
        params=params,
        blocking=True,
        wait_ms=req.action.limits.timeout + STEP_WAIT_MS,
        cause=started.activation_id,
        activation_id=step_id,
        revision=None,
    )
    return _completed(session, await runner.entry.executor.invoke(conductor), req.action)


async def _run_component(
    runner: SequenceRunner,
    req: InvokeRequest,
    started: SequenceStart,
    session: _Session,
    name: Any,
    params: dict[str, Any] | None,
) -> Activation | dict[str, Any] | str:
    """Run the component `name` as the caller may now invoke it: its activation, the
    composition's failed response, or the error to hand the conductor."""
    if not isinstance(name, str):
        return messages.composition_component_invalid(name)
    try:
        path = EntityPath.parse(name, req.namespace.name)
    except InvalidInput:
        return messages.composition_component_invalid(name)
    qualified = str(path)[1:]
    step_id = uuid.uuid4().hex
    await runner.entry.executor.journal.components(started.activation_id, [*session.ids, step_id])
    try:
        target, outcome = await runner.step(
            req, str(path), params or {}, started.activation_id, step_id
        )
    except NotFound:
        return messages.composition_component_not_found(qualified)
    except NotAuthorized:
        return messages.composition_component_not_accessible(qualified)
    session.components += 1
    return _completed(session, outcome, target.action)


def _completed(
    session: _Session, outcome: Completed | Pending, action: Action
) -> Activation | dict[str, Any]:
    """Account for a step that answered; a step that did not ends the composition."""
    from controller.execution.service import Pending

    if isinstance(outcome, Pending):
        session.ids.append(outcome.activation_id)
        return failure(
            Outcome.INTERNAL_ERROR, messages.composition_step_timeout(outcome.activation_id)
        )
    done = outcome.activation
    session.ids.append(done.activation_id)
    session.duration += done.duration
    session.memory = max(session.memory, action.limits.memory)
    return done
