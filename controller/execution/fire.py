"""Firing a trigger (shared/spec/openwhisk.md §10.1): each active rule's action is invoked
through the entry point, and the trigger activation records what happened to each."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from controller import messages
from controller.clock import now_ms
from controller.errors import HomerunError, NotFound
from controller.execution.dispatch import NoInvokers
from controller.execution.entry import Call, EntryPoint
from controller.execution.recorder import Transaction
from controller.execution.service import Completed
from controller.services import activations
from controller.services.resolver import Target
from controller.services.triggers import FirePlan, RuleFiring
from invoker.protocol import Outcome

log = logging.getLogger(__name__)


def _rule_log(firing: RuleFiring, outcome: Outcome, detail: dict[str, str]) -> str:
    """OpenWhisk's log line of one rule in the trigger activation."""
    line = {
        "statusCode": outcome.status_code,
        "success": outcome is Outcome.SUCCESS,
        **detail,
        "rule": firing.rule,
        "action": str(firing.action).lstrip("/"),
    }
    return json.dumps(line, separators=(",", ":"))


async def _invoke(
    entry: EntryPoint, plan: FirePlan, target: Target, args: dict[str, Any],
    transaction_id: str,
) -> str:  # fmt: skip
    """Invoke the action without waiting (throttled like any invoke); its activation id.
    Rule-fired activations carry no `cause` (§10.1)."""
    call = Call(args, blocking=False, transaction_id=transaction_id)
    outcome = await entry.invoke_target(plan.caller, target, call)
    return (
        outcome.activation.activation_id
        if isinstance(outcome, Completed)
        else outcome.activation_id
    )


async def _activate(
    entry: EntryPoint, plan: FirePlan, firing: RuleFiring, args: dict[str, Any],
    transaction_id: str,
) -> str:  # fmt: skip
    """The log line of one rule: its action invoked, or why not, failing as an invoke request
    would (4xx: application error, 5xx: internal error)."""
    try:
        if firing.target is None:
            raise firing.error or NotFound(messages.ENTITY_NOT_FOUND)
        activation_id = await _invoke(entry, plan, firing.target, args, transaction_id)
    except NoInvokers as exc:
        return _rule_log(firing, Outcome.INTERNAL_ERROR, {"error": exc.message})
    except HomerunError as exc:
        return _rule_log(firing, Outcome.APPLICATION_ERROR, {"error": exc.message})
    except Exception:  # a fire reports every rule, whatever failed
        log.exception("trigger %s: invoking %s failed", plan.trigger.name, firing.action)
        return _rule_log(firing, Outcome.INTERNAL_ERROR, {"error": messages.FIRE_FAILED})
    return _rule_log(firing, Outcome.SUCCESS, {"activationId": activation_id})


async def fire(
    plan: FirePlan, payload: dict[str, Any], entry: EntryPoint, transaction: Transaction,
    transaction_id: str, headers: dict[str, str] | None = None,
) -> str:  # fmt: skip
    """Invoke the action of each active rule with the trigger's parameters under `payload`,
    record the trigger activation (its result is the payload), and return its id."""
    activation_id = uuid.uuid4().hex
    start = now_ms()
    args = {kv.key: kv.value for kv in plan.trigger.parameters} | payload
    if headers is not None and "__ow_headers" not in payload:
        args["__ow_headers"] = headers  # the fire request's headers reach the actions
    logs = [await _activate(entry, plan, firing, args, transaction_id) for firing in plan.firings]
    async with transaction() as session:
        await activations.record_trigger(
            session,
            namespace_id=plan.caller.id,
            namespace=plan.caller.name,
            activation_id=activation_id,
            trigger=plan.trigger.name,
            version=plan.trigger.version,
            start=start,
            result=payload,
            logs=logs,
        )
    return activation_id
