"""The seed API's action endpoints: `/runtime/namespaces/{orgId}/{intId}/actions[/{name}]`."""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import zipfile
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.db.models import CodeBlobRow
from controller.settings import Settings
from controller.setup import in_transaction

Headers = dict[str, str]
Json = dict[str, Any]

NS = "acme-int1"
NODE_CODE = "function main(params) { return {payload: 'hello ' + params.name} }"
PYTHON_CODE = "def main(args):\n    return {'payload': 'hello ' + args.get('name', '')}\n"
CODE_LIMIT = 22 * 1024 * 1024
PARAMS_LIMIT = 1024 * 1024


def zip_base64() -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("package.json", '{"main": "index.js"}')
        archive.writestr("index.js", "exports.handler = () => ({ok: true})")
    return base64.b64encode(buffer.getvalue()).decode()


def node_action(name: str, code: str = NODE_CODE, **fields: Any) -> Json:
    return {"name": name, "code": code, "exec": {"kind": "nodejs:18"}, **fields}


def sequence(name: str, *components: str) -> Json:
    return {"name": name, "exec": {"kind": "sequence", "components": list(components)}}


class Actions:
    """The action endpoints of one namespace, called with one caller's credentials."""

    def __init__(self, client: httpx.AsyncClient, headers: Headers, base: str) -> None:
        self.client = client
        self.headers = headers
        self.base = base

    async def create(self, body: Any) -> httpx.Response:
        return await self.client.post(self.base, json=body, headers=self.headers)

    async def get(self, name: str) -> httpx.Response:
        return await self.client.get(f"{self.base}/{name}", headers=self.headers)

    async def put(self, name: str, body: Any) -> httpx.Response:
        return await self.client.put(f"{self.base}/{name}", json=body, headers=self.headers)

    async def delete(self, name: str) -> httpx.Response:
        return await self.client.delete(f"{self.base}/{name}", headers=self.headers)

    async def list(self, **query: Any) -> httpx.Response:
        return await self.client.get(self.base, params=query, headers=self.headers)

    async def send(
        self, method: str, path: str, content: bytes, content_type: str | None = "application/json"
    ) -> httpx.Response:
        headers = dict(self.headers)
        if content_type is not None:
            headers["Content-Type"] = content_type
        return await self.client.request(method, self.base + path, content=content, headers=headers)

    async def names(self) -> list[str]:
        return [item["name"] for item in ok(await self.list())]


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def error(response: httpx.Response, status: int) -> str:
    """Assert an error response of `status` in the standard shape; return its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "code"}
    assert body["code"] == response.headers["x-request-id"]
    message: str = body["error"]
    return message


def annotations(dto: Json) -> dict[str, Any]:
    return {kv["key"]: kv["value"] for kv in dto["annotations"]}


@pytest.fixture
async def api(
    client: httpx.AsyncClient,
    issue: Callable[..., Awaitable[Headers]],
    create_namespace: Callable[[str, str], Awaitable[Json]],
) -> Actions:
    namespace = await create_namespace("acme", "int1")
    assert namespace["name"] == NS
    return Actions(client, await issue(org="acme"), "/runtime/namespaces/acme/int1/actions")


async def blob_rows(settings: Settings, code: str | None = None) -> int:
    """How many code blobs are stored (only those holding `code`, when given)."""

    async def count(session: AsyncSession) -> int:
        query = select(func.count()).select_from(CodeBlobRow)
        if code is not None:
            digest = hashlib.sha256(code.encode()).hexdigest()
            query = query.where(CodeBlobRow.digest == digest)
        return int(await session.scalar(query) or 0)

    return await in_transaction(settings, count)


# Happy paths.


async def test_create_get_list_update_delete(api: Actions, settings: Settings) -> None:
    body = node_action(
        "hello",
        params=[{"key": "name", "value": "World"}, {"key": "nested", "value": {"a": [1, None]}}],
        annotations=[{"key": "description", "value": "Greets"}],
        limits={"timeout": "30000", "memory": 512, "logs": "5"},
    )
    created = ok(await api.create(body))
    assert created == {
        "name": "hello",
        "code": NODE_CODE,
        "namespace": NS,
        "version": "0.0.1",
        "params": [
            {"key": "name", "value": "World"},
            {"key": "nested", "value": {"a": [1, None]}},
        ],
        "annotations": [
            {"key": "description", "value": "Greets"},
            {"key": "provide-api-key", "value": False},
            {"key": "exec", "value": "nodejs:18"},
        ],
        "limits": {"timeout": "30000", "memory": "512", "logs": "5"},
        "exec": {"kind": "nodejs:18", "binary": False},
        "url": f"{settings.public_api_host}/api/v1/namespaces/{NS}/actions/hello",
    }
    assert ok(await api.get("hello")) == created

    listed = ok(await api.list())
    assert listed == [{k: v for k, v in created.items() if k != "code"}]

    updated = ok(await api.put("hello", {"params": [{"key": "name", "value": "Moon"}]}))
    assert updated == {**created, "version": "0.0.2", "params": [{"key": "name", "value": "Moon"}]}
    assert ok(await api.get("hello")) == updated

    assert ok(await api.delete("hello")) == updated
    error(await api.get("hello"), 404)
    assert ok(await api.list()) == []


async def test_defaults_on_create(api: Actions) -> None:
    created = ok(await api.create(node_action("plain")))
    assert created["params"] == []
    assert created["limits"] == {"timeout": "60000", "memory": "256", "logs": "10"}
    assert created["annotations"] == [
        {"key": "provide-api-key", "value": False},
        {"key": "exec", "value": "nodejs:18"},
    ]
    assert created["version"] == "0.0.1"


async def test_packaged_action(api: Actions, settings: Settings) -> None:
    created = ok(await api.create(node_action("tools/hello")))
    assert created["name"] == "tools/hello"
    assert (
        created["url"] == f"{settings.public_api_host}/api/v1/namespaces/{NS}/actions/tools/hello"
    )
    assert ok(await api.get("tools/hello")) == created
    ok(await api.create(node_action("tools/other")))
    ok(await api.create(node_action("hello")))
    assert sorted(await api.names()) == ["hello", "tools/hello", "tools/other"]

    updated = ok(await api.put("tools/hello", node_action("tools/hello", code="// v2")))
    assert updated["code"] == "// v2"
    assert updated["version"] == "0.0.2"
    assert ok(await api.get("hello"))["code"] == NODE_CODE  # the unpackaged one is separate

    assert ok(await api.delete("tools/hello"))["name"] == "tools/hello"
    error(await api.get("tools/hello"), 404)
    assert sorted(await api.names()) == ["hello", "tools/other"]


async def test_zip_action_is_binary(api: Actions) -> None:
    code = zip_base64()
    body = {"name": "zipped", "code": code, "exec": {"kind": "nodejs:18", "main": "handler"}}
    created = ok(await api.create(body))
    assert created["code"] == code
    assert created["exec"] == {"kind": "nodejs:18", "binary": True, "main": "handler"}
    assert ok(await api.get("zipped")) == created
    listed = ok(await api.list())
    assert listed[0]["exec"] == {"kind": "nodejs:18", "binary": True, "main": "handler"}
    assert "code" not in listed[0]

    # The client's `binary` is ignored: the code decides.
    as_text = node_action("zipped", exec={"kind": "nodejs:18", "binary": True})
    text = ok(await api.put("zipped", as_text))
    assert text["exec"] == {"kind": "nodejs:18", "binary": False}
    ok(await api.delete("zipped"))
    error(await api.get("zipped"), 404)


async def test_binary_flag_of_request_is_ignored_for_base64_code(api: Actions) -> None:
    body = {"name": "z", "code": zip_base64(), "exec": {"kind": "nodejs:18", "binary": False}}
    assert ok(await api.create(body))["exec"]["binary"] is True


async def test_init_parameters(api: Actions) -> None:
    params = [
        {"key": "ENV", "value": "x", "init": True},
        {"key": "arg", "value": "y", "init": False},
        {"key": "other", "value": "z"},
    ]
    created = ok(await api.create(node_action("env", params=params)))
    assert created["params"] == [
        {"key": "ENV", "value": "x", "init": True},
        {"key": "arg", "value": "y"},
        {"key": "other", "value": "z"},
    ]
    assert ok(await api.get("env"))["params"] == created["params"]
    updated = ok(await api.put("env", {"params": [{"key": "ENV", "value": "x"}]}))
    assert updated["params"] == [{"key": "ENV", "value": "x"}]


async def test_python_action(api: Actions) -> None:
    body = {"name": "py", "code": PYTHON_CODE, "exec": {"kind": "python:3.11"}}
    created = ok(await api.create(body))
    assert created["exec"] == {"kind": "python:3.11", "binary": False}
    assert created["code"] == PYTHON_CODE
    assert annotations(created)["exec"] == "python:3.11"
    assert ok(await api.get("py")) == created
    body = {"code": PYTHON_CODE + "# v2\n", "exec": {"kind": "python:3.11"}}
    updated = ok(await api.put("py", body))
    assert updated["code"] == PYTHON_CODE + "# v2\n"
    ok(await api.delete("py"))
    assert await api.names() == []


async def test_default_kind_resolves_to_concrete_kind(api: Actions) -> None:
    created = ok(await api.create(node_action("d", exec={"kind": "nodejs:default"})))
    assert created["exec"]["kind"] == "nodejs:22"
    assert annotations(created)["exec"] == "nodejs:22"
    assert ok(await api.get("d"))["exec"]["kind"] == "nodejs:22"


async def test_sequence(api: Actions) -> None:
    ok(await api.create(node_action("a")))
    ok(await api.create(node_action("pkg/b")))
    created = ok(await api.create(sequence("seq", f"/{NS}/a", "pkg/b", "/whisk.system/utils/echo")))
    assert "code" not in created
    assert created["exec"] == {
        "kind": "sequence",
        "binary": False,
        "components": [f"/{NS}/a", f"/{NS}/pkg/b", "/whisk.system/utils/echo"],
    }
    assert annotations(created)["exec"] == "sequence"
    assert ok(await api.get("seq")) == created
    assert created in ok(await api.list())

    updated = ok(await api.put("seq", sequence("seq", "a", "/_/a")))
    assert updated["exec"]["components"] == [f"/{NS}/a", f"/{NS}/a"]
    assert updated["version"] == "0.0.2"

    nested = ok(await api.create(sequence("outer", "seq", "pkg/b")))
    assert nested["exec"]["components"] == [f"/{NS}/seq", f"/{NS}/pkg/b"]

    ok(await api.delete("outer"))
    ok(await api.delete("seq"))
    assert sorted(await api.names()) == ["a", "pkg/b"]


async def test_action_can_become_a_sequence_and_back(api: Actions) -> None:
    ok(await api.create(node_action("a")))
    ok(await api.create(node_action("x")))
    as_sequence = ok(await api.put("x", {"exec": {"kind": "sequence", "components": ["/_/a"]}}))
    assert "code" not in as_sequence
    assert as_sequence["exec"]["kind"] == "sequence"
    assert annotations(as_sequence)["exec"] == "sequence"
    back = ok(await api.put("x", node_action("x", code="// back")))
    assert back["code"] == "// back"
    assert back["exec"] == {"kind": "nodejs:18", "binary": False}
    assert annotations(back)["exec"] == "nodejs:18"


# Round trips.

ROUND_TRIP_BODIES = {
    "plain": node_action(
        "plain",
        params=[{"key": "p", "value": [1, "two", {"three": 3.5}]}, {"key": "empty", "value": None}],
        annotations=[{"key": "web-export", "value": True}],
        limits={"timeout": 1000, "memory": "1024", "logs": 0},
    ),
    "packaged": node_action("pkg/packaged", params=[{"key": "k", "value": "v"}]),
    "init params": node_action(
        "env",
        params=[{"key": "API_URL", "value": "https://x", "init": True}, {"key": "k", "value": 1}],
    ),
    "zip": {"name": "zip", "code": zip_base64(), "exec": {"kind": "nodejs:18", "main": "handler"}},
    "python": {"name": "py", "code": PYTHON_CODE, "exec": {"kind": "python:3.11"}},
    "sequence": sequence("seq", "/whisk.system/utils/echo", "/whisk.system/utils/echo"),
}


@pytest.mark.parametrize("body", ROUND_TRIP_BODIES.values(), ids=ROUND_TRIP_BODIES.keys())
async def test_round_trip(api: Actions, body: Json) -> None:
    created = ok(await api.create(body))
    for field in ("name", "code", "params"):
        if field in body:
            assert created[field] == body[field]
    for kv in body.get("annotations", []):
        assert kv in created["annotations"]
    fetched = ok(await api.get(body["name"]))
    assert fetched == created

    put_back = ok(await api.put(body["name"], fetched))
    assert put_back == {**fetched, "version": "0.0.2"}
    assert ok(await api.get(body["name"])) == put_back


# PUT semantics.


async def test_update_replaces_supplied_fields_and_keeps_the_rest(api: Actions) -> None:
    body = node_action(
        "u",
        params=[{"key": "a", "value": 1}],
        annotations=[{"key": "x", "value": 1}],
        limits={"memory": 512},
    )
    original = ok(await api.create(body))

    step = ok(await api.put("u", {"params": [{"key": "b", "value": 2}]}))
    assert step == {**original, "version": "0.0.2", "params": [{"key": "b", "value": 2}]}

    step = ok(await api.put("u", {"limits": {"timeout": "1000"}}))
    assert step["limits"] == {"timeout": "1000", "memory": "512", "logs": "10"}
    assert step["version"] == "0.0.3"

    step = ok(await api.put("u", {"params": []}))
    assert step["params"] == []

    step = ok(await api.put("u", {}))
    assert step["version"] == "0.0.5"
    assert ok(await api.get("u")) == {
        **original,
        "version": "0.0.5",
        "params": [],
        "limits": {"timeout": "1000", "memory": "512", "logs": "10"},
    }


async def test_update_merges_annotations_new_winning(api: Actions) -> None:
    old = [{"key": "x", "value": 1}, {"key": "keep", "value": "me"}]
    ok(await api.create(node_action("m", annotations=old)))
    new = [{"key": "x", "value": 2}, {"key": "y", "value": 3}]
    updated = ok(await api.put("m", {"annotations": new}))
    assert annotations(updated) == {
        "x": 2,
        "keep": "me",
        "y": 3,
        "provide-api-key": False,
        "exec": "nodejs:18",
    }
    assert updated["annotations"][-1] == {"key": "exec", "value": "nodejs:18"}


async def test_server_annotations_cannot_be_spoofed(api: Actions) -> None:
    spoofed = [{"key": "exec", "value": "python:3.11"}, {"key": "provide-api-key", "value": True}]
    created = ok(await api.create(node_action("s", annotations=spoofed)))
    assert annotations(created) == {"exec": "nodejs:18", "provide-api-key": True}
    updated = ok(await api.put("s", {"annotations": [{"key": "exec", "value": "blackbox"}]}))
    assert annotations(updated) == {"exec": "nodejs:18", "provide-api-key": True}


async def test_update_of_kind_updates_exec_annotation(api: Actions) -> None:
    ok(await api.create(node_action("k")))
    updated = ok(await api.put("k", {"code": PYTHON_CODE, "exec": {"kind": "python:default"}}))
    assert updated["exec"] == {"kind": "python:3.11", "binary": False}
    assert annotations(updated) == {"provide-api-key": False, "exec": "python:3.11"}


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_version_namespace_and_url_in_body_are_ignored(api: Actions, method: str) -> None:
    if method == "PUT":
        ok(await api.create(node_action("v")))
    body = node_action("v", version="7.7.7", namespace="someone-else", url="http://evil/x")
    response = await (api.create(body) if method == "POST" else api.put("v", body))
    stored = ok(response)
    assert stored["version"] == ("0.0.1" if method == "POST" else "0.0.2")
    assert stored["namespace"] == NS
    assert stored["url"].endswith(f"/api/v1/namespaces/{NS}/actions/v")
    assert ok(await api.get("v")) == stored


async def test_version_bumps_on_every_put(api: Actions) -> None:
    ok(await api.create(node_action("b")))
    versions = [ok(await api.put("b", {}))["version"] for _ in range(10)]
    assert versions == [f"0.0.{n}" for n in range(2, 12)]


async def test_limits_accept_strings_and_integers(api: Actions) -> None:
    limits = {"timeout": 100, "memory": " 4096 ", "logs": "0"}
    created = ok(await api.create(node_action("l", limits=limits)))
    assert created["limits"] == {"timeout": "100", "memory": "4096", "logs": "0"}
    updated = ok(await api.put("l", {"limits": {"timeout": "10800000", "memory": 128, "logs": 10}}))
    assert updated["limits"] == {"timeout": "10800000", "memory": "128", "logs": "10"}


async def test_put_with_the_name_of_the_path_is_accepted(api: Actions) -> None:
    ok(await api.create(node_action("pkg/same")))
    assert ok(await api.put("pkg/same", {"name": "pkg/same"}))["version"] == "0.0.2"


# 400: bad requests.


async def test_missing_name(api: Actions) -> None:
    nameless = {"code": NODE_CODE, "exec": {"kind": "nodejs:18"}}
    for body in (nameless, {**nameless, "name": ""}, {**nameless, "name": None}):
        message = error(await api.create(body), 400)
        assert message == "name: a non-empty action name is required"
    assert await api.names() == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad!", "The name of the entity contains illegal characters."),
        ("space at end ", "The name of the entity contains illegal characters."),
        ("-dash-first", "The name of the entity contains illegal characters."),
        ("héllo", "The name of the entity contains illegal characters."),
        ("x" * 257, "Name segement longer than allowed: 257 > 256."),
        ("pkg/" + "x" * 257, "Name segement longer than allowed: 257 > 256."),
        ("a/b/c", "The name of the entity contains illegal characters."),
        ("/leading-slash", "The name of the entity contains illegal characters."),
        ("pkg/", "The name of the entity contains illegal characters."),
        ("default/hello", "Package name 'default' is reserved."),
    ],
)
async def test_invalid_name_on_create(api: Actions, name: str, message: str) -> None:
    assert error(await api.create(node_action(name)), 400) == message
    assert await api.names() == []


async def test_longest_name_is_accepted(api: Actions) -> None:
    name = "p" * 256 + "/" + "n" * 256
    assert ok(await api.create(node_action(name)))["name"] == name
    assert ok(await api.get(name))["name"] == name


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("a/b/c", "The name of the entity contains illegal characters."),
        ("bad!", "The name of the entity contains illegal characters."),
        ("default/x", "Package name 'default' is reserved."),
        ("x" * 300, "Name segement longer than allowed: 300 > 256."),
    ],
)
async def test_invalid_name_in_path(api: Actions, path: str, message: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = await api.send(method, f"/{path}", b"{}" if method == "PUT" else b"")
        assert error(response, 400) == message, method


async def test_unknown_kind_lists_valid_kinds(api: Actions) -> None:
    message = error(await api.create(node_action("k", exec={"kind": "cobol:85"})), 400)
    assert message == (
        "The specified runtime 'cobol:85' is not supported by this platform. Valid values are: "
        "'blackbox', 'nodejs:18', 'nodejs:20', 'nodejs:22', 'nodejs:24', 'nodejs:26', "
        "'python:3.11', 'sequence'."
    )


@pytest.mark.parametrize(
    "body",
    [
        {"name": "c", "exec": {"kind": "nodejs:18"}},
        {"name": "c", "code": None, "exec": {"kind": "nodejs:18"}},
    ],
)
async def test_missing_code(api: Actions, body: Json) -> None:
    assert error(await api.create(body), 400) == (
        "code: 'code' must be a string or attachment object defined in 'exec' for 'nodejs:18' "
        "actions"
    )


async def test_missing_code_on_update_to_another_kind(api: Actions) -> None:
    ok(await api.create(node_action("c")))
    message = error(await api.put("c", {"exec": {"kind": "python:3.11"}}), 400)
    assert message.startswith("code: ")
    assert ok(await api.get("c"))["exec"]["kind"] == "nodejs:18"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "e"}, "exec undefined"),
        ({"name": "e", "exec": None}, "exec undefined"),
        ({"name": "e", "code": NODE_CODE}, "exec.kind: 'kind' must be a string defined in 'exec'"),
        ({"name": "e", "code": NODE_CODE, "exec": {}},
         "exec.kind: 'kind' must be a string defined in 'exec'"),
        ({"name": "e", "code": NODE_CODE, "exec": {"kind": ""}},
         "exec.kind: 'kind' must be a string defined in 'exec'"),
    ],
)  # fmt: skip
async def test_missing_exec_or_kind_on_create(api: Actions, body: Json, message: str) -> None:
    assert error(await api.create(body), 400) == message
    assert await api.names() == []


LIMIT_ERRORS = [
    ("timeout", 99, "duration 99 milliseconds below allowed threshold of 100 milliseconds"),
    ("timeout", 10_800_001,
     "duration 10800001 milliseconds exceeds allowed threshold of 10800000 milliseconds"),
    ("timeout", 0, "duration 0 milliseconds below allowed threshold of 100 milliseconds"),
    ("memory", 127, "memory size 127 MB below allowed threshold of 128 MB"),
    ("memory", "4097", "memory size 4097 MB exceeds allowed threshold of 4096 MB"),
    ("logs", -1, "log size -1 MB below allowed threshold of 0 MB"),
    ("logs", "11", "log size 11 MB exceeds allowed threshold of 10 MB"),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value", "detail"), LIMIT_ERRORS)
async def test_limits_out_of_range_on_create(
    api: Actions, field: str, value: Any, detail: str
) -> None:
    message = error(await api.create(node_action("l", limits={field: value})), 400)
    assert message.startswith(f"limits.{field}")
    assert message == f"limits.{field}: {detail}"
    assert await api.names() == []


@pytest.mark.parametrize(("field", "value", "detail"), LIMIT_ERRORS)
async def test_limits_out_of_range_on_update_change_nothing(
    api: Actions, field: str, value: Any, detail: str
) -> None:
    before = ok(await api.create(node_action("l")))
    body = {"code": "// new", "exec": {"kind": "python:3.11"}, "limits": {field: value}}
    message = error(await api.put("l", body), 400)
    assert message == f"limits.{field}: {detail}"
    assert ok(await api.get("l")) == before


@pytest.mark.parametrize(
    ("field", "what"), [("timeout", "time"), ("memory", "memory"), ("logs", "log")]
)
async def test_non_integer_limits(api: Actions, field: str, what: str) -> None:
    for value in ["abc", "", "12abc", "1.5", 1.5, 256.0, True, False, [], {}]:
        message = error(await api.create(node_action("l", limits={field: value})), 400)
        assert message == f"limits.{field}: {what} limit must be whole number", value


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (node_action("t", params={"a": 1}), "params"),
        (node_action("t", params="a=1"), "params"),
        (node_action("t", params=[1]), "params.0"),
        (node_action("t", params=[{"value": 1}]), "params.0.key"),
        (node_action("t", params=[{"key": 1, "value": 1}]), "params.0.key"),
        (node_action("t", params=[{"key": "", "value": 1}]), "params.0.key"),
        (node_action("t", annotations={"a": 1}), "annotations"),
        (node_action("t", annotations=[{"key": None}]), "annotations.0.key"),
        (node_action("t", code=42), "code"),
        (node_action("t", code=["line"]), "code"),
        (node_action("t", exec="nodejs:18"), "exec"),
        (node_action("t", exec=["nodejs:18"]), "exec"),
        (node_action("t", exec={"kind": 18}), "exec.kind"),
        (node_action("t", exec={"kind": "nodejs:18", "binary": "yes"}), "exec.binary"),
        (node_action("t", exec={"kind": "nodejs:18", "main": 1}), "exec.main"),
        (node_action("t", exec={"kind": "sequence", "components": "a"}), "exec.components"),
        (node_action("t", exec={"kind": "sequence", "components": [1]}), "exec.components.0"),
        (node_action("t", limits="256"), "limits"),
        ({**node_action("t"), "name": 7}, "name"),
        ({**node_action("t"), "version": 1}, "version"),
    ],
)
async def test_wrong_types(api: Actions, body: Json, field: str) -> None:
    message = error(await api.create(body), 400)
    assert message.startswith(f"{field}: "), message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (node_action("t", parameters=[]), "parameters"),
        (node_action("t", publish=True), "publish"),
        (node_action("t", exec={"kind": "nodejs:18", "image": "x/y"}), "exec.image"),
        (node_action("t", limits={"concurrency": 1}), "limits.concurrency"),
        (
            node_action("t", params=[{"key": "a", "value": 1, "encryption": "x"}]),
            "params.0.encryption",
        ),
    ],
)
async def test_unknown_fields(api: Actions, body: Json, field: str) -> None:
    message = error(await api.create(body), 400)
    assert message == f"{field}: Extra inputs are not permitted"


async def test_unknown_field_on_update(api: Actions) -> None:
    ok(await api.create(node_action("f")))
    assert error(await api.put("f", {"publish": True}), 400).startswith("publish: ")


@pytest.mark.parametrize(
    "content", [b"{", b'{"name": "j",}', b"{'name': 'j'}", b"name=j", b"\xff\xfe{}"]
)
async def test_malformed_json(api: Actions, content: bytes) -> None:
    ok(await api.create(node_action("j")))
    for method, path in (("POST", ""), ("PUT", "/j")):
        response = await api.send(method, path, content)
        assert error(response, 400).startswith("The request content was malformed"), method
    assert await api.names() == ["j"]


@pytest.mark.parametrize("content", [b"[]", b'[{"name": "j"}]', b"null", b'"j"', b"1", b""])
async def test_body_must_be_a_json_object(api: Actions, content: bytes) -> None:
    ok(await api.create(node_action("j")))
    for method, path in (("POST", ""), ("PUT", "/j")):
        response = await api.send(method, path, content)
        assert error(response, 400) == "The request body must be a JSON object.", method
    assert ok(await api.get("j"))["version"] == "0.0.1"


@pytest.mark.parametrize("body_name", ["other", "pkg/mine", "mine/pkg", ""])
async def test_put_name_must_match_path(api: Actions, body_name: str) -> None:
    ok(await api.create(node_action("mine")))
    message = error(await api.put("mine", node_action(body_name)), 400)
    assert message == f"name: '{body_name}' does not match the name in the request path"
    assert ok(await api.get("mine"))["version"] == "0.0.1"


@pytest.mark.parametrize("field", ["params", "annotations"])
async def test_a_key_given_twice_keeps_its_last_value(api: Actions, field: str) -> None:
    """As OpenWhisk, which the seed API writes through, keeps it (no 400)."""
    pairs = [{"key": "a", "value": 1}, {"key": "b", "value": 2}, {"key": "a", "value": 3}]
    kept = [{"key": "a", "value": 3}, {"key": "b", "value": 2}]
    created = ok(await api.create(node_action("d", **{field: pairs})))
    assert created[field][:2] == kept
    updated = ok(await api.put("d", {field: [*pairs, {"key": "b", "value": 4}]}))
    assert updated[field][:2] == [{"key": "a", "value": 3}, {"key": "b", "value": 4}]


# Sequence validation.


@pytest.mark.parametrize("components", [None, []])
async def test_sequence_without_components(api: Actions, components: list[str] | None) -> None:
    body = {"name": "s", "exec": {"kind": "sequence", "components": components}}
    message = error(await api.create(body), 400)
    assert message == "exec.components: No component specified for the sequence."


@pytest.mark.parametrize(
    "component", [f"/{NS}/missing", "missing", "pkg/missing", "/_/missing", f"{NS}/pkg/missing"]
)
async def test_sequence_with_missing_component(api: Actions, component: str) -> None:
    ok(await api.create(node_action("a")))
    message = error(await api.create(sequence("s", "a", component)), 400)
    assert message == "exec.components: Sequence component does not exist."
    assert await api.names() == ["a"]


@pytest.mark.parametrize("component", ["//a", "/a", "a//b", "/a/b/c/d", "bad!"])
async def test_sequence_with_invalid_component(api: Actions, component: str) -> None:
    message = error(await api.create(sequence("s", component)), 400)
    assert f"'{component}' is not a valid action path" in message


async def test_sequence_self_reference(api: Actions) -> None:
    ok(await api.create(node_action("a")))
    message = error(await api.create(sequence("s", "a", f"/{NS}/s")), 400)
    assert message == "exec.components: Sequence may not refer to itself."

    ok(await api.create(sequence("s", "a")))
    message = error(await api.put("s", sequence("s", "a", "s")), 400)
    assert message == "exec.components: Sequence may not refer to itself."
    assert ok(await api.get("s"))["exec"]["components"] == [f"/{NS}/a"]


async def test_sequence_indirect_cycle(api: Actions) -> None:
    ok(await api.create(node_action("a")))
    ok(await api.create(sequence("first", "a")))
    ok(await api.create(sequence("second", "first")))
    message = error(await api.put("first", sequence("first", "second")), 400)
    assert message == "exec.components: Sequence may not refer to itself."


async def test_sequence_length_limit(api: Actions) -> None:
    ok(await api.create(node_action("a")))
    ok(await api.create(sequence("fifty", *["a"] * 50)))
    message = error(await api.create(sequence("too-long", *["a"] * 51)), 400)
    assert message == "exec.components: Too many actions in the sequence."


async def test_sequence_length_counts_atomic_actions_of_nested_sequences(api: Actions) -> None:
    ok(await api.create(node_action("a")))
    ok(await api.create(sequence("half", *["a"] * 25)))
    ok(await api.create(sequence("full", "half", "half")))
    message = error(await api.create(sequence("over", "half", "half", "a")), 400)
    assert message == "exec.components: Too many actions in the sequence."
    message = error(await api.put("full", sequence("full", "half", "half", "a")), 400)
    assert message == "exec.components: Too many actions in the sequence."


async def test_sequence_refuses_code(api: Actions) -> None:
    body = {**sequence("s", "/whisk.system/utils/echo"), "code": NODE_CODE}
    assert error(await api.create(body), 400).startswith("code: ")


async def test_components_only_for_sequences(api: Actions) -> None:
    body = node_action("c", exec={"kind": "nodejs:18", "components": ["a"]})
    assert error(await api.create(body), 400).startswith("exec.components: ")


async def test_sequence_component_of_another_namespace_must_be_public(
    api: Actions,
    client: httpx.AsyncClient,
    admin_headers: Headers,
    create_namespace: Callable[[str, str], Awaitable[Json]],
) -> None:
    await create_namespace("other", "int1")
    other = Actions(client, admin_headers, "/runtime/namespaces/other/int1/actions")
    ok(await other.create(node_action("private/x")))
    ok(await other.create(node_action("y")))
    for component in ("/other-int1/private/x", "/other-int1/y", "/other-int1/private/nope"):
        error(await api.create(sequence("s", component)), 403)
    assert await api.names() == []


# 404 and 409.


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("name", ["missing", "pkg/missing"])
async def test_missing_action(api: Actions, method: str, name: str) -> None:
    ok(await api.create(node_action("present")))
    response = await api.send(method, f"/{name}", b"{}" if method == "PUT" else b"")
    assert error(response, 404) == f"The action '{name}' does not exist in namespace '{NS}'."


async def test_delete_twice(api: Actions) -> None:
    ok(await api.create(node_action("once")))
    ok(await api.delete("once"))
    error(await api.delete("once"), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", ""), ("POST", ""), ("GET", "/a"), ("PUT", "/a"), ("DELETE", "/a")],
)
async def test_namespace_not_created_yet(api: Actions, method: str, path: str) -> None:
    ok(await api.create(node_action("a")))  # in int1, not in int9
    elsewhere = Actions(api.client, api.headers, "/runtime/namespaces/acme/int9/actions")
    body = json.dumps(node_action("a")).encode() if method in ("POST", "PUT") else b""
    response = await elsewhere.send(method, path, body)
    assert error(response, 404) == (
        "No namespace exists for organization 'acme' and integration 'int9'."
    )


async def test_namespaces_are_isolated(
    api: Actions, create_namespace: Callable[[str, str], Awaitable[Json]]
) -> None:
    await create_namespace("acme", "int2")
    sibling = Actions(api.client, api.headers, "/runtime/namespaces/acme/int2/actions")
    ok(await api.create(node_action("a")))
    error(await sibling.get("a"), 404)
    assert await sibling.names() == []
    created = ok(await sibling.create(node_action("a", code="// sibling")))
    assert created["namespace"] == "acme-int2"
    assert ok(await api.get("a"))["code"] == NODE_CODE


async def test_create_existing_name_conflicts(api: Actions) -> None:
    first = ok(await api.create(node_action("dup")))
    message = error(await api.create(node_action("dup", code="// other")), 409)
    assert message == f"The action 'dup' already exists in namespace '{NS}'."
    assert ok(await api.get("dup")) == first
    ok(await api.create(node_action("pkg/dup")))
    error(await api.create(node_action("pkg/dup")), 409)


async def test_credentials_are_required(
    api: Actions, issue: Callable[..., Awaitable[Headers]]
) -> None:
    ok(await api.create(node_action("a")))
    anonymous = Actions(api.client, {}, api.base)
    error(await anonymous.get("a"), 401)
    error(await anonymous.create(node_action("b")), 401)
    stranger = Actions(api.client, await issue(org="someone-else"), api.base)
    error(await stranger.get("a"), 403)
    error(await stranger.delete("a"), 403)
    assert await api.names() == ["a"]


# 413: sizes.


async def test_parameters_too_large(api: Actions) -> None:
    value = "x" * PARAMS_LIMIT
    size = len("big") + len(value) + 2
    message = error(
        await api.create(node_action("p", params=[{"key": "big", "value": value}])), 413
    )
    assert message == f"parameters larger than allowed: {size} > 1048576 bytes."
    assert await api.names() == []

    before = ok(await api.create(node_action("p")))
    response = await api.put("p", {"params": [{"key": "big", "value": value}]})
    assert error(response, 413) == message
    assert ok(await api.get("p")) == before


async def test_parameters_at_the_limit_are_accepted(api: Actions) -> None:
    value = "x" * (PARAMS_LIMIT - len("k") - 2)
    created = ok(await api.create(node_action("p", params=[{"key": "k", "value": value}])))
    assert created["params"] == [{"key": "k", "value": value}]


async def test_parameter_size_sums_every_pair(api: Actions) -> None:
    params = [{"key": f"k{n}", "value": "x" * 200_000} for n in range(6)]
    size = sum(len(p["key"]) + 200_002 for p in params)
    message = error(await api.create(node_action("p", params=params)), 413)
    assert message == f"parameters larger than allowed: {size} > 1048576 bytes."


async def test_annotations_too_large(api: Actions) -> None:
    value = {"text": "x" * PARAMS_LIMIT}
    size = len("big") + len(json.dumps(value, separators=(",", ":")))
    body = node_action("a", annotations=[{"key": "big", "value": value}])
    message = error(await api.create(body), 413)
    assert message == f"annotations larger than allowed: {size} > 1048576 bytes."
    assert await api.names() == []


async def test_code_too_large_stores_nothing(api: Actions, settings: Settings) -> None:
    ok(await api.create(node_action("small")))
    listed = ok(await api.list())
    blobs = await blob_rows(settings)
    code = "/" * (CODE_LIMIT + 1)

    message = error(await api.create(node_action("huge", code=code)), 413)
    assert message == f"exec larger than allowed: {CODE_LIMIT + 1} > {CODE_LIMIT} bytes."
    response = await api.put("small", node_action("small", code=code))
    assert error(response, 413) == message

    assert ok(await api.list()) == listed
    assert ok(await api.get("small"))["code"] == NODE_CODE
    assert await blob_rows(settings) == blobs
    assert await blob_rows(settings, code) == 0


# 415: content type.


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
async def test_non_json_content_type(api: Actions, content_type: str) -> None:
    before = ok(await api.create(node_action("c")))
    for method, path in (("POST", ""), ("PUT", "/c")):
        body = json.dumps(node_action("new" if method == "POST" else "c", code="// x")).encode()
        response = await api.send(method, path, body, content_type)
        assert error(response, 415) == (
            "The request's Content-Type is not supported: send application/json."
        ), method
    assert ok(await api.list()) == [{k: v for k, v in before.items() if k != "code"}]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "APPLICATION/JSON"])
async def test_json_content_type_variants(api: Actions, content_type: str) -> None:
    body = json.dumps(node_action("c")).encode()
    ok(await api.send("POST", "", body, content_type))


# No request yields a 500.

ATOMIC = b'"name": "g", "code": "x", "exec": {"kind": "nodejs:18"}'
GARBAGE_BODIES = {
    "lone surrogate in code": b'{"name": "g", "code": "\\ud800", "exec": {"kind": "nodejs:18"}}',
    "NUL as code": b'{"name": "g", "code": "\\u0000", "exec": {"kind": "nodejs:18"}}',
    "NUL in name": b'{"name": "g\\u0000", "code": "x", "exec": {"kind": "nodejs:18"}}',
    "NUL in kind": b'{"name": "g", "code": "x", "exec": {"kind": "nodejs:18\\u0000"}}',
    "NaN parameter": b"{" + ATOMIC + b', "params": [{"key": "a", "value": NaN}]}',
    "-Infinity parameter": b"{" + ATOMIC + b', "params": [{"key": "a", "value": -Infinity}]}',
    "lone surrogates in parameter": (
        b"{" + ATOMIC + b', "params": [{"key": "\\ud800", "value": "\\udfff"}]}'
    ),
    "NUL in annotation": (
        b"{" + ATOMIC + b', "annotations": [{"key": "a\\u0000", "value": "\\u0000"}]}'
    ),
    "float overflow in limits": b"{" + ATOMIC + b', "limits": {"memory": 1e400}}',
    "5000-digit limit": b"{" + ATOMIC + b', "limits": {"memory": ' + b"9" * 5000 + b"}}",
    "huge limit string": b"{" + ATOMIC + b', "limits": {"timeout": "99999999999999999999999"}}',
    "huge negative limit": b"{" + ATOMIC + b', "limits": {"timeout": -99999999999999999999999}}',
    "deeply nested parameters": (
        b'{"name": "g", "params": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    ),
    "component in unknown namespace": (
        b'{"name": "g", "exec": {"kind": "sequence", "components": ["/nowhere/pkg/x"]}}'
    ),
    "component of many segments": (
        b'{"name": "g", "exec": {"kind": "sequence", "components": ["' + b"a/" * 1000 + b'a"]}}'
    ),
    "empty component": b'{"name": "g", "exec": {"kind": "sequence", "components": [""]}}',
    "self via underscore": (
        b'{"name": "g", "exec": {"kind": "sequence", "components": ["/_/g"]}, "code": null}'
    ),
    "blackbox": b'{"name": "g", "exec": {"kind": "blackbox"}, "code": "x"}',
    "kind colon": b'{"name": "g", "exec": {"kind": ":"}, "code": "x"}',
    "kind default twice": b'{"name": "g", "exec": {"kind": "nodejs:default:default"}, "code": "x"}',
    "empty main": b'{"name": "g", "exec": {"kind": "nodejs:18", "main": ""}, "code": "x"}',
    "name twice": b"{" + ATOMIC + b', "name": "h"}',
    "bad version": b"{" + ATOMIC + b', "version": "not-a-version"}',
    "null fields": b"{" + ATOMIC + b', "params": null, "annotations": null, "limits": null}',
    "null limit": b"{" + ATOMIC + b', "limits": {"memory": null}}',
    "byte order mark": b"\xef\xbb\xbf{}",
    "NUL byte": b"\x00",
    "unclosed braces": b"{" * 10_000,
    "long name": b'{"name": "' + b"g" * 100_000 + b'"}',
}


@pytest.mark.parametrize("content", GARBAGE_BODIES.values(), ids=GARBAGE_BODIES.keys())
async def test_garbage_bodies_never_yield_500(api: Actions, content: bytes) -> None:
    """POST the body, then PUT it onto an existing action `g`; neither may fail with a 500,
    and whatever was stored stays readable."""
    for method, path in (("POST", ""), ("PUT", "/g")):
        if method == "PUT" and await api.names() != ["g"]:
            ok(await api.create(node_action("g")))
        response = await api.send(method, path, content)
        assert response.status_code < 500, (method, response.text)
        if response.status_code >= 400:
            error(response, response.status_code)
        listed = ok(await api.list())
        for item in listed:
            ok(await api.get(item["name"]))


# Code storage.


async def test_identical_code_is_stored_once(api: Actions, settings: Settings) -> None:
    code = "function main() { return {shared: true} }"
    ok(await api.create(node_action("one", code=code)))
    ok(await api.create(node_action("pkg/two", code=code)))
    assert await blob_rows(settings, code) == 1

    ok(await api.delete("one"))
    assert await blob_rows(settings, code) == 1
    assert ok(await api.get("pkg/two"))["code"] == code

    ok(await api.delete("pkg/two"))
    assert await blob_rows(settings, code) == 0


async def test_updating_code_collects_the_old_blob(api: Actions, settings: Settings) -> None:
    old, new = "// old code", "// new code"
    ok(await api.create(node_action("u", code=old)))
    assert await blob_rows(settings, old) == 1
    ok(await api.put("u", node_action("u", code=new)))
    assert await blob_rows(settings, old) == 0
    assert await blob_rows(settings, new) == 1
    assert ok(await api.get("u"))["code"] == new


async def test_updating_code_keeps_a_blob_still_in_use(api: Actions, settings: Settings) -> None:
    shared = "// shared"
    ok(await api.create(node_action("a", code=shared)))
    ok(await api.create(node_action("b", code=shared)))
    ok(await api.put("a", node_action("a", code="// mine")))
    assert await blob_rows(settings, shared) == 1
    assert ok(await api.get("b"))["code"] == shared


async def test_updating_without_code_keeps_the_blob(api: Actions, settings: Settings) -> None:
    ok(await api.create(node_action("k", code="// kept")))
    ok(await api.put("k", {"params": [{"key": "a", "value": 1}]}))
    assert await blob_rows(settings, "// kept") == 1
    assert ok(await api.get("k"))["code"] == "// kept"


async def test_turning_an_action_into_a_sequence_collects_its_code(
    api: Actions, settings: Settings
) -> None:
    ok(await api.create(node_action("x", code="// soon gone")))
    ok(await api.put("x", sequence("x", "/whisk.system/utils/echo")))
    assert await blob_rows(settings, "// soon gone") == 0


# Listing.


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> itertools.count[int]:
    """Action writes stamped 1000, 1001, ... so ordering never depends on timing."""
    ticks = itertools.count(1_000)
    monkeypatch.setattr("controller.services.actions.now_ms", lambda: next(ticks))
    return ticks


async def test_list_is_most_recently_updated_first(api: Actions, clock: Any) -> None:
    for name in ("a", "pkg/b", "c"):
        ok(await api.create(node_action(name)))
    assert await api.names() == ["c", "pkg/b", "a"]
    ok(await api.put("a", {}))
    assert await api.names() == ["a", "c", "pkg/b"]
    ok(await api.put("pkg/b", {"code": "// b2", "exec": {"kind": "nodejs:18"}}))
    assert await api.names() == ["pkg/b", "a", "c"]


async def test_list_items_are_get_without_code(api: Actions) -> None:
    ok(await api.create(node_action("a", params=[{"key": "k", "value": 1}])))
    ok(await api.create({"name": "z", "code": zip_base64(), "exec": {"kind": "nodejs:18"}}))
    ok(await api.create(sequence("s", "a")))
    listed = ok(await api.list())
    assert len(listed) == 3
    for item in listed:
        assert "code" not in item
        full = ok(await api.get(item["name"]))
        assert item == {k: v for k, v in full.items() if k != "code"}


LIST_PAGES: list[tuple[Json, list[str]]] = [
    ({}, ["e", "d", "c", "b", "a"]),
    ({"limit": 2}, ["e", "d"]),
    ({"limit": 2, "skip": 2}, ["c", "b"]),
    ({"skip": 4}, ["a"]),
    ({"skip": 5}, []),
    ({"skip": 100}, []),
    ({"limit": 100}, ["e", "d", "c", "b", "a"]),
    ({"limit": 0}, ["e", "d", "c", "b", "a"]),
    ({"skip": 0, "limit": 1}, ["e"]),
]


async def test_list_paging(api: Actions, clock: Any) -> None:
    for name in "abcde":
        ok(await api.create(node_action(name)))
    for query, names in LIST_PAGES:
        assert [item["name"] for item in ok(await api.list(**query))] == names, query


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"limit": "abc"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": 2**64}, "limit"),
        ({"skip": "x"}, "skip"),
        ({"skip": -1}, "skip"),
        ({"skip": 2**64}, "skip"),
    ],
)
async def test_list_paging_errors(api: Actions, query: Json, parameter: str) -> None:
    message = error(await api.list(**query), 400)
    assert message.startswith(f"The query parameter '{parameter}' must ")


async def test_list_of_a_new_namespace_is_empty(api: Actions) -> None:
    # The system catalog's actions live in whisk.system, not in the caller's namespace.
    assert ok(await api.list()) == []
