"""`/api/v1/namespaces/{ns}/activations[/{id}[/logs|/result]]` (shared/spec/openwhisk.md
§2.2, §2.5, §3.5). Records come from real invocations (process sandbox) where the content
matters, and are stored directly where only listing and filtering are under test."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from controller.services import activations
from controller.services.activations import Activation
from controller.settings import Settings
from controller.setup import in_transaction
from invoker.protocol import Outcome
from tests.conftest import Engine
from tests.controller.api.openwhisk.support import (
    API,
    Actions,
    Caller,
    assert_error,
    node_action,
    not_authorized,
)

NOT_FOUND = "The requested resource does not exist."
T0 = 1_700_000_000_000
SUMMARY_KEYS = {
    "namespace", "name", "version", "publish", "annotations", "activationId", "start", "end",
    "duration", "statusCode",
}  # fmt: skip
RECORD_KEYS = SUMMARY_KEYS - {"statusCode"} | {"subject", "response", "logs"}
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z\s+(stdout|stderr): (.*)")
SUB_ROUTES = ["", "/logs", "/result"]

Store = Callable[..., Awaitable[str]]


@pytest.fixture
def sandbox_kind() -> str:
    return "process"


@pytest.fixture
def store(settings: Settings) -> Store:
    """`await store("acme-int1", "hello", start)`: record a finished activation; its id."""

    async def make(
        namespace: str, name: str, start: int, *, package: str = "", status_code: int = 0,
        cause: str | None = None,
    ) -> str:  # fmt: skip
        path = f"{namespace}/{package}/{name}" if package else f"{namespace}/{name}"
        outcome = list(Outcome)[status_code]
        result = {"started": start} if status_code == 0 else {"error": "failed"}
        activation = Activation(
            activation_id=secrets.token_hex(16), namespace=namespace, name=name,
            subject=namespace, version="0.0.1", start=start, end=start + 7, duration=7,
            status_code=status_code,
            response={
                "status": outcome.value, "statusCode": status_code,
                "success": status_code == 0, "result": result,
                "size": len(json.dumps(result, separators=(",", ":"))),
            },
            logs=[f"2024-03-16T20:03:00.123456789Z stdout: {name} at {start}"],
            annotations=[{"key": "path", "value": path}, {"key": "kind", "value": "nodejs:18"}],
            cause=cause,
        )  # fmt: skip
        stored = await in_transaction(settings, lambda s: activations.store(s, activation, path))
        assert stored is not None
        return activation.activation_id

    return make


async def listing(client: httpx.AsyncClient, caller: Caller, **query: str) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/namespaces/_/activations", params=query,
                                headers=caller.headers)  # fmt: skip
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


async def test_routes_of_a_real_activation(engine: Engine, engine_caller: Caller) -> None:
    ow = Actions(engine.client, engine_caller)
    code = "function main(p) { console.log('hello', p.name); console.error('oops');" \
        " return {greeting: p.name}; }"  # fmt: skip
    await ow.create("hello", node_action(code))
    invoked = (await ow.post("hello", {"name": "log"}, blocking="true")).json()
    activation_id = invoked["activationId"]
    assert await engine.activation(activation_id) is not None
    url = f"{API}/namespaces/_/activations/{activation_id}"

    record = (await engine.client.get(url, headers=engine_caller.headers)).json()
    assert set(record) == RECORD_KEYS, record
    assert {k: v for k, v in record.items() if k != "logs"} == {
        k: v for k, v in invoked.items() if k != "logs"
    }
    lines = [LOG_LINE.fullmatch(line) for line in record["logs"]]
    assert all(lines), record["logs"]
    assert [(m[1], m[2]) for m in lines if m] == [("stdout", "hello log"), ("stderr", "oops")]

    logs = await engine.client.get(f"{url}/logs", headers=engine_caller.headers)
    assert logs.status_code == 200, logs.text
    assert logs.json() == {"logs": record["logs"]}

    result = await engine.client.get(f"{url}/result", headers=engine_caller.headers)
    assert result.status_code == 200, result.text
    assert result.json() == {
        "result": {"greeting": "log"}, "size": 18, "status": "success", "success": True,
    }  # fmt: skip

    listed = await listing(engine.client, engine_caller)
    assert [a["activationId"] for a in listed] == [activation_id]
    assert listed[0]["statusCode"] == 0
    assert set(listed[0]) == SUMMARY_KEYS


async def test_list_is_newest_first_with_summaries(
    client: httpx.AsyncClient, acme: Caller, globex: Caller, store: Store
) -> None:
    first = await store("acme-int1", "a", T0)
    failed = await store("acme-int1", "b", T0 + 2000, status_code=1)
    child = await store("acme-int1", "c", T0 + 1000, cause=first)
    await store("globex-int2", "theirs", T0 + 3000)
    listed = await listing(client, acme)
    assert [a["activationId"] for a in listed] == [failed, child, first]
    assert [a["statusCode"] for a in listed] == [1, 0, 0]
    for summary in listed:
        expected = SUMMARY_KEYS | ({"cause"} if summary["activationId"] == child else set())
        assert set(summary) == expected, summary
        assert summary["namespace"] == "acme-int1"
        assert summary["duration"] == summary["end"] - summary["start"] == 7
    assert listed[1]["cause"] == first


async def test_list_with_docs_has_full_records(
    client: httpx.AsyncClient, acme: Caller, store: Store
) -> None:
    ids = [await store("acme-int1", name, T0 + i) for i, name in enumerate("ab")]
    docs = await listing(client, acme, docs="true")
    assert [a["activationId"] for a in docs] == ids[::-1]
    for record in docs:
        assert set(record) == RECORD_KEYS, record
        assert record["response"] == {
            "status": "success", "success": True, "result": {"started": record["start"]},
            "size": len(json.dumps({"started": record["start"]}, separators=(",", ":"))),
        }  # fmt: skip
        assert record["logs"] == [
            f"2024-03-16T20:03:00.123456789Z stdout: {record['name']} at {record['start']}"
        ]


async def test_count_and_paging(client: httpx.AsyncClient, acme: Caller, store: Store) -> None:
    ids = [await store("acme-int1", "a", T0 + i) for i in range(5)][::-1]
    url = f"{API}/namespaces/_/activations"
    count = await client.get(url, params={"count": "true"}, headers=acme.headers)
    assert count.json() == {"activations": 5}
    counted = await client.get(url, params={"count": "yes", "since": str(T0 + 3)},
                               headers=acme.headers)  # fmt: skip
    assert counted.json() == {"activations": 2}
    both = await client.get(url, params={"count": "true", "docs": "true"}, headers=acme.headers)
    assert_error(both, 400, "The parameter 'docs' is not permitted with 'count'.")
    pages = [({"limit": "2"}, ids[:2]), ({"skip": "3"}, ids[3:]), ({"skip": "1", "limit": "1"},
             ids[1:2]), ({"limit": "0"}, ids)]  # fmt: skip
    for query, expected in pages:
        assert [a["activationId"] for a in await listing(client, acme, **query)] == expected


async def test_a_page_holds_up_to_200_as_in_openwhisk(
    client: httpx.AsyncClient, acme: Caller, store: Store
) -> None:
    """`limit` goes up to OpenWhisk's 200 (clients ask for that many), and 0 means 200."""
    ids = [await store("acme-int1", "a", T0 + i) for i in range(205)][::-1]
    for query in ({"limit": "200"}, {"limit": "0"}):
        assert [a["activationId"] for a in await listing(client, acme, **query)] == ids[:200]
    assert len(await listing(client, acme)) == 30


async def test_malformed_paging_is_400(client: httpx.AsyncClient, acme: Caller) -> None:
    url = f"{API}/namespaces/_/activations"
    malformed = [
        ("limit", "201", "The value '201' is not in the range of 0 to 200 for activations."),
        ("skip", "-2", "The value '-2' is not greater than or equal to 0 for activations."),
        ("limit", "ten", "The value 'ten' is not an integer for activations."),
    ]
    for name, value, detail in malformed:
        response = await client.get(url, params={name: value}, headers=acme.headers)
        assert_error(response, 400, f"The query parameter '{name}' was malformed:\n{detail}")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hello", ["hello"]),
        ("tools/hello", ["tools/hello"]),
        ("other", ["other"]),
        ("nothing", []),
        ("t_ols/hello", []),  # `_` is a name character, not a wildcard
        ("tool/hello", []),
    ],
)
async def test_name_filter(
    client: httpx.AsyncClient, acme: Caller, store: Store, name: str, expected: list[str]
) -> None:
    ids = {
        "hello": await store("acme-int1", "hello", T0),
        "tools/hello": await store("acme-int1", "hello", T0 + 1, package="tools"),
        "other": await store("acme-int1", "other", T0 + 2),
    }
    found = [a["activationId"] for a in await listing(client, acme, name=name)]
    assert found == [ids[e] for e in expected]
    counted = await client.get(
        f"{API}/namespaces/_/activations",
        params={"name": name, "count": "true"},
        headers=acme.headers,
    )
    assert counted.json() == {"activations": len(expected)}  # fmt: skip


async def test_name_filter_of_more_than_two_segments_is_400(
    client: httpx.AsyncClient, acme: Caller
) -> None:
    response = await client.get(f"{API}/namespaces/_/activations", params={"name": "a/b/c"},
                                headers=acme.headers)  # fmt: skip
    error = assert_error(response, 400)
    assert "Parameter may be a 'simple' name or 'package-name/simple' name: a/b/c" in error


async def test_since_and_upto_are_inclusive_bounds_on_start(
    client: httpx.AsyncClient, acme: Caller, store: Store
) -> None:
    at = {t: await store("acme-int1", "a", T0 + t) for t in (0, 1000, 2000)}
    windows = [
        ({"since": T0 + 1000}, [2000, 1000]),
        ({"upto": T0 + 1000}, [1000, 0]),
        ({"since": T0 + 1000, "upto": T0 + 1000}, [1000]),
        ({"since": T0 + 1, "upto": T0 + 1999}, [1000]),
        ({"since": T0 + 2001}, []),
        ({"upto": T0 - 1}, []),
    ]
    for window, expected in windows:
        query = {k: str(v) for k, v in window.items()}
        found = [a["activationId"] for a in await listing(client, acme, **query)]
        assert found == [at[t] for t in expected], window
    for name, value in (("since", "x"), ("upto", "1.5")):
        response = await client.get(f"{API}/namespaces/_/activations", params={name: value},
                                    headers=acme.headers)  # fmt: skip
        message = (
            f"The query parameter '{name}' was malformed:\n"
            f"Parameter is not a valid value for epoch seconds: {value}"
        )
        assert_error(response, 400, message)


@pytest.mark.parametrize(
    ("activation_id", "message"),
    [
        ("abcde", "Activation id length is 5 but must be 32."),
        ("0" * 33, "Activation id length is 33 but must be 32."),
        ("z" * 32, "The activation id is not valid."),
        ("0123456789abcdef0123456789abcde-", "The activation id is not valid."),
    ],
)
async def test_malformed_activation_ids_are_400(
    client: httpx.AsyncClient, acme: Caller, activation_id: str, message: str
) -> None:
    for sub in SUB_ROUTES:
        url = f"{API}/namespaces/_/activations/{activation_id}{sub}"
        assert_error(await client.get(url, headers=acme.headers), 400, message)


async def test_stored_activation_routes(
    client: httpx.AsyncClient, acme: Caller, store: Store
) -> None:
    failed = await store("acme-int1", "b", T0, status_code=2)
    url = f"{API}/namespaces/acme-int1/activations/{failed}"
    record = (await client.get(url, headers=acme.headers)).json()
    assert set(record) == RECORD_KEYS
    assert record["response"] == {
        "status": "action developer error", "success": False, "result": {"error": "failed"},
        "size": 18,
    }  # fmt: skip
    result = await client.get(f"{url}/result", headers=acme.headers)
    assert result.json() == record["response"]
    logs = await client.get(f"{url}/logs", headers=acme.headers)
    assert logs.json() == {"logs": ["2024-03-16T20:03:00.123456789Z stdout: b at " + str(T0)]}


async def test_unknown_and_foreign_activation_ids_are_404(
    client: httpx.AsyncClient, acme: Caller, globex: Caller, store: Store
) -> None:
    theirs = await store("globex-int2", "theirs", T0)
    unknown = secrets.token_hex(16)
    for activation_id in (unknown, theirs):
        for sub in SUB_ROUTES:
            url = f"{API}/namespaces/_/activations/{activation_id}{sub}"
            assert_error(await client.get(url, headers=acme.headers), 404, NOT_FOUND)
    own = await client.get(f"{API}/namespaces/_/activations/{theirs}", headers=globex.headers)
    assert own.status_code == 200, own.text
    assert await listing(client, acme) == []


async def test_another_namespaces_activations_are_forbidden(
    client: httpx.AsyncClient, acme: Caller, globex: Caller, store: Store
) -> None:
    theirs = await store("globex-int2", "theirs", T0)
    base = f"{API}/namespaces/globex-int2/activations"
    listed = await client.get(base, headers=acme.headers)
    assert_error(listed, 403, not_authorized("globex-int2"))
    for sub in SUB_ROUTES:
        response = await client.get(f"{base}/{theirs}{sub}", headers=acme.headers)
        assert_error(response, 403, not_authorized(f"globex-int2/{theirs}"))
