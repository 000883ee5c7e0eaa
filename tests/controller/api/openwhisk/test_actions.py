"""`/api/v1/namespaces/{ns}/actions`: create, update, read, list and delete actions, in and out
of packages, and who may reach them (shared/spec/openwhisk.md §2.2, §2.3, §2.6, §3.2)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from controller.limits import MB
from controller.settings import Settings
from tests.controller.api.openwhisk.support import (
    HELLO,
    Actions,
    Caller,
    annotations,
    assert_error,
    node_action,
    not_authorized,
)

PutPackage = Callable[..., Awaitable[None]]
NOT_FOUND = "The requested resource does not exist."
# A nodejs action: Adobe's default of 200 activations at once per container.
DEFAULT_LIMITS = {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 200}
SUMMARY_KEYS = {
    "namespace",
    "name",
    "version",
    "publish",
    "annotations",
    "limits",
    "exec",
    "updated",
}
CATALOG = {"echo", "cat", "sort", "head", "split", "date"}


@pytest.fixture
def api(client: httpx.AsyncClient, acme: Caller) -> Actions:
    return Actions(client, acme)


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_create_returns_the_stored_entity(api: Actions) -> None:
    before = now_ms()
    parameters = [{"key": "name", "value": "you"}, {"key": "deep", "value": {"a": [1, None]}}]
    response = await api.put("hello", node_action(parameters=parameters))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "namespace": "acme-int1",
        "name": "hello",
        "version": "0.0.1",
        "publish": False,
        "exec": {"kind": "nodejs:22", "code": HELLO, "binary": False},
        "parameters": parameters,
        "limits": DEFAULT_LIMITS,
        "annotations": body["annotations"],
        "updated": body["updated"],
    }
    assert annotations(body) == {"exec": "nodejs:22", "provide-api-key": False}
    assert before <= body["updated"] <= now_ms()
    fetched = await api.get("hello")
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == body


async def test_create_keeps_client_annotations_and_a_given_provide_api_key(api: Actions) -> None:
    given = [
        {"key": "provide-api-key", "value": True},
        {"key": "exec", "value": "python:3.11"},  # the server's own annotation wins
        {"key": "web-export", "value": True},
    ]
    body = await api.create("keyed", node_action(annotations=given, publish=True))
    assert annotations(body) == {"provide-api-key": True, "exec": "nodejs:22", "web-export": True}
    assert body["publish"] is True


# Code, and whether OpenWhisk takes it for a base64 zip (the client's `binary` is ignored).
BINARY_INFERENCE = [
    (HELLO, False),
    ("UEsDBBQAAAAIAA==", True),
    ("  UEsDBBQAAAAI  ", True),  # surrounding whitespace is trimmed
    ("UEsDBBQAAAAIA", False),  # not a multiple of 4
]


async def test_binary_is_inferred_from_the_code(api: Actions) -> None:
    for i, (code, binary) in enumerate(BINARY_INFERENCE):
        body = {"exec": {"kind": "nodejs:default", "code": code, "binary": not binary}}
        created = await api.create(f"a{i}", body)
        assert created["exec"]["binary"] is binary, code
        listed = (await api.get()).json()
        assert listed[0]["exec"] == {"binary": binary}, code


async def test_a_key_given_twice_keeps_its_last_value(api: Actions) -> None:
    """As OpenWhisk, which reads parameters and annotations into a map (no 400)."""
    body = node_action(
        parameters=[{"key": "a", "value": 1}, {"key": "b", "value": 2}, {"key": "a", "value": 3}],
        annotations=[{"key": "x", "value": "first"}, {"key": "x", "value": "last"}],
    )
    created = await api.create("twice", body)
    assert created["parameters"] == [{"key": "a", "value": 3}, {"key": "b", "value": 2}]
    assert annotations(created)["x"] == "last"
    assert [a["key"] for a in created["annotations"]].count("x") == 1


async def test_put_on_an_existing_action_without_overwrite_is_409(api: Actions) -> None:
    original = await api.create("hello")
    changed = node_action("function main() { return {} }")
    for query in ({}, {"overwrite": "false"}, {"overwrite": "no"}, {"overwrite": "0"}):
        response = await api.put("hello", changed, **query)
        assert_error(response, 409, "resource already exists")
    assert (await api.get("hello")).json() == original


async def test_overwrite_merges_annotations_and_keeps_absent_fields(api: Actions) -> None:
    await api.create(
        "hello",
        node_action(
            annotations=[{"key": "a", "value": 1}, {"key": "b", "value": 2}],
            parameters=[{"key": "p", "value": 1}],
            limits={"memory": 512},
            publish=True,
        ),
    )
    update = {
        "annotations": [{"key": "b", "value": 3}, {"key": "c", "value": 4}],
        "delAnnotations": ["a"],
    }
    response = await api.put("hello", update, overwrite="true")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == "0.0.2"
    assert annotations(body) == {"b": 3, "c": 4, "provide-api-key": False, "exec": "nodejs:22"}
    assert body["parameters"] == [{"key": "p", "value": 1}]
    assert body["limits"] == {**DEFAULT_LIMITS, "memory": 512}
    assert body["publish"] is True
    assert body["exec"] == {"kind": "nodejs:22", "code": HELLO, "binary": False}
    assert (await api.get("hello")).json() == body


async def test_overwrite_replaces_parameters_limits_and_exec_when_given(api: Actions) -> None:
    await api.create(
        "hello", node_action(parameters=[{"key": "p", "value": 1}], limits={"memory": 512})
    )
    body = (
        await api.put(
            "hello",
            {"parameters": [{"key": "q", "value": 2}], "limits": {"timeout": 1000}},
            overwrite="true",
        )
    ).json()
    assert body["version"] == "0.0.2"
    assert body["parameters"] == [{"key": "q", "value": 2}]
    assert body["limits"] == {**DEFAULT_LIMITS, "timeout": 1000, "memory": 512}
    python = {"exec": {"kind": "python:3.11", "code": "def main(args):\n    return args\n"}}
    body = (await api.put("hello", python, overwrite="true")).json()
    assert body["version"] == "0.0.3"
    assert body["exec"]["kind"] == "python:3.11"
    assert annotations(body)["exec"] == "python:3.11"
    assert body["parameters"] == [{"key": "q", "value": 2}]
    body = (await api.put("hello", {"parameters": []}, overwrite="true")).json()
    assert body["parameters"] == []


async def test_a_supplied_version_wins_and_later_updates_bump_it(api: Actions) -> None:
    assert (await api.create("v", node_action(version="1.2.3")))["version"] == "1.2.3"
    assert (await api.put("v", {}, overwrite="true")).json()["version"] == "1.2.4"
    updated = await api.put("v", {"version": "2.0.0"}, overwrite="true")
    assert updated.json()["version"] == "2.0.0"


async def test_overwrite_accepts_booleans_as_openwhisk_does(api: Actions) -> None:
    await api.create("hello")
    for patch, spelling in enumerate(["true", "yes", "on", "1", "True"], start=2):
        response = await api.put("hello", {}, overwrite=spelling)
        assert response.status_code == 200, (spelling, response.text)
        assert response.json()["version"] == f"0.0.{patch}"
    assert_error(await api.put("hello", {}, overwrite="maybe"), 400)


async def test_overwrite_of_a_missing_action_creates_it(api: Actions) -> None:
    response = await api.put("fresh", node_action(), overwrite="true")
    assert response.status_code == 200, response.text
    assert response.json()["version"] == "0.0.1"
    assert annotations(response.json())["provide-api-key"] is False


async def test_name_and_namespace_of_the_body_are_ignored(api: Actions, globex: Caller) -> None:
    body = node_action(name="fake", namespace="globex-int2", unknownField={"x": 1}, updated=1)
    created = await api.create("real", body)
    assert (created["namespace"], created["name"]) == ("acme-int1", "real")
    assert created["updated"] > 1
    assert await api.names() == ["real"]
    assert_error(await api.get("fake"), 404, NOT_FOUND)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({}, "exec undefined", id="no-exec"),
        pytest.param({"parameters": []}, "exec undefined", id="no-exec-with-fields"),
        pytest.param(
            {"exec": {"code": HELLO}}, "'kind' must be a string defined in 'exec'", id="no-kind"
        ),
        pytest.param(
            {"exec": {"kind": "cobol:1", "code": HELLO}},
            "The specified runtime 'cobol:1' is not supported by this platform. Valid values are:",
            id="unknown-kind",
        ),
        pytest.param(
            {"exec": {"kind": "nodejs:default"}},
            "'code' must be a string or attachment object defined in 'exec' for 'nodejs:22' "
            "actions",
            id="no-code",
        ),
        pytest.param(
            {"exec": {"kind": "nodejs:18", "code": HELLO, "main": 5}},
            "if defined, 'main' be a string in 'exec' for 'nodejs:18' actions",
            id="main-not-a-string",
        ),
    ],
)
async def test_invalid_action_bodies_are_400(
    api: Actions, body: dict[str, Any], expected: str
) -> None:
    error = assert_error(await api.put("bad", body), 400)
    assert expected in error
    assert_error(await api.get("bad"), 404, NOT_FOUND)


async def test_unknown_kind_lists_the_valid_kinds(api: Actions) -> None:
    error = assert_error(await api.put("bad", {"exec": {"kind": "cobol:1", "code": HELLO}}), 400)
    assert "'nodejs:18'" in error
    assert "'python:3.11'" in error


@pytest.mark.parametrize(
    ("raw", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'"text"', "application/json", 400),
        (b'{"exec": {"kind": "nodejs:default", "code": "x"}}', "text/plain", 415),
    ],
)
async def test_bodies_that_are_not_a_json_object_are_refused(
    client: httpx.AsyncClient, acme: Caller, raw: bytes, content_type: str, status: int
) -> None:
    response = await client.put(
        "/api/v1/namespaces/_/actions/bad",
        content=raw,
        headers={**acme.headers, "Content-Type": content_type},
    )
    error = assert_error(response, status)
    if status == 400:
        assert error.startswith("The request content was malformed:\n")


# Limits outside the system ranges; `{…}` are fields of the settings' limits.
LIMIT_ERRORS = [
    ({"memory": 8192}, "memory size 8192 MB exceeds allowed threshold of {memory_max} MB"),
    ({"memory": 64}, "memory size 64 MB below allowed threshold of {memory_min} MB"),
    ({"timeout": 50}, "duration 50 milliseconds below allowed threshold of {timeout_min} "
     "milliseconds"),
    ({"timeout": 99_000_000}, "duration 99000000 milliseconds exceeds allowed threshold of "
     "{timeout_max} milliseconds"),
    ({"logs": 20}, "log size 20 MB exceeds allowed threshold of {logs_max} MB"),
    ({"concurrency": 501}, "concurrency 501 exceeds allowed threshold of {concurrency_max}"),
    ({"concurrency": 0}, "concurrency 0 below allowed threshold of {concurrency_min}"),
    ({"memory": 1.5}, "memory limit must be whole number"),
    ({"timeout": "soon"}, "time limit must be whole number"),
]  # fmt: skip


@pytest.mark.parametrize(("limits", "template"), LIMIT_ERRORS)
async def test_limits_out_of_range_are_400_in_openwhisks_words(
    api: Actions, settings: Settings, limits: dict[str, Any], template: str
) -> None:
    await api.create("existing")
    expected = template.format(**settings.limits.model_dump())
    for name, query in (("new", {}), ("existing", {"overwrite": "true"})):
        error = assert_error(await api.put(name, node_action(limits=limits), **query), 400)
        assert expected in error, (name, error)
    assert (await api.get("existing")).json()["limits"] == DEFAULT_LIMITS


async def test_limits_at_the_bounds_are_accepted(api: Actions, settings: Settings) -> None:
    lim = settings.limits
    low = {"timeout": lim.timeout_min, "memory": lim.memory_min, "logs": lim.logs_min}
    high = {"timeout": lim.timeout_max, "memory": lim.memory_max, "logs": lim.logs_max}
    low["concurrency"], high["concurrency"] = lim.concurrency_min, lim.concurrency_max
    assert (await api.create("low", node_action(limits=low)))["limits"] == low
    assert (await api.create("high", node_action(limits=high)))["limits"] == high


async def test_parameters_over_the_size_limit_are_413(api: Actions) -> None:
    parameters = [{"key": "big", "value": "x" * MB}]
    size = len("big") + MB + 2  # key bytes + compact JSON of the value
    response = await api.put("big", node_action(parameters=parameters))
    assert_error(response, 413, f"parameters larger than allowed: {size} > {MB} bytes.")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad!name", "The name of the entity contains illegal characters."),
        (" lead", "The name of the entity contains illegal characters."),
        ("x" * 257, "Name segement longer than allowed: 257 > 256."),
        ("tools/" + "y" * 257, "Name segement longer than allowed: 257 > 256."),
        ("a/b/c", None),
    ],
)
async def test_invalid_action_names_are_400(api: Actions, name: str, message: str | None) -> None:
    assert_error(await api.put(name, node_action()), 400, message)
    assert_error(await api.get(name), 400, message)


async def test_get_can_leave_out_the_code(api: Actions) -> None:
    await api.create("hello")
    for query, has_code in [({}, True), ({"code": "true"}, True), ({"code": "false"}, False)]:
        body = (await api.get("hello", **query)).json()
        expected = {"kind": "nodejs:22", "binary": False} | ({"code": HELLO} if has_code else {})
        assert body["exec"] == expected, query


async def test_list_summarises_actions_newest_first(
    api: Actions, put_package: PutPackage, acme: Caller
) -> None:
    await put_package(acme, "tools")
    for name in ("a", "b", "tools/c"):
        await api.create(name)
    listed = (await api.get()).json()
    assert [a["name"] for a in listed] == ["c", "b", "a"]
    assert [a["namespace"] for a in listed] == ["acme-int1/tools", "acme-int1", "acme-int1"]
    for summary in listed:
        assert set(summary) == SUMMARY_KEYS, summary
        assert summary["exec"] == {"binary": False}
        assert summary["limits"] == DEFAULT_LIMITS
        assert annotations(summary)["exec"] == "nodejs:22"
    assert (await api.get(count="true")).json() == {"actions": 3}


# Pages of the five actions a..e (e the newest).
PAGES = [
    ({"limit": "2"}, ["e", "d"]),
    ({"skip": "1"}, ["d", "c", "b", "a"]),
    ({"skip": "1", "limit": "2"}, ["d", "c"]),
    ({"skip": "5"}, []),
    ({"limit": "0"}, ["e", "d", "c", "b", "a"]),  # 0 means the maximum
    ({"limit": "50"}, ["e", "d", "c", "b", "a"]),
]


async def test_list_pages_with_limit_and_skip(api: Actions) -> None:
    for name in "abcde":
        await api.create(name)
    for query, expected in PAGES:
        assert await api.names(**query) == expected, query


async def test_list_returns_30_by_default(api: Actions) -> None:
    for i in range(31):
        await api.create(f"a{i:02}")
    assert len(await api.names()) == 30
    assert len(await api.names(limit="0")) == 31
    assert (await api.get(count="true")).json() == {"actions": 31}


LIST_QUERY_ERRORS = [
    ("limit", "201", "The value '201' is not in the range of 0 to 200 for actions."),
    ("limit", "x", "The value 'x' is not an integer for actions."),
    ("limit", "-1", "The value '-1' is not greater than or equal to 0 for actions."),
    ("skip", "-1", "The value '-1' is not greater than or equal to 0 for actions."),
    ("skip", "1.5", "The value '1.5' is not an integer for actions."),
]


async def test_list_query_errors(api: Actions) -> None:
    for name, value, detail in LIST_QUERY_ERRORS:
        message = f"The query parameter '{name}' was malformed:\n{detail}"
        assert_error(await api.get(**{name: value}), 400, message)


async def test_packaged_actions(api: Actions, put_package: PutPackage, acme: Caller) -> None:
    await put_package(acme, "tools")
    await api.create("loose")
    created = await api.create("tools/hammer")
    assert (created["namespace"], created["name"]) == ("acme-int1/tools", "hammer")
    assert (await api.get("tools/hammer")).json() == created
    listed = (await api.get("tools/")).json()
    assert [(a["namespace"], a["name"]) for a in listed] == [("acme-int1/tools", "hammer")]
    assert set(listed[0]) == SUMMARY_KEYS
    assert_error(await api.get("tools/loose"), 404, NOT_FOUND)
    assert_error(await api.get("loose/tools"), 404, NOT_FOUND)


async def test_put_into_a_missing_package_is_404(api: Actions) -> None:
    assert_error(await api.put("missing/hammer", node_action()), 404)
    assert await api.names() == []


async def test_delete_answers_the_deleted_action(api: Actions, put_package: PutPackage) -> None:
    await put_package(api.caller, "tools")
    for name in ("hello", "tools/hammer"):
        created = await api.create(name)
        deleted = await api.delete(name)
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == created
        assert_error(await api.get(name), 404, NOT_FOUND)
        assert_error(await api.delete(name), 404, NOT_FOUND)
    assert await api.names() == []


async def test_another_namespaces_private_actions_are_forbidden(
    client: httpx.AsyncClient, acme: Caller, globex: Caller, put_package: PutPackage
) -> None:
    theirs = Actions(client, globex)
    await put_package(globex, "private")
    secret = await theirs.create("secret")
    await theirs.create("private/tool")
    mine = Actions(client, acme, "globex-int2")
    attempts = [
        ("GET", "secret", "globex-int2/secret"),
        ("GET", "missing", "globex-int2/missing"),
        ("GET", "private/tool", "globex-int2/private/tool"),
        ("GET", "private/", "globex-int2/private"),
        ("GET", "", "globex-int2"),
        ("PUT", "secret", "globex-int2/secret"),
        ("PUT", "new", "globex-int2/new"),
        ("DELETE", "secret", "globex-int2/secret"),
        ("DELETE", "missing", "globex-int2/missing"),
        ("POST", "secret", "globex-int2/secret"),
        ("POST", "private/tool", "globex-int2/private/tool"),
    ]
    for method, name, path in attempts:
        body = node_action() if method == "PUT" else ({} if method == "POST" else None)
        response = await client.request(method, mine.url(name), json=body, headers=acme.headers)
        assert response.status_code == 403, (method, name, response.text)
        assert_error(response, 403, not_authorized(path))
    assert (await theirs.get("secret")).json() == secret
    assert await theirs.names() == ["tool", "secret"]


@pytest.mark.parametrize(
    ("method", "name", "path"),
    [
        ("GET", "thing", "nobody-here/thing"),
        ("POST", "thing", "nobody-here/thing"),
        ("GET", "pkg/", "nobody-here/pkg"),
    ],
)
async def test_actions_of_a_namespace_that_does_not_exist_are_forbidden(
    client: httpx.AsyncClient, acme: Caller, method: str, name: str, path: str
) -> None:
    url = Actions(client, acme, "nobody-here").url(name)
    response = await client.request(method, url, json={} if method == "POST" else None,
                                    headers=acme.headers)  # fmt: skip
    assert_error(response, 403, not_authorized(path))


async def test_public_packages_of_another_namespace_are_readable(
    client: httpx.AsyncClient, acme: Caller, globex: Caller, put_package: PutPackage
) -> None:
    await put_package(globex, "shared", publish=True)
    tool = await Actions(client, globex).create("shared/tool")
    theirs = Actions(client, acme, "globex-int2")
    fetched = await theirs.get("shared/tool")
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == tool
    assert await theirs.names("shared/") == ["tool"]
    assert_error(
        await theirs.get("shared/missing"), 403, not_authorized("globex-int2/shared/missing")
    )
    assert_error(await theirs.put("shared/tool", node_action(), overwrite="true"), 403)
    assert_error(await theirs.put("shared/new", node_action()), 403)
    assert_error(await theirs.delete("shared/tool"), 403)
    assert_error(await theirs.get(), 403, not_authorized("globex-int2"))


async def test_the_system_catalog_is_readable_by_everyone(
    client: httpx.AsyncClient, acme: Caller
) -> None:
    system = Actions(client, acme, "whisk.system")
    echo = await system.get("utils/echo")
    assert echo.status_code == 200, echo.text
    body = echo.json()
    assert (body["namespace"], body["name"]) == ("whisk.system/utils", "echo")
    assert body["exec"]["kind"] == "nodejs:22"
    assert "function main" in body["exec"]["code"]
    assert set(await system.names("utils/")) == CATALOG
    assert_error(await system.get(), 403, not_authorized("whisk.system"))
    assert_error(await system.put("utils/echo", node_action(), overwrite="true"), 403)
    assert_error(await system.delete("utils/echo"), 403)
    assert_error(await system.get("utils/nothing"), 403)


async def test_actions_are_reached_through_a_binding(
    api: Actions, put_package: PutPackage, acme: Caller
) -> None:
    await put_package(acme, "myutils", binding={"namespace": "whisk.system", "name": "utils"})
    assert set(await api.names("myutils/")) == CATALOG
    echo = await api.get("myutils/echo")
    assert echo.status_code == 200, echo.text
    assert echo.json()["name"] == "echo"
