"""Classification of proxy exchanges into outcomes: every row of spec/openwhisk.md §5.2 that an
/init or /run exchange can produce."""

from __future__ import annotations

import json
from typing import Any

import pytest

from invoker.classify import classify_init, classify_run
from invoker.protocol import Outcome, Reason
from invoker.sandbox import Exchange

TIMEOUT_MS = 60_000
MB = 1024 * 1024

SUCCESS = Outcome.SUCCESS
APPLICATION = Outcome.APPLICATION_ERROR
DEVELOPER = Outcome.DEVELOPER_ERROR


def answered(status: int, body: Any) -> Exchange:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Exchange(status, raw, elapsed_ms=5)


DROPPED = Exchange(None, b"", elapsed_ms=5)
TIMED_OUT = Exchange(None, b"", elapsed_ms=TIMEOUT_MS, timed_out=True)


# (exchange, oom, expected reason, expected error message): None means /init succeeded.
INIT_ROWS = [
    pytest.param(answered(200, {"ok": True}), False, None, None, id="200-json"),
    pytest.param(answered(200, b"OK"), False, None, None, id="200-any-body"),
    pytest.param(answered(200, {"error": "x"}), False, None, None, id="200-even-with-error"),
    pytest.param(
        TIMED_OUT, False, Reason.TIMEOUT,
        "The action exceeded its time limits of 60000 milliseconds during initialization.",
        id="timeout",
    ),
    pytest.param(
        TIMED_OUT, True, Reason.TIMEOUT,
        "The action exceeded its time limits of 60000 milliseconds during initialization.",
        id="timeout-wins-over-oom",
    ),
    pytest.param(
        DROPPED, True, Reason.OOM, "The action exhausted its memory and was aborted.", id="oom"
    ),
    pytest.param(
        DROPPED, False, Reason.INIT_FAILED,
        "The action did not initialize and exited unexpectedly.",
        id="connection-dropped",
    ),
    pytest.param(
        answered(502, {"error": "Initialization has failed due to: SyntaxError"}), False,
        Reason.INIT_FAILED, "Initialization has failed due to: SyntaxError",
        id="non-200-json-error",
    ),
    pytest.param(
        answered(403, {"error": {"code": 7, "why": "no main"}}), False,
        Reason.INIT_FAILED, {"code": 7, "why": "no main"},
        id="non-200-json-error-object-kept-as-is",
    ),
    pytest.param(
        answered(500, b"compile failed: line 3\n"), False, Reason.INIT_FAILED,
        "The action failed during initialization: compile failed: line 3",
        id="non-200-text",
    ),
    pytest.param(
        answered(500, {"message": "no error field"}), False, Reason.INIT_FAILED,
        'The action failed during initialization: {"message": "no error field"}',
        id="non-200-json-without-error",
    ),
    pytest.param(
        answered(502, b""), False, Reason.INIT_FAILED,
        "The action failed during initialization.",
        id="non-200-empty",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("exchange", "oom", "reason", "message"), INIT_ROWS)
def test_classify_init(exchange: Exchange, oom: bool, reason: Reason | None, message: Any) -> None:
    classified = classify_init(exchange, TIMEOUT_MS, oom=oom)
    if message is None:
        assert classified is None
        return
    assert classified is not None
    assert classified.outcome is DEVELOPER
    assert classified.reason is reason
    assert classified.result == {"error": message}


# (exchange, oom, expected outcome, expected reason, expected result)
RUN_ROWS = [
    pytest.param(
        answered(200, {"greeting": "hi"}), False, SUCCESS, None, {"greeting": "hi"},
        id="200-object",
    ),
    pytest.param(answered(200, {}), False, SUCCESS, None, {}, id="200-empty-object"),
    pytest.param(answered(200, [1, {"a": 2}]), False, SUCCESS, None, [1, {"a": 2}], id="200-array"),
    pytest.param(
        answered(200, [{"error": "inside"}]), False, SUCCESS, None, [{"error": "inside"}],
        id="200-array-with-error-element-is-success",
    ),
    pytest.param(
        answered(200, {"error": "bad input", "extra": 1}), False, APPLICATION, None,
        {"error": "bad input"},
        id="200-object-with-error",
    ),
    pytest.param(
        answered(200, {"error": {}}), False, APPLICATION, None, {"error": {}},
        id="200-rejected-promise-without-value",
    ),
    pytest.param(
        TIMED_OUT, False, DEVELOPER, Reason.TIMEOUT,
        {"error": "The action exceeded its time limits of 60000 milliseconds."},
        id="timeout",
    ),
    pytest.param(
        TIMED_OUT, True, DEVELOPER, Reason.TIMEOUT,
        {"error": "The action exceeded its time limits of 60000 milliseconds."},
        id="timeout-wins-over-oom",
    ),
    pytest.param(
        DROPPED, True, DEVELOPER, Reason.OOM,
        {"error": "The action exhausted its memory and was aborted."},
        id="oom",
    ),
    pytest.param(
        answered(500, b"killed"), True, DEVELOPER, Reason.OOM,
        {"error": "The action exhausted its memory and was aborted."},
        id="oom-with-partial-answer",
    ),
    pytest.param(
        DROPPED, False, DEVELOPER, Reason.CRASHED,
        {"error": "The action did not produce a valid response and exited unexpectedly."},
        id="connection-dropped",
    ),
    pytest.param(
        answered(502, {"error": "An error has occurred: Error: boom"}), False, DEVELOPER,
        Reason.BAD_RESULT, {"error": "An error has occurred: Error: boom"},
        id="non-200-json-error",
    ),
    pytest.param(
        answered(502, {"error": "The action did not return a dictionary."}), True, DEVELOPER,
        Reason.BAD_RESULT, {"error": "The action did not return a dictionary."},
        id="non-200-json-error-even-if-oom-suspected",
    ),
    pytest.param(
        answered(200, b"hello there"), False, DEVELOPER, Reason.BAD_RESULT,
        {"error": "The action did not produce a valid JSON or JSON Array response: hello there"},
        id="200-not-json",
    ),
    pytest.param(
        answered(200, 42), False, DEVELOPER, Reason.BAD_RESULT,
        {"error": "The action did not produce a valid JSON or JSON Array response: 42"},
        id="200-json-scalar",
    ),
    pytest.param(
        answered(200, "text"), False, DEVELOPER, Reason.BAD_RESULT,
        {"error": 'The action did not produce a valid JSON or JSON Array response: "text"'},
        id="200-json-string",
    ),
    pytest.param(
        answered(200, None), False, DEVELOPER, Reason.BAD_RESULT,
        {"error": "The action did not produce a valid JSON or JSON Array response: null"},
        id="200-json-null",
    ),
    pytest.param(
        answered(200, b""), False, DEVELOPER, Reason.BAD_RESULT,
        {"error": "The action did not produce a valid JSON or JSON Array response: "},
        id="200-empty",
    ),
    pytest.param(
        answered(400, b"command exited\n"), False, DEVELOPER, Reason.BAD_RESULT,
        {"error": "The action did not produce a valid JSON or JSON Array response: command exited"},
        id="non-200-not-json",
    ),
    pytest.param(
        answered(500, {"result": 1}), False, DEVELOPER, Reason.BAD_RESULT,
        {"error": 'The action did not produce a valid JSON or JSON Array response: {"result": 1}'},
        id="non-200-json-without-error",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("exchange", "oom", "outcome", "reason", "result"), RUN_ROWS)
def test_classify_run(
    exchange: Exchange, oom: bool, outcome: Outcome, reason: Reason | None, result: Any
) -> None:
    classified = classify_run(exchange, TIMEOUT_MS, MB, oom=oom)
    assert classified.outcome is outcome
    assert classified.reason is reason
    assert classified.result == result


@pytest.mark.parametrize("limit_ms", [100, 10_800_000])
def test_timeout_messages_name_the_action_limit(limit_ms: int) -> None:
    run = classify_run(TIMED_OUT, limit_ms, MB, oom=False)
    assert run.result == {
        "error": f"The action exceeded its time limits of {limit_ms} milliseconds."
    }
    init = classify_init(TIMED_OUT, limit_ms, oom=False)
    assert init is not None
    assert init.result == {
        "error": f"The action exceeded its time limits of {limit_ms} milliseconds "
        "during initialization."
    }


def test_a_response_over_one_megabyte_is_an_application_error_with_its_prefix() -> None:
    value = "x" * MB
    body = json.dumps({"big": value}).encode()
    classified = classify_run(answered(200, body), TIMEOUT_MS, MB, oom=False)
    assert classified.outcome is APPLICATION
    assert classified.reason is Reason.RESULT_TOO_LARGE
    expected = (
        f"The action produced a response that exceeded the allowed length: {len(body)} > "
        f"1048576 bytes. The truncated response was: {body[:MB].decode()}"
    )
    assert classified.result == {"error": expected}


@pytest.mark.parametrize(
    ("size", "outcome"),
    [(99, SUCCESS), (100, SUCCESS), (101, APPLICATION)],
    ids=["under", "exactly-the-limit", "one-byte-over"],
)
def test_the_result_limit_boundary(size: int, outcome: Outcome) -> None:
    body = json.dumps({"v": "y" * (size - len('{"v": ""}'))}).encode()
    assert len(body) == size
    classified = classify_run(answered(200, body), TIMEOUT_MS, 100, oom=False)
    assert classified.outcome is outcome
    if outcome is APPLICATION:
        assert classified.result == {
            "error": "The action produced a response that exceeded the allowed length: "
            f"101 > 100 bytes. The truncated response was: {body[:100].decode()}"
        }


def test_an_oversized_non_200_answer_is_still_too_large() -> None:
    body = b"z" * 50
    classified = classify_run(answered(502, body), TIMEOUT_MS, 10, oom=False)
    assert classified.outcome is APPLICATION
    assert classified.reason is Reason.RESULT_TOO_LARGE
    assert classified.result == {
        "error": "The action produced a response that exceeded the allowed length: 50 > 10 "
        "bytes. The truncated response was: zzzzzzzzzz"
    }


def test_a_truncated_prefix_never_splits_a_character() -> None:
    body = json.dumps({"s": "é" * 20}, ensure_ascii=False).encode()
    cut = 8  # '{"s": "' is 7 bytes, then the first byte of a two-byte character
    classified = classify_run(answered(200, body), TIMEOUT_MS, cut, oom=False)
    error = classified.result["error"]  # type: ignore[call-overload]
    assert error.endswith('The truncated response was: {"s": "')
