"""`/api/v1/namespaces`, `/namespaces/{ns}/limits` and how the `{namespace}` segment is read
(shared/spec/openwhisk.md §1, §2.2, §2.6)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from controller.settings import Settings
from tests.controller.api.openwhisk.support import (
    API,
    Caller,
    assert_error,
    caller_of,
    node_action,
    not_authorized,
)

ILLEGAL_NAMESPACE = "The namespace contains illegal characters."
# A route of each resource, with `{ns}` standing for the namespace segment.
NAMESPACED_ROUTES = [
    ("GET", f"{API}/namespaces/{{ns}}/limits"),
    ("GET", f"{API}/namespaces/{{ns}}/actions"),
    ("GET", f"{API}/namespaces/{{ns}}/actions/hello"),
    ("PUT", f"{API}/namespaces/{{ns}}/actions/hello"),
    ("DELETE", f"{API}/namespaces/{{ns}}/actions/hello"),
    ("POST", f"{API}/namespaces/{{ns}}/actions/hello"),
    ("GET", f"{API}/namespaces/{{ns}}/activations"),
    ("GET", f"{API}/namespaces/{{ns}}/activations/0123456789abcdef0123456789abcdef"),
]


async def call(
    client: httpx.AsyncClient, caller: Caller, method: str, route: str, ns: str
) -> httpx.Response:
    body = node_action() if method == "PUT" else ({} if method == "POST" else None)
    return await client.request(method, route.format(ns=ns), json=body, headers=caller.headers)


async def test_namespaces_lists_only_the_callers_own(
    client: httpx.AsyncClient, acme: Caller, globex: Caller
) -> None:
    for caller in (acme, globex):
        response = await client.get(f"{API}/namespaces", headers=caller.headers)
        assert response.status_code == 200, response.text
        assert response.json() == [caller.name]
    assert acme.name == "acme-int1"


@pytest.mark.parametrize("segment", ["_", "acme-int1"])
async def test_limits_of_the_own_namespace(
    client: httpx.AsyncClient, acme: Caller, settings: Settings, segment: str
) -> None:
    response = await client.get(f"{API}/namespaces/{segment}/limits", headers=acme.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    limits = settings.limits
    assert body["invocationsPerMinute"] == limits.invocations_per_minute
    assert body["concurrentInvocations"] == limits.concurrent_invocations
    assert body["firesPerMinute"] == limits.fires_per_minute
    assert body["minActionMemory"] == limits.memory_min
    assert body["maxActionMemory"] == limits.memory_max
    assert body["maxActionTimeout"] == limits.timeout_max


@pytest.mark.parametrize("other", ["globex-int2", "nobody-here"])
async def test_limits_of_another_namespace_are_forbidden(
    client: httpx.AsyncClient, acme: Caller, globex: Caller, other: str
) -> None:
    response = await client.get(f"{API}/namespaces/{other}/limits", headers=acme.headers)
    assert_error(response, 403, not_authorized(other))


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        ("-leading-dash", ILLEGAL_NAMESPACE),
        ("bad!name", ILLEGAL_NAMESPACE),
        ("trailing%20", ILLEGAL_NAMESPACE),
        ("x" * 257, "Namespace longer than allowed: 257 > 256."),
    ],
)
async def test_invalid_namespace_segments_are_400(
    client: httpx.AsyncClient, acme: Caller, segment: str, message: str
) -> None:
    for method, route in NAMESPACED_ROUTES:
        response = await call(client, acme, method, route, segment)
        assert_error(response, 400, message)


async def test_the_longest_namespace_name_is_only_unknown(
    client: httpx.AsyncClient, acme: Caller
) -> None:
    longest = "x" * 256
    response = await client.get(f"{API}/namespaces/{longest}/limits", headers=acme.headers)
    assert_error(response, 403, not_authorized(longest))


async def test_percent_encoded_namespace_names_resolve(
    client: httpx.AsyncClient,
    create_namespace: Callable[[str, str], Awaitable[dict[str, Any]]],
) -> None:
    # The openwhisk npm client sends the namespace through encodeURIComponent.
    caller = caller_of(await create_namespace("jane@example.com", "int1"))
    assert caller.name == "jane@example.com-int1"
    encoded = "jane%40example.com-int1"
    limits = await client.get(f"{API}/namespaces/{encoded}/limits", headers=caller.headers)
    assert limits.status_code == 200, limits.text
    put = await client.put(
        f"{API}/namespaces/{encoded}/actions/hello", json=node_action(), headers=caller.headers
    )
    assert put.status_code == 200, put.text
    assert put.json()["namespace"] == caller.name
    listed = await client.get(f"{API}/namespaces/{encoded}/actions", headers=caller.headers)
    assert [a["name"] for a in listed.json()] == ["hello"]
    fetched = await client.get(
        f"{API}/namespaces/{encoded}/actions/hello?code=false", headers=caller.headers
    )
    assert fetched.status_code == 200, fetched.text
