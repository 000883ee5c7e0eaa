"""`POST /api/v1/namespaces/{ns}/actions/{name}`: invoking actions, blocking or not, and how
the outcome is answered (shared/spec/openwhisk.md §2.4, §3.5, §12). Runs on the process
sandbox: the sandboxes have their own behaviour suite."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from controller.limits import MB
from controller.services import activations
from tests.conftest import Engine
from tests.controller.api.openwhisk.support import (
    ACTIVATION_ID,
    Actions,
    Caller,
    annotations,
    assert_error,
    node_action,
)

RECORD_KEYS = {
    "namespace", "name", "subject", "activationId", "start", "end", "duration", "response",
    "logs", "version", "publish", "annotations",
}  # fmt: skip
LIMITS = {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 200}  # nodejs defaults
GREET = "function main(p) { console.log('hi', p.name); return {greeting: 'hello ' + p.name}; }"
SLEEPY = "function main(p) { return new Promise(r => setTimeout(() => r({slept: p.ms}), p.ms)); }"
BAD_WAIT = "Timeout must be number of milliseconds up to 60000."


@pytest.fixture
def sandbox_kind() -> str:
    return "process"


@pytest.fixture
def ow(engine: Engine, engine_caller: Caller) -> Actions:
    return Actions(engine.client, engine_caller)


@pytest.fixture
def api(client: httpx.AsyncClient, acme: Caller) -> Actions:
    """Without an engine: for requests refused before anything runs."""
    return Actions(client, acme)


def compact_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def assert_record(body: Any, name: str, result: Any) -> dict[str, Any]:
    """`body` is an activation record as blocking invokes answer it; returns its annotations."""
    assert isinstance(body, dict) and set(body) == RECORD_KEYS, body
    assert "code" not in body  # wsk would take it for an API error
    assert ACTIVATION_ID.fullmatch(body["activationId"])
    assert (body["namespace"], body["name"], body["version"]) == ("acme-int1", name, "0.0.1")
    assert isinstance(body["subject"], str) and body["subject"]
    assert body["publish"] is False
    assert 0 < body["start"] <= body["end"]
    assert body["duration"] == body["end"] - body["start"]
    assert isinstance(body["logs"], list)
    response = body["response"]
    assert set(response) == {"status", "success", "result", "size"}, response
    assert response["result"] == result
    assert response["size"] == compact_size(result)
    ann = annotations(body)
    assert ann["kind"] == "nodejs:22"
    assert ann["limits"] == LIMITS
    assert ann["timeout"] is False
    assert isinstance(ann["waitTime"], int) and ann["waitTime"] >= 0
    return ann


async def test_non_blocking_invoke_answers_202_with_the_activation_id(
    ow: Actions, engine: Engine
) -> None:
    await ow.create("greet", node_action(GREET))
    response = await ow.post("greet", {"name": "you"})
    assert response.status_code == 202, response.text
    assert set(response.json()) == {"activationId"}
    activation_id = response.json()["activationId"]
    assert ACTIVATION_ID.fullmatch(activation_id)
    assert response.headers["x-openwhisk-activation-id"] == activation_id
    record = await engine.activation(activation_id)
    assert record is not None, "the activation was never recorded"
    assert record.namespace == "acme-int1"
    assert record.response["result"] == {"greeting": "hello you"}


async def test_blocking_invoke_answers_the_activation_record(ow: Actions) -> None:
    await ow.create("greet", node_action(GREET))
    cold = await ow.post("greet", {"name": "you"}, blocking="true")
    assert cold.status_code == 200, cold.text
    body = cold.json()
    ann = assert_record(body, "greet", {"greeting": "hello you"})
    assert body["response"]["status"] == "success"
    assert body["response"]["success"] is True
    assert ann["path"] == "acme-int1/greet"
    assert isinstance(ann["initTime"], int) and ann["initTime"] >= 0
    assert cold.headers["x-openwhisk-activation-id"] == body["activationId"]
    warm = await ow.post("greet", {"name": "again"}, blocking="true")
    assert warm.status_code == 200, warm.text
    assert "initTime" not in assert_record(warm.json(), "greet", {"greeting": "hello again"})
    assert warm.json()["activationId"] != body["activationId"]


async def test_blocking_invoke_with_result_answers_only_the_result(ow: Actions) -> None:
    await ow.create("greet", node_action(GREET, parameters=[{"key": "name", "value": "param"}]))
    response = await ow.post("greet", {}, blocking="true", result="true")
    assert response.status_code == 200, response.text
    assert response.json() == {"greeting": "hello param"}
    assert ACTIVATION_ID.fullmatch(response.headers["x-openwhisk-activation-id"])
    overridden = await ow.post("greet", {"name": "body"}, blocking="true", result="true")
    assert overridden.json() == {"greeting": "hello body"}


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("function main() { return {error: 'bad input'}; }", "application error"),
        ("function main() { throw new Error('boom'); }", "action developer error"),
    ],
)
async def test_failed_blocking_invokes_are_502_activations(
    ow: Actions, code: str, status: str
) -> None:
    await ow.create("fails", node_action(code))
    response = await ow.post("fails", {}, blocking="true")
    assert response.status_code == 502, response.text
    body = response.json()
    assert "code" not in body  # a 502 without `code` is an activation to wsk, not an API error
    assert set(body) == RECORD_KEYS
    assert body["response"]["status"] == status
    assert body["response"]["success"] is False
    assert "error" in body["response"]["result"]
    assert response.headers["x-openwhisk-activation-id"] == body["activationId"]
    result_only = await ow.post("fails", {}, blocking="true", result="true")
    assert result_only.status_code == 502, result_only.text
    assert set(result_only.json()) == {"error"}
    if status == "application error":
        assert result_only.json() == {"error": "bad input"}


async def test_an_action_with_empty_code_is_stored_and_fails_to_initialize(ow: Actions) -> None:
    """OpenWhisk takes `code: ""`; running it is the developer's error, at /init."""
    created = await ow.create("empty", node_action(""))
    assert (created["exec"]["code"], created["exec"]["binary"]) == ("", False)
    response = await ow.post("empty", {}, blocking="true")
    assert response.status_code == 502, response.text
    assert response.json()["response"]["status"] == "action developer error", response.text


async def test_an_array_result_is_answered_raw(ow: Actions) -> None:
    await ow.create("listing", node_action("function main() { return [1, 'two', {three: 3}]; }"))
    for query in ({"blocking": "true"}, {"blocking": "true", "result": "true"}):
        response = await ow.post("listing", {}, **query)
        assert response.status_code == 200, response.text
        assert response.json() == [1, "two", {"three": 3}]


async def test_a_public_catalog_action_runs_for_another_namespace(
    ow: Actions, engine: Engine, engine_caller: Caller
) -> None:
    echo = Actions(engine.client, engine_caller, "whisk.system")
    response = await echo.post("utils/echo", {"hi": [1, 2]}, blocking="true", result="true")
    assert response.status_code == 200, response.text
    assert response.json() == {"hi": [1, 2]}
    record = (await echo.post("utils/echo", {"x": 1}, blocking="true")).json()
    assert (record["namespace"], record["name"]) == ("acme-int1", "echo")
    assert annotations(record)["path"] == "whisk.system/utils/echo"
    stored = await engine.activation(record["activationId"])  # records follow results
    assert stored is not None, "the activation was never recorded"
    assert stored.namespace == "acme-int1"
    mine = await engine.client.get(
        f"/api/v1/namespaces/_/activations/{record['activationId']}", headers=engine_caller.headers
    )
    assert mine.status_code == 200, mine.text
    assert mine.json()["response"]["result"] == {"x": 1}
    empty = await engine.client.post(
        echo.url("utils/echo"), params={"blocking": "true", "result": "true"},
        headers=engine_caller.headers,
    )  # fmt: skip
    assert empty.status_code == 200, empty.text
    assert empty.json() == {}


async def test_a_blocking_invoke_that_outlasts_its_wait_answers_202(
    ow: Actions, engine: Engine
) -> None:
    await ow.create("sleepy", node_action(SLEEPY))
    started = time.monotonic()
    response = await ow.post("sleepy", {"ms": 1500}, blocking="true", timeout="300")
    assert response.status_code == 202, response.text
    assert time.monotonic() - started < 1.4
    activation_id = response.json()["activationId"]
    assert response.json() == {"activationId": activation_id}
    assert response.headers["x-openwhisk-activation-id"] == activation_id
    record = await engine.activation(activation_id)
    assert record is not None, "the activation never finished"
    assert record.response["result"] == {"slept": 1500}
    fetched = await ow.client.get(
        f"/api/v1/namespaces/_/activations/{activation_id}", headers=ow.caller.headers
    )
    assert fetched.status_code == 200, fetched.text


async def test_an_accepted_blocking_invoke_outlasting_a_database_outage_answers_202(
    ow: Actions, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Accepted, then the database goes away while the caller waits: reading the record
    # fails, and the caller still gets its activation id (never a 500).
    await ow.create("sleepy", node_action(SLEEPY))

    async def unreachable(*_: Any, **__: Any) -> Any:
        raise ConnectionRefusedError(111, "Connect call failed")

    monkeypatch.setattr(activations, "get", unreachable)
    response = await ow.post("sleepy", {"ms": 1500}, blocking="true", timeout="300")
    assert response.status_code == 202, response.text
    activation_id = response.json()["activationId"]
    assert ACTIVATION_ID.fullmatch(activation_id)
    monkeypatch.undo()
    for _ in range(100):  # it ran, and is recorded once the database is back
        if (record := await engine.activation(activation_id)) is not None:
            break
        await asyncio.sleep(0.1)
    assert record is not None and record.response["result"] == {"slept": 1500}


@pytest.mark.parametrize("timeout", ["0", "60001", "abc", "-5", "1.5", ""])
async def test_invalid_wait_times_are_400(api: Actions, timeout: str) -> None:
    await api.create("greet", node_action(GREET))
    response = await api.post("greet", {}, blocking="true", timeout=timeout)
    assert_error(response, 400, BAD_WAIT)


@pytest.mark.parametrize("name", ["greet", "missing"])
async def test_payloads_over_1_mb_are_413(api: Actions, name: str) -> None:
    # The size is checked before the action is looked up (spec §2.4, order of checks).
    await api.create("greet", node_action(GREET))
    raw = json.dumps({"blob": "x" * MB}).encode()
    response = await api.client.post(
        api.url(name), content=raw,
        headers={**api.caller.headers, "Content-Type": "application/json"},
    )  # fmt: skip
    assert_error(response, 413, f"Request larger than allowed: {len(raw)} > {MB} bytes.")


@pytest.mark.parametrize("raw", [b"42", b'"text"', b"true", b"{not json"])
async def test_a_body_that_is_not_a_json_object_is_400(api: Actions, raw: bytes) -> None:
    await api.create("greet", node_action(GREET))
    response = await api.client.post(
        api.url("greet"), content=raw,
        headers={**api.caller.headers, "Content-Type": "application/json"},
    )  # fmt: skip
    error = assert_error(response, 400)
    assert error.startswith("The request content was malformed:\n"), error
