"""Firing triggers end to end: the execution engine with an in-process invoker runs the rules'
actions (shared/spec/openwhisk.md §10.1)."""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import ANY

import pytest

from controller.services.activations import Activation
from tests.conftest import Engine
from tests.controller.api.openwhisk_triggers.conftest import Caller, basic, error_of

ECHO = "function main(p) { return {action: '%s', args: p}; }"


@pytest.fixture
def sandbox_kind() -> str:
    return "process"


@pytest.fixture
async def ow(engine: Engine) -> Caller:
    """The engine's namespace, with actions `a` and `b` and trigger `t` (parameters `color`
    and `size`) linked to both by rules `ra` and `rb`."""
    response = await engine.client.get(
        "/runtime/admin/namespaces/acme/int1", headers=engine.headers
    )
    assert response.status_code == 200, response.text
    namespace = response.json()
    caller = Caller(engine.client, namespace["name"], basic(namespace["auth"]))
    for name in ("a", "b"):
        await caller.action(name, ECHO % name)
    await caller.trigger(
        "t",
        parameters=[{"key": "color", "value": "red"}, {"key": "size", "value": 1}],
    )
    await caller.rule("ra", "/_/t", "/_/a")
    await caller.rule("rb", "/_/t", "/_/b")
    return caller


async def fire(ow: Caller, payload: Any) -> str:
    response = await ow.post("triggers", "t", payload)
    assert response.status_code == 202, response.text
    activation_id: str = response.json()["activationId"]
    assert response.json() == {"activationId": activation_id}
    assert response.headers["x-openwhisk-activation-id"] == activation_id
    return activation_id


async def recorded(engine: Engine, activation_id: str) -> Activation:
    found = await engine.activation(activation_id)
    assert found is not None, f"activation {activation_id} was not recorded"
    assert isinstance(found, Activation)
    return found


def rule_logs(trigger_activation: Activation) -> dict[str, dict[str, Any]]:
    lines = [json.loads(line) for line in trigger_activation.logs]
    return {line["rule"]: line for line in lines}


async def test_firing_runs_every_active_rule_and_records_the_trigger_activation(
    engine: Engine, ow: Caller
) -> None:
    ns = ow.namespace

    trigger_id = await fire(ow, {"size": 2, "extra": [1]})

    trigger = await recorded(engine, trigger_id)
    assert trigger.name == "t"
    assert trigger.namespace == trigger.subject == ns
    assert trigger.version == "0.0.1"
    assert trigger.end == 0 and trigger.duration == 0
    assert trigger.status_code == 0
    assert trigger.annotations == []
    assert trigger.cause is None
    merged = {"color": "red", "size": 2, "extra": [1]}
    assert trigger.response["result"] == {"size": 2, "extra": [1]}, "the payload (§10.1)"
    assert trigger.response["success"] is True
    logs = rule_logs(trigger)
    assert set(logs) == {f"{ns}/ra", f"{ns}/rb"}
    for rule, action in (("ra", "a"), ("rb", "b")):
        line = logs[f"{ns}/{rule}"]
        assert list(line) == ["statusCode", "success", "activationId", "rule", "action"]
        assert line["statusCode"] == 0 and line["success"] is True
        assert line["action"] == f"{ns}/{action}"
        run = await recorded(engine, line["activationId"])
        assert run.cause is None, "rule-fired activations carry no cause (§10.1)"
        assert run.name == action
        assert run.status_code == 0, run.response
        args = dict(run.response["result"]["args"])
        headers = args.pop("__ow_headers")
        assert "authorization" not in headers and headers["content-type"] == "application/json"
        assert run.response["result"] == {
            "action": action,
            "args": {**merged, "__ow_headers": headers},
        }
    assert '"activationId"' in trigger.logs[0] and " " not in trigger.logs[0]  # compact JSON


async def test_the_trigger_activation_is_served_by_the_activations_api(
    engine: Engine, ow: Caller
) -> None:
    trigger_id = await fire(ow, {})
    await recorded(engine, trigger_id)

    got = await ow.get("activations", trigger_id)
    by_name = await ow.get("activations", name="t")

    assert got.status_code == 200
    body = got.json()
    assert body["name"] == "t"
    assert body["activationId"] == trigger_id
    assert body["annotations"] == []
    assert body["response"]["result"] == {}, "the payload, or {} (§10.1)"
    assert "end" not in body and "duration" not in body
    assert body["response"]["status"] == "success"
    assert len(body["logs"]) == 2
    assert "cause" not in body
    assert [a["activationId"] for a in by_name.json()] == [trigger_id]


async def test_a_disabled_rule_does_not_fire(engine: Engine, ow: Caller) -> None:
    ns = ow.namespace
    assert (await ow.post("rules", "rb", {"status": "inactive"})).status_code == 200

    trigger_id = await fire(ow, {"n": 1})

    trigger = await recorded(engine, trigger_id)
    logs = rule_logs(trigger)
    assert list(logs) == [f"{ns}/ra"]
    run = await recorded(engine, logs[f"{ns}/ra"]["activationId"])
    assert run.name == "a"
    assert run.cause is None


async def test_no_active_rule_is_204_and_runs_nothing(engine: Engine, ow: Caller) -> None:
    for rule in ("ra", "rb"):
        assert (await ow.post("rules", rule, {"status": "inactive"})).status_code == 200

    response = await ow.post("triggers", "t", {"n": 1})

    assert response.status_code == 204
    assert response.content == b""
    assert (await ow.get("activations", count="true")).json() == {"activations": 0}


async def test_a_rule_whose_action_is_gone_is_logged_as_failed(engine: Engine, ow: Caller) -> None:
    ns = ow.namespace
    assert (await ow.delete("actions", "b")).status_code == 200

    trigger_id = await fire(ow, {})

    logs = rule_logs(await recorded(engine, trigger_id))
    assert logs[f"{ns}/rb"] == {
        "statusCode": 1,
        "success": False,
        "error": "The requested resource does not exist.",
        "rule": f"{ns}/rb",
        "action": f"{ns}/b",
    }
    ran = await recorded(engine, logs[f"{ns}/ra"]["activationId"])
    assert ran.status_code == 0


async def test_firing_a_missing_trigger_is_404(ow: Caller) -> None:
    response = await ow.post("triggers", "nope", {})

    assert response.status_code == 404
    assert error_of(response) == "The requested resource does not exist."


async def test_a_rule_through_a_binding_gets_the_package_and_binding_parameters(
    engine: Engine, ow: Caller
) -> None:
    ns = ow.namespace
    package = await ow.put("packages", "pkg", {"parameters": [{"key": "p", "value": "pkg"}]})
    binding = await ow.put(
        "packages", "bound",
        {"binding": {"namespace": "_", "name": "pkg"}, "parameters": [{"key": "b", "value": 1}]},
    )  # fmt: skip
    assert package.status_code == binding.status_code == 200, binding.text
    await ow.action("pkg/c", ECHO % "c")
    await ow.rule("rc", "/_/t", "/_/bound/c")
    for rule in ("ra", "rb"):
        assert (await ow.post("rules", rule, {"status": "inactive"})).status_code == 200

    trigger_id = await fire(ow, {"size": 3})

    logs = rule_logs(await recorded(engine, trigger_id))
    assert logs[f"{ns}/rc"]["action"] == f"{ns}/bound/c"
    run = await recorded(engine, logs[f"{ns}/rc"]["activationId"])
    assert run.response["result"] == {
        "action": "c",
        "args": {"p": "pkg", "b": 1, "color": "red", "size": 3, "__ow_headers": ANY},
    }
    assert run.annotation_map["path"] == f"{ns}/pkg/c"
    assert run.annotation_map["binding"] == f"{ns}/bound"
