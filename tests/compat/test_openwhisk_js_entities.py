"""The `openwhisk` npm client against `homerun standalone`: packages and bindings, triggers,
rules and firing, sequences and web actions (openwhisk.md §2.2, §3.3-3.6, §7, §8, §10.1, §12)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.compat.conftest import OpenWhiskJs

pytestmark = pytest.mark.slow

ACTIVATION_ID = re.compile(r"^[0-9a-f]{32}$")
GREET = "function main(p) { return {text: p.greeting + ' ' + p.who}; }"
ECHO = "function main(p) { return {t: p.from_trigger, p: p.from_payload}; }"


def params(**values: Any) -> list[dict[str, Any]]:
    return [{"key": key, "value": value} for key, value in values.items()]


def invoke_result(ow: OpenWhiskJs, name: str) -> Any:
    return ow("actions.invoke", {"name": name, "blocking": True, "result": True})


def no_activation(value: Any) -> bool:
    """True for what the client resolves to when a fire answers 204 (no active rule): needle
    hands the empty body over as an empty Buffer, which the driver prints as an object."""
    return not (isinstance(value, dict) and "activationId" in value)


def test_package_create_get_list_update_delete(ow: OpenWhiskJs) -> None:
    body = {"parameters": params(greeting="hello"), "publish": False}
    created = ow("packages.create", {"name": "plain", "package": body})
    assert created["namespace"] == "guest"
    assert created["name"] == "plain"
    assert created["version"] == "0.0.1"
    assert created["binding"] == {}
    assert created["parameters"] == params(greeting="hello")
    fetched = ow("packages.get", {"name": "plain"})
    assert fetched["name"] == "plain"
    assert fetched["actions"] == []
    assert fetched["feeds"] == []
    assert "plain" in [p["name"] for p in ow("packages.list")]
    updated = ow("packages.update", {"name": "plain", "package": {"publish": True}})
    assert updated["version"] == "0.0.2"
    assert updated["publish"] is True
    assert updated["parameters"] == params(greeting="hello")  # absent fields are kept
    assert ow("packages.delete", {"name": "plain"})["name"] == "plain"
    assert ow.rejects("packages.get", {"name": "plain"})["statusCode"] == 404


def test_actions_in_a_package_and_through_a_binding(ow: OpenWhiskJs) -> None:
    package = {"parameters": params(greeting="hello", who="package")}
    ow("packages.create", {"name": "tools", "package": package})
    created = ow("actions.create", {"name": "tools/greet", "action": GREET})
    assert created["namespace"] == "guest/tools"
    assert created["name"] == "greet"
    assert invoke_result(ow, "tools/greet") == {"text": "hello package"}
    assert [a["name"] for a in ow("packages.get", {"name": "tools"})["actions"]] == ["greet"]
    assert ("guest/tools", "greet") in [(a["namespace"], a["name"]) for a in ow("actions.list")]

    binding = {"binding": {"namespace": "_", "name": "tools"}, "parameters": params(who="binding")}
    bound = ow("packages.create", {"name": "mytools", "package": binding})
    assert bound["binding"] == {"namespace": "guest", "name": "tools"}
    activation = ow("actions.invoke", {"name": "mytools/greet", "blocking": True})
    assert activation["response"]["result"] == {"text": "hello binding"}
    annotations = {a["key"]: a["value"] for a in activation["annotations"]}
    assert annotations["path"] == "guest/tools/greet"  # the real package
    assert annotations["binding"] == "guest/mytools"
    fetched = ow("packages.get", {"name": "mytools"})
    assert [a["name"] for a in fetched["actions"]] == ["greet"]

    not_empty = ow.rejects("packages.delete", {"name": "tools"})
    assert not_empty["statusCode"] == 409
    assert "Package not empty" in not_empty["message"]
    ow("actions.delete", {"name": "tools/greet"})
    ow("packages.delete", {"name": "mytools"})
    ow("packages.delete", {"name": "tools"})
    assert ow.rejects("actions.get", {"name": "tools/greet"})["statusCode"] == 404


def test_trigger_create_get_list_update_delete(ow: OpenWhiskJs) -> None:
    created = ow("triggers.create", {"name": "tick", "trigger": {"parameters": params(a=1)}})
    assert created["namespace"] == "guest"
    assert created["name"] == "tick"
    assert created["version"] == "0.0.1"
    assert created["parameters"] == params(a=1)
    assert ow("triggers.get", {"name": "tick"})["parameters"] == params(a=1)
    assert "tick" in [t["name"] for t in ow("triggers.list")]
    updated = ow("triggers.update", {"name": "tick", "trigger": {"parameters": params(a=2)}})
    assert updated["version"] == "0.0.2"
    assert updated["parameters"] == params(a=2)
    assert ow("triggers.delete", {"name": "tick"})["name"] == "tick"
    assert ow.rejects("triggers.get", {"name": "tick"})["statusCode"] == 404


def test_firing_a_trigger_without_rules_creates_no_activation(ow: OpenWhiskJs) -> None:
    ow("triggers.create", {"name": "idle"})
    assert no_activation(ow("triggers.invoke", {"name": "idle", "params": {"x": 1}}))
    assert ow("activations.list", {"name": "idle"}) == []
    assert ow.rejects("triggers.invoke", {"name": "missing"})["statusCode"] == 404


def test_rule_lifecycle_and_firing(ow: OpenWhiskJs) -> None:
    ow("actions.create", {"name": "echo", "action": ECHO})
    ow("triggers.create", {"name": "fired", "trigger": {"parameters": params(from_trigger="t")}})
    rule = ow("rules.create", {"name": "link", "trigger": "fired", "action": "echo"})
    assert rule["name"] == "link"
    assert rule["status"] == "active"
    assert rule["trigger"] == {"path": "guest", "name": "fired"}
    assert rule["action"] == {"path": "guest", "name": "echo"}
    assert ow("rules.get", {"name": "link"})["status"] == "active"
    assert "link" in [r["name"] for r in ow("rules.list")]

    ow("rules.disable", {"name": "link"})
    assert ow("rules.get", {"name": "link"})["status"] == "inactive"
    assert no_activation(ow("triggers.invoke", {"name": "fired"}))
    ow("rules.enable", {"name": "link"})
    assert ow("rules.get", {"name": "link"})["status"] == "active"

    fired = ow("triggers.invoke", {"name": "fired", "params": {"from_payload": "p"}})
    assert ACTIVATION_ID.match(fired["activationId"])
    ran = ow.eventually("activations.list", {"name": "echo", "docs": True}, bool)
    assert len(ran) == 1  # the fire while the rule was inactive ran nothing
    assert ran[0]["response"]["result"] == {"t": "t", "p": "p"}
    record = ow.eventually("activations.get", fired, lambda a: bool(a["logs"]))
    assert record["name"] == "fired"
    assert [json.loads(line) for line in record["logs"]] == [
        {
            "statusCode": 0,
            "success": True,
            "activationId": ran[0]["activationId"],
            "rule": "guest/link",
            "action": "guest/echo",
        }
    ]

    assert ow("rules.delete", {"name": "link"})["name"] == "link"
    assert ow.rejects("rules.get", {"name": "link"})["statusCode"] == 404
    ow("triggers.delete", {"name": "fired"})


def test_namespaces_get_lists_every_collection(ow: OpenWhiskJs) -> None:
    ow("actions.create", {"name": "listed", "action": ECHO})
    ow("triggers.create", {"name": "listed-trigger"})
    everything = ow("namespaces.get")
    assert set(everything) == {"actions", "packages", "triggers", "rules"}
    assert "listed" in [a["name"] for a in everything["actions"]]
    assert "listed-trigger" in [t["name"] for t in everything["triggers"]]
    assert isinstance(everything["packages"], list)
    assert isinstance(everything["rules"], list)


def test_sequence_create_get_invoke_update_delete(ow: OpenWhiskJs) -> None:
    ow("actions.create", {"name": "inc", "action": "function main(p) { return {n: p.n + 1}; }"})
    ow("actions.create", {"name": "dbl", "action": "function main(p) { return {n: p.n * 2}; }"})
    sequence = {"exec": {"kind": "sequence", "components": ["/_/inc", "/_/dbl"]}}
    created = ow("actions.create", {"name": "calc", "action": sequence})
    assert created["exec"]["kind"] == "sequence"
    assert created["exec"]["components"] == ["/guest/inc", "/guest/dbl"]
    assert ow("actions.get", {"name": "calc"})["exec"]["components"] == ["/guest/inc", "/guest/dbl"]
    assert "calc" in [a["name"] for a in ow("actions.list")]
    result = ow("actions.invoke", {"name": "calc", "params": {"n": 1}, "blocking": True})
    assert result["response"]["result"] == {"n": 4}
    assert len(result["logs"]) == 2, "a sequence's logs are its component activation ids"
    reordered = {"exec": {"kind": "sequence", "components": ["/_/dbl", "/_/inc"]}}
    updated = ow("actions.update", {"name": "calc", "action": reordered})
    assert updated["version"] == "0.0.2"
    again = ow("actions.invoke", {"name": "calc", "params": {"n": 1}, "blocking": True})
    assert again["response"]["result"] == {"n": 3}
    assert ow("actions.delete", {"name": "calc"})["name"] == "calc"


def test_web_action_create_and_call(ow: OpenWhiskJs) -> None:
    code = "function main(p) { return {body: {hi: p.name, method: p.__ow_method}}; }"
    annotations = {"web-export": True}
    created = ow("actions.create", {"name": "page", "action": code, "annotations": annotations})
    assert {"key": "web-export", "value": True} in created["annotations"]
    listed = [a["name"] for a in ow("actions.list")]
    assert "page" in listed
    fetched = ow("actions.get", {"name": "page"})
    assert {"key": "web-export", "value": True} in fetched["annotations"]
    response = httpx.get(f"{ow.apihost}/api/v1/web/guest/default/page.json?name=web", timeout=60)
    assert response.status_code == 200, response.text
    assert response.json() == {"body": {"hi": "web", "method": "get"}}
    ow("actions.update", {"name": "page", "action": code, "annotations": {"web-export": False}})
    hidden = httpx.get(f"{ow.apihost}/api/v1/web/guest/default/page.json", timeout=60)
    assert hidden.status_code == 404
    assert ow("actions.delete", {"name": "page"})["name"] == "page"
