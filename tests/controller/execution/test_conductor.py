"""Conductor actions (controller.execution.conductor) through the OpenWhisk API, on the real
engine: the composition's steps, its record, and what goes back to the conductor when a step
cannot run."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Engine
from tests.controller.api.openwhisk.support import Actions, Caller, annotations

# Steps through `step` (the component names it is given, in turn), keeping its place in
# `state`; hands back what a step could not do, and ends with the last result.
CONDUCTOR = """
function main(p) {
  const at = p.$at || 0;
  if (p.error !== undefined) return {params: {caught: p.error, at: at}};
  const steps = p.$steps || p.steps;
  if (at >= steps.length) return {params: {n: p.n, done: true}};
  return {action: steps[at], params: {n: p.n}, state: {$at: at + 1, $steps: steps}};
}
"""
TRIPLE = "function main(p) { return {n: p.n * 3}; }"
INCREMENT = "function main(p) { return {n: p.n + 1}; }"
FAILS = "function main(p) { return {error: 'component failed at ' + p.n}; }"


@pytest.fixture
def sandbox_kind() -> str:
    return "process"


@pytest.fixture
async def ow(engine: Engine, engine_caller: Caller) -> Actions:
    """The engine's namespace, with the conductor `conduct` and its components."""
    api = Actions(engine.client, engine_caller)
    conductor = {"exec": {"kind": "nodejs:22", "code": CONDUCTOR},
                 "annotations": [{"key": "conductor", "value": True}]}  # fmt: skip
    await api.create("conduct", conductor)
    for name, code in (("triple", TRIPLE), ("increment", INCREMENT), ("fails", FAILS)):
        await api.create(name, {"exec": {"kind": "nodejs:22", "code": code}})
    return api


async def compose(ow: Actions, steps: list[Any], n: int = 2) -> dict[str, Any]:
    response = await ow.post("conduct", {"n": n, "steps": steps}, blocking="true")
    assert response.status_code in (200, 502), response.text
    record: dict[str, Any] = response.json()
    return record


async def test_the_components_run_in_turn_and_the_last_params_are_the_result(
    ow: Actions, engine: Engine
) -> None:
    record = await compose(ow, ["triple", "increment", "/_/triple"])
    assert record["response"]["result"] == {"n": 21, "done": True}
    assert record["response"]["status"] == "success"
    marks = annotations(record)
    assert (marks["conductor"], marks["kind"], marks["topmost"]) == (True, "sequence", True)
    assert marks["path"] == "acme-int1/conduct"
    assert record["name"] == "conduct"
    # conductor, triple, conductor, increment, conductor, triple, conductor
    assert len(record["logs"]) == 7
    steps = [await engine.activation(i) for i in record["logs"]]
    names = ["conduct", "triple", "conduct", "increment", "conduct", "triple", "conduct"]
    assert [s.name for s in steps] == names
    assert all(s.cause == record["activationId"] for s in steps)
    assert [s.response["result"] for s in steps[1::2]] == [{"n": 6}, {"n": 7}, {"n": 21}]
    assert record["duration"] == sum(s.duration for s in steps)


async def test_a_component_that_cannot_run_is_the_conductors_to_handle(ow: Actions) -> None:
    cases = [
        ("nope", "Failed to resolve action with name 'acme-int1/nope' during composition."),
        ("/other-ns/thing",
         "Failed entitlement check for action with name 'other-ns/thing' during composition."),
        (42, "Failed to parse action name from json value 42 during composition."),
        ("a//b", 'Failed to parse action name from json value "a//b" during composition.'),
    ]  # fmt: skip
    for step, message in cases:
        record = await compose(ow, ["triple", step])
        assert record["response"]["result"] == {"caught": message, "at": 2}, step
        assert len(record["logs"]) == 4, step  # conductor, triple, conductor, conductor


async def test_a_failed_component_goes_back_to_the_conductor(ow: Actions) -> None:
    record = await compose(ow, ["fails", "triple"])
    assert record["response"]["result"] == {"caught": "component failed at 2", "at": 1}
    assert record["response"]["status"] == "success"


async def test_an_error_of_the_conductor_ends_the_composition(ow: Actions) -> None:
    code = "function main(p) { return {error: 'no plan'}; }"
    marks = [{"key": "conductor", "value": True}]
    await ow.create("broken", {"exec": {"kind": "nodejs:22", "code": code}, "annotations": marks})
    response = await ow.post("broken", {}, blocking="true")
    assert response.status_code == 502, response.text
    assert response.json()["response"]["status"] == "application error"
    assert response.json()["response"]["result"] == {"error": "no plan"}
    result_only = await ow.post("broken", {}, blocking="true", result="true")
    assert (result_only.status_code, result_only.json()) == (502, {"error": "no plan"})


async def test_params_and_state_that_are_not_objects_are_boxed(ow: Actions) -> None:
    code = """
    function main(p) {
      if (p.state === 'again') return {params: 5};
      return {action: 'increment', params: {n: 1}, state: 'again'};
    }"""
    marks = [{"key": "conductor", "value": "yes"}]  # truthy: a non-empty string
    await ow.create("boxes", {"exec": {"kind": "nodejs:22", "code": code}, "annotations": marks})
    result = await ow.post("boxes", {}, blocking="true", result="true")
    assert result.json() == {"value": 5}, result.text


async def test_a_composition_has_at_most_the_sequence_limit_of_components(ow: Actions) -> None:
    record = await compose(ow, ["increment"] * 60, n=0)
    assert record["response"]["result"] == {
        "caught": "Too many actions in the composition.", "at": 51,
    }  # fmt: skip
    assert len(record["logs"]) == 50 + 52  # the 51st conductor asked for one too many


async def test_an_action_annotated_conductor_false_runs_plainly(ow: Actions) -> None:
    code = "function main(p) { return {action: 'triple', params: {n: 1}}; }"
    marks = [{"key": "conductor", "value": False}]
    await ow.create("plain", {"exec": {"kind": "nodejs:22", "code": code}, "annotations": marks})
    result = await ow.post("plain", {}, blocking="true", result="true")
    assert result.json() == {"action": "triple", "params": {"n": 1}}
