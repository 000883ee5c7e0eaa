"""Pure classification of proxy exchanges into outcomes (shared/spec/openwhisk.md §5.2)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from invoker import messages, wirejson
from invoker.protocol import Outcome, Reason
from invoker.sandbox import Exchange


@dataclass(frozen=True)
class Classified:
    outcome: Outcome
    result: dict[str, Any] | list[Any]
    reason: Reason | None = None


def _json(body: bytes) -> Any:
    """The body's JSON; None if it is not JSON; Unfit if it is JSON no message can carry."""
    try:
        return wirejson.loads(body)
    except wirejson.Unfit:
        raise
    except ValueError:
        return None


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace").strip()


def _developer(message: Any, reason: Reason) -> Classified:
    return Classified(Outcome.DEVELOPER_ERROR, {"error": message}, reason)


def classify_init(exchange: Exchange, timeout_ms: int, *, oom: bool) -> Classified | None:
    """None when /init succeeded; otherwise the developer error to record."""
    if exchange.timed_out:
        return _developer(messages.timeout(timeout_ms, during_init=True), Reason.TIMEOUT)
    if exchange.status is None:
        if oom:
            return _developer(messages.OOM, Reason.OOM)
        return _developer(messages.INIT_EXITED, Reason.INIT_FAILED)
    if exchange.status == 200:
        return None
    with contextlib.suppress(wirejson.Unfit):
        body = _json(exchange.body)
        if isinstance(body, dict) and "error" in body:
            return _developer(body["error"], Reason.INIT_FAILED)
    return _developer(messages.init_failed(_text(exchange.body)), Reason.INIT_FAILED)


def classify_run(
    exchange: Exchange, timeout_ms: int, result_limit: int, *, oom: bool
) -> Classified:
    if exchange.timed_out:
        return _developer(messages.timeout(timeout_ms), Reason.TIMEOUT)
    if exchange.status is None:
        if oom:
            return _developer(messages.OOM, Reason.OOM)
        return _developer(messages.RUN_EXITED, Reason.CRASHED)
    if len(exchange.body) > result_limit:
        prefix = exchange.body[:result_limit].decode("utf-8", errors="ignore")
        message = messages.result_too_large(len(exchange.body), result_limit, prefix)
        return Classified(Outcome.APPLICATION_ERROR, {"error": message}, Reason.RESULT_TOO_LARGE)
    try:
        body = _json(exchange.body)
    except wirejson.Unfit as exc:
        return _developer(messages.unfit_response(str(exc)), Reason.BAD_RESULT)
    if exchange.status == 200:
        if isinstance(body, dict):
            if "error" in body:
                return Classified(Outcome.APPLICATION_ERROR, {"error": body["error"]})
            return Classified(Outcome.SUCCESS, body)
        if isinstance(body, list):
            return Classified(Outcome.SUCCESS, body)
        return _developer(messages.invalid_response(_text(exchange.body)), Reason.BAD_RESULT)
    if isinstance(body, dict) and "error" in body:
        return _developer(body["error"], Reason.BAD_RESULT)
    if oom:
        return _developer(messages.OOM, Reason.OOM)
    return _developer(messages.invalid_response(_text(exchange.body)), Reason.BAD_RESULT)
