"""Bad input to the OpenWhisk API is a 4xx in its error shape, never a 500: the probes that
once found 500s (query integers beyond 64 bits, bodies nested past what the messages carry,
lone surrogates), then a fuzz of query and body parsing (hypothesis) over every collection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invoker import wirejson
from tests.controller.api.openwhisk.support import API, Caller, assert_error, node_action

COLLECTIONS = ["actions", "packages", "triggers", "rules", "activations"]
MALFORMED = "The request content was malformed:\n"


def nested(levels: int) -> Any:
    value: Any = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


async def send(
    client: httpx.AsyncClient, caller: Caller, method: str, path: str, raw: bytes
) -> httpx.Response:
    headers = {**caller.headers, "Content-Type": "application/json"}
    return await client.request(method, f"{API}/namespaces/_/{path}", content=raw, headers=headers)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"skip": str(2**63)}, f"The value '{2**63}' is not an integer for actions."),
        ({"skip": str(2**31)}, f"The value '{2**31}' is not an integer for actions."),
        ({"limit": str(2**64)}, f"The value '{2**64}' is not an integer for actions."),
    ],
)
async def test_list_integers_beyond_32_bits_are_400(
    client: httpx.AsyncClient, acme: Caller, query: dict[str, str], message: str
) -> None:
    response = await client.get(f"{API}/namespaces/_/actions", params=query, headers=acme.headers)
    name = next(iter(query))
    assert_error(response, 400, f"The query parameter '{name}' was malformed:\n{message}")


@pytest.mark.parametrize("bound", ["since", "upto"])
@pytest.mark.parametrize("value", [str(2**63), str(-(2**63) - 1), str(2**70)])
async def test_activation_bounds_outside_64_bits_are_400(
    client: httpx.AsyncClient, acme: Caller, bound: str, value: str
) -> None:
    response = await client.get(
        f"{API}/namespaces/_/activations", params={bound: value}, headers=acme.headers
    )
    assert_error(
        response, 400, f"The query parameter '{bound}' was malformed:\n"
        f"Parameter is not a valid value for epoch seconds: {value}",
    )  # fmt: skip


async def test_activation_bounds_at_64_bits_are_accepted(
    client: httpx.AsyncClient, acme: Caller
) -> None:
    query = {"since": str(-(2**63)), "upto": str(2**63 - 1)}
    response = await client.get(
        f"{API}/namespaces/_/activations", params=query, headers=acme.headers
    )
    assert response.status_code == 200, response.text
    assert response.json() == []


BODY_TARGETS = [
    (
        "PUT",
        "actions/deep?overwrite=true",
        lambda v: node_action(parameters=[{"key": "p", "value": v}]),
    ),
    ("POST", "actions/greet", lambda v: {"p": v}),
    ("PUT", "triggers/deep?overwrite=true", lambda v: {"parameters": [{"key": "p", "value": v}]}),
    ("PUT", "packages/deep?overwrite=true", lambda v: {"parameters": [{"key": "p", "value": v}]}),
]


@pytest.mark.parametrize(("method", "path", "wrap"), BODY_TARGETS)
@pytest.mark.parametrize("levels", [wirejson.MAX_DEPTH + 1, 254, 255, 5000])
async def test_bodies_nested_past_the_limit_are_400(
    client: httpx.AsyncClient, acme: Caller, method: str, path: str,
    wrap: Callable[[Any], Any], levels: int,
) -> None:  # fmt: skip
    await send(client, acme, "PUT", "actions/greet", json.dumps(node_action()).encode())
    raw = (
        json.dumps(wrap(nested(levels))).encode()
        if levels < 900
        else (b'{"p":' + b'{"a":' * levels + b"{}" + b"}" * (levels + 1))
    )
    response = await send(client, acme, method, path, raw)
    assert_error(response, 400, MALFORMED + wirejson.TOO_DEEP)


async def test_a_body_at_the_nesting_limit_is_accepted(
    client: httpx.AsyncClient, acme: Caller
) -> None:
    # The limit counts the body itself: a parameter's value sits three levels down.
    body = node_action(parameters=[{"key": "p", "value": nested(wirejson.MAX_DEPTH - 3)}])
    assert wirejson.depth(body) == wirejson.MAX_DEPTH
    response = await send(client, acme, "PUT", "actions/deep", json.dumps(body).encode())
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("method", "path", "wrap"), BODY_TARGETS)
async def test_a_lone_surrogate_in_a_body_is_400(
    client: httpx.AsyncClient, acme: Caller, method: str, path: str, wrap: Callable[[Any], Any]
) -> None:
    await send(client, acme, "PUT", "actions/greet", json.dumps(node_action()).encode())
    raw = json.dumps(wrap("x\ud800y")).encode()  # ensure_ascii: the escape `\ud800`
    assert b"\\ud800" in raw
    response = await send(client, acme, method, path, raw)
    assert_error(response, 400, MALFORMED + wirejson.LONE_SURROGATE)


async def test_a_surrogate_pair_is_not_a_lone_surrogate(
    client: httpx.AsyncClient, acme: Caller
) -> None:
    body = node_action(parameters=[{"key": "p", "value": "\U0001f600"}])
    raw = json.dumps(body).encode()
    assert b"\\ud83d\\ude00" in raw
    response = await send(client, acme, "PUT", "actions/smile", raw)
    assert response.status_code == 200, response.text
    assert response.json()["parameters"] == [{"key": "p", "value": "\U0001f600"}]


# The fuzz: requests built from arbitrary text and JSON, each answered below 500 in the
# API's error shape. Hypothesis runs in a thread; each request runs on the test's loop.

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
QUERY_VALUE = st.one_of(
    st.text(max_size=30),
    st.integers().map(str),
    st.integers(min_value=2**31 - 2, max_value=2**70).map(str),
    st.just(""),
)
QUERY_NAME = st.sampled_from(["skip", "limit", "count", "docs", "name", "since", "upto", "x"])
BODY = st.one_of(
    JSON.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
ENTITY = st.sampled_from(["actions", "packages", "triggers", "rules"])
NAME = st.one_of(
    st.sampled_from(["greet", "x", "a/b", "pkg/act"]), st.text(min_size=1, max_size=12)
)

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None
)


def assert_sane(response: httpx.Response) -> None:
    # 503: a well-formed invoke, which this app (no execution engine) cannot run.
    assert response.status_code < 500 or response.status_code == 503, (
        response.request.url, response.text,
    )  # fmt: skip
    if response.status_code >= 400:
        assert_error(response, response.status_code)


async def fuzz(probe: Callable[[], None]) -> None:
    await asyncio.to_thread(probe)


def on(loop: asyncio.AbstractEventLoop, request: Coroutine[Any, Any, httpx.Response]) -> None:
    assert_sane(asyncio.run_coroutine_threadsafe(request, loop).result(60))


async def test_fuzzed_list_queries_are_never_500(client: httpx.AsyncClient, acme: Caller) -> None:
    loop = asyncio.get_running_loop()

    @FUZZ
    @given(st.sampled_from(COLLECTIONS), st.dictionaries(QUERY_NAME, QUERY_VALUE, max_size=4))
    def probe(collection: str, query: dict[str, str]) -> None:
        url = f"{API}/namespaces/_/{collection}"
        on(loop, client.get(url, params=query, headers=acme.headers))

    await fuzz(probe)


async def test_fuzzed_entity_bodies_are_never_500(client: httpx.AsyncClient, acme: Caller) -> None:
    loop = asyncio.get_running_loop()
    await send(client, acme, "PUT", "actions/greet", json.dumps(node_action()).encode())

    @FUZZ
    @given(ENTITY, NAME, BODY, st.sampled_from(["PUT", "POST", "GET", "DELETE"]))
    def probe(entity: str, name: str, raw: bytes, method: str) -> None:
        path = f"{entity}/{quote(name, safe='/')}?overwrite=true"
        on(loop, send(client, acme, method, path, raw))

    await fuzz(probe)


async def test_fuzzed_entity_fields_are_never_500(client: httpx.AsyncClient, acme: Caller) -> None:
    loop = asyncio.get_running_loop()
    fields = st.fixed_dictionaries(
        {}, optional={
            "exec": st.one_of(JSON, st.fixed_dictionaries(
                {"kind": st.sampled_from(["nodejs:18", "nodejs:default", "python:3.11",
                                          "sequence", "blackbox", "x"])},
                optional={"code": JSON, "components": JSON, "image": JSON, "main": JSON,
                          "binary": JSON},
            )),
            "parameters": JSON, "annotations": JSON, "limits": st.one_of(JSON, st.dictionaries(
                st.sampled_from(["timeout", "memory", "logs", "concurrency"]),
                st.one_of(st.integers(), JSON),
            )),
            "publish": JSON, "trigger": JSON, "action": JSON, "status": JSON,
            "binding": JSON, "namespace": JSON, "name": JSON, "version": JSON,
        },
    )  # fmt: skip

    @FUZZ
    @given(ENTITY, fields)
    def probe(entity: str, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        on(loop, send(client, acme, "PUT", f"{entity}/fuzzed?overwrite=true", raw))

    await fuzz(probe)
