"""The `openwhisk` npm client against `homerun standalone`: actions, invocation, activations,
namespaces and authentication, asserting on what the client returns (openwhisk.md §12)."""

from __future__ import annotations

import base64
import io
import re
import zipfile
from typing import Any

import pytest

from tests.compat.conftest import OpenWhiskJs, buffer

pytestmark = pytest.mark.slow

ACTIVATION_ID = re.compile(r"^[0-9a-f]{32}$")
HELLO = "function main(p) { console.log('hello log ' + p.name); return {hi: p.name}; }"
BAD_AUTH = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:" + "x" * 64


def invoke_result(ow: OpenWhiskJs, name: str, params: dict[str, Any] | None = None) -> Any:
    options = {"name": name, "params": params or {}, "blocking": True, "result": True}
    return ow("actions.invoke", options)


def annotation(entity: dict[str, Any], key: str) -> Any:
    return next(a["value"] for a in entity["annotations"] if a["key"] == key)


def test_create_sends_the_default_kind_and_stores_a_concrete_one(ow: OpenWhiskJs) -> None:
    created = ow("actions.create", {"name": "created", "action": HELLO})
    assert created["namespace"] == "guest"
    assert created["name"] == "created"
    assert created["version"] == "0.0.1"
    kind = created["exec"]["kind"]
    assert kind.startswith("nodejs:") and kind != "nodejs:default"
    assert created["exec"]["code"] == HELLO
    assert created["exec"]["binary"] is False
    assert annotation(created, "exec") == kind


def test_create_with_annotations_limits_and_version(ow: OpenWhiskJs) -> None:
    options = {
        "name": "annotated",
        "action": HELLO,
        "annotations": {"description": "says hi"},
        "limits": {"timeout": 5000, "memory": 128},
        "version": "1.2.3",
    }
    created = ow("actions.create", options)
    assert annotation(created, "description") == "says hi"
    assert created["limits"]["timeout"] == 5000
    assert created["limits"]["memory"] == 128
    assert created["version"] == "1.2.3"


def test_python_action_with_the_default_python_kind(ow: OpenWhiskJs) -> None:
    code = "def main(args):\n    return {'py': args.get('name')}\n"
    created = ow("actions.create", {"name": "snake", "action": code, "kind": "python:default"})
    assert created["exec"]["kind"].startswith("python:")
    assert created["exec"]["kind"] != "python:default"
    assert invoke_result(ow, "snake", {"name": "s"}) == {"py": "s"}


def test_fully_qualified_names_and_an_explicit_namespace(ow: OpenWhiskJs) -> None:
    created = ow("actions.create", {"name": "/_/qualified", "action": HELLO})
    assert created["namespace"] == "guest"
    assert ow("actions.get", {"name": "/guest/qualified"})["name"] == "qualified"
    options = {"name": "qualified", "namespace": "guest", "params": {"name": "q"}}
    assert ow("actions.invoke", options | {"blocking": True, "result": True}) == {"hi": "q"}
    other = ow.rejects("actions.get", {"name": "/someone-else/qualified"})
    assert other["statusCode"] == 403


def test_create_an_existing_action_without_overwrite_is_a_conflict(ow: OpenWhiskJs) -> None:
    ow("actions.create", {"name": "twice", "action": HELLO})
    rejected = ow.rejects("actions.create", {"name": "twice", "action": HELLO})
    assert rejected["statusCode"] == 409
    assert rejected["message"].endswith('--> "resource already exists"')


def test_get_with_and_without_code(ow: OpenWhiskJs) -> None:
    ow("actions.create", {"name": "fetched", "action": HELLO, "params": {"name": "p"}})
    fetched = ow("actions.get", {"name": "fetched"})
    assert fetched["name"] == "fetched"
    assert fetched["exec"]["code"] == HELLO
    assert fetched["parameters"] == [{"key": "name", "value": "p"}]
    assert "code" not in ow("actions.get", {"name": "fetched", "code": False})["exec"]
    assert ow("actions.get", "fetched")["name"] == "fetched"  # the string shorthand


def test_list_with_limit_and_count(ow: OpenWhiskJs) -> None:
    for name in ("listed1", "listed2"):
        ow("actions.create", {"name": name, "action": HELLO})
    names = [a["name"] for a in ow("actions.list", {"limit": 50})]  # Adobe's maximum
    assert {"listed1", "listed2"} <= set(names)
    assert names[:2] == ["listed2", "listed1"]  # most recently updated first
    assert [a["name"] for a in ow("actions.list", {"limit": 1})] == ["listed2"]
    assert ow("actions.list", {"count": True}) == {"actions": len(names)}


def test_update_overwrites_code_and_parameters(ow: OpenWhiskJs) -> None:
    ow("actions.create", {"name": "updated", "action": HELLO})
    assert invoke_result(ow, "updated", {"name": "a"}) == {"hi": "a"}
    new_code = "function main(p) { return {bye: p.name}; }"
    updated = ow("actions.update", {"name": "updated", "action": new_code, "params": {"name": "b"}})
    assert updated["version"] == "0.0.2"
    assert updated["exec"]["code"] == new_code
    assert updated["parameters"] == [{"key": "name", "value": "b"}]
    assert invoke_result(ow, "updated") == {"bye": "b"}


def test_delete_returns_the_action_and_then_it_is_gone(ow: OpenWhiskJs) -> None:
    ow("actions.create", {"name": "deleted", "action": HELLO})
    deleted = ow("actions.delete", {"name": "deleted"})
    assert deleted["name"] == "deleted"
    for call in ("actions.get", "actions.delete", "actions.invoke"):
        rejected = ow.rejects(call, {"name": "deleted"})
        assert rejected["statusCode"] == 404, call
        assert rejected["message"].endswith('--> "The requested resource does not exist."')


def test_zip_action_sent_as_a_buffer(ow: OpenWhiskJs) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("package.json", '{"name": "zipped", "main": "lib/entry.js"}')
        zipped.writestr("lib/entry.js", "exports.main = p => ({zipped: true, n: p.n * 2})")
    data = archive.getvalue()
    created = ow("actions.create", {"name": "zipped", "action": buffer(data)})
    assert created["exec"]["binary"] is True
    fetched = ow("actions.get", {"name": "zipped"})
    assert base64.b64decode(fetched["exec"]["code"]) == data
    assert invoke_result(ow, "zipped", {"n": 21}) == {"zipped": True, "n": 42}


def test_non_blocking_invoke_returns_the_activation_id(ow: OpenWhiskJs) -> None:
    ow("actions.create", {"name": "async", "action": HELLO})
    invoked = ow("actions.invoke", {"name": "async", "params": {"name": "later"}})
    assert set(invoked) == {"activationId"}
    assert ACTIVATION_ID.match(invoked["activationId"])
    activation = ow.eventually("activations.get", invoked, lambda a: "response" in a)
    assert activation["activationId"] == invoked["activationId"]
    assert activation["response"]["result"] == {"hi": "later"}


def test_blocking_invoke_returns_the_activation(ow: OpenWhiskJs) -> None:
    ow("actions.create", {"name": "blocking", "action": HELLO})
    options = {"name": "blocking", "params": {"name": "now"}, "blocking": True}
    activation = ow("actions.invoke", options)
    assert ACTIVATION_ID.match(activation["activationId"])
    assert activation["name"] == "blocking"
    assert activation["namespace"] == "guest"
    assert activation["response"]["status"] == "success"
    assert activation["response"]["success"] is True
    assert activation["response"]["result"] == {"hi": "now"}


def test_blocking_invoke_with_result_returns_only_the_result(ow: OpenWhiskJs) -> None:
    ow("actions.create", {"name": "resulting", "action": HELLO})
    assert invoke_result(ow, "resulting", {"name": "r"}) == {"hi": "r"}


@pytest.mark.parametrize(
    ("error", "message"),
    [
        pytest.param("'boom'", "boom", id="string"),
        pytest.param("{error: 'nested boom'}", "nested boom", id="nested"),
        pytest.param("{statusCode: 418}", "application error, status code: 418", id="status"),
    ],
)
@pytest.mark.parametrize("result", [False, True], ids=["activation", "result"])
def test_an_action_error_rejects_with_its_message(
    ow: OpenWhiskJs, request: pytest.FixtureRequest, error: str, message: str, result: bool
) -> None:
    name = "failing-" + request.node.callspec.id
    code = f"function main() {{ return {{error: {error}}}; }}"
    ow("actions.create", {"name": name, "action": code})
    rejected = ow.rejects("actions.invoke", {"name": name, "blocking": True, "result": result})
    assert rejected["statusCode"] == 502
    assert rejected["message"].endswith(f'--> "{message}"'), rejected["message"]
    activation = rejected["error"]  # the body: the activation record, without an API `code`
    assert "code" not in activation
    assert activation["response"]["success"] is False
    assert activation["response"]["status"] == "application error"


def test_activations_list_filters_by_name_and_limits(ow: OpenWhiskJs) -> None:
    for name in ("counted", "uncounted"):
        ow("actions.create", {"name": name, "action": HELLO})
    ids = []
    for name, param in (("counted", "c1"), ("uncounted", "u"), ("counted", "c2")):
        activation = ow(
            "actions.invoke", {"name": name, "params": {"name": param}, "blocking": True}
        )
        if name == "counted":
            ids.append(activation["activationId"])
    listed = ow.eventually("activations.list", {"name": "counted"}, lambda found: len(found) >= 2)
    assert [a["activationId"] for a in listed] == ids[::-1]  # newest first
    assert {a["name"] for a in listed} == {"counted"}
    assert all("response" not in a and a["statusCode"] == 0 for a in listed)  # summaries
    newest = ow("activations.list", {"name": "counted", "limit": 1})
    assert [a["activationId"] for a in newest] == ids[-1:]
    oldest = ow("activations.list", {"name": "counted", "skip": 1})
    assert [a["activationId"] for a in oldest] == ids[:1]
    assert ow("activations.list", {"name": "counted", "count": True}) == {"activations": 2}
    docs = ow("activations.list", {"name": "counted", "docs": True})
    assert [a["response"]["result"] for a in docs] == [{"hi": "c2"}, {"hi": "c1"}]


def test_activation_get_logs_and_result(ow: OpenWhiskJs) -> None:
    ow("actions.create", {"name": "logged", "action": HELLO})
    invoked = ow("actions.invoke", {"name": "logged", "params": {"name": "L"}, "blocking": True})
    activation_id = invoked["activationId"]
    activation = ow.eventually("activations.get", activation_id, lambda a: bool(a["logs"]))
    assert activation["activationId"] == activation_id
    assert activation["name"] == "logged"
    assert activation["response"]["result"] == {"hi": "L"}
    logs = ow("activations.logs", {"activationId": activation_id})
    assert set(logs) == {"logs"}
    assert any(line.endswith("stdout: hello log L") for line in logs["logs"]), logs
    result = ow("activations.result", {"activationId": activation_id})
    assert result["result"] == {"hi": "L"}
    assert result["success"] is True
    assert result["status"] == "success"
    missing = ow.rejects("activations.get", "0" * 32)
    assert missing["statusCode"] == 404


def test_the_transaction_id_the_client_forwards_names_the_error(ow: OpenWhiskJs) -> None:
    transaction = {"__OW_TRANSACTION_ID": "compat0transaction0id0000000001"}
    rejected = ow.rejects("actions.get", {"name": "absent"}, **transaction)
    assert rejected["statusCode"] == 404
    assert rejected["error"]["code"] == transaction["__OW_TRANSACTION_ID"]


def test_namespaces_list(ow: OpenWhiskJs) -> None:
    assert ow("namespaces.list") == ["guest"]


@pytest.mark.parametrize("call", ["namespaces.list", "actions.list", "activations.list"])
def test_a_wrong_key_is_rejected_with_401(ow: OpenWhiskJs, call: str) -> None:
    rejected = ow.rejects(call, auth=BAD_AUTH)
    assert rejected["statusCode"] == 401
    assert rejected["message"].endswith('--> "The supplied authentication is invalid"')
