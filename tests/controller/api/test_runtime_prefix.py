"""The OpenWhisk API under /runtime/api/v1 with operator bearer tokens (`aio app deploy`)."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

Issue = Callable[..., Awaitable[dict[str, str]]]
NewNamespace = Callable[[str, str], Awaitable[dict[str, Any]]]
ACTION = {"exec": {"kind": "nodejs:default", "code": "function main() { return {}; }"}}


def bearer(headers: dict[str, str]) -> dict[str, str]:
    return {"Authorization": headers["Authorization"]}


async def test_org_token_manages_its_namespaces(
    client: httpx.AsyncClient, issue: Issue, create_namespace: NewNamespace
) -> None:
    await create_namespace("acme", "int1")
    await create_namespace("other", "int1")
    token = bearer(await issue(org="acme"))
    base = "/runtime/api/v1/namespaces/acme-int1/actions"
    created = await client.put(f"{base}/hello", json=ACTION, headers=token)
    assert created.status_code == 200, created.text
    assert created.json()["namespace"] == "acme-int1"
    listed = await client.get(base, headers=token)
    assert [a["name"] for a in listed.json()] == ["hello"]
    assert (await client.delete(f"{base}/hello", headers=token)).status_code == 200

    forbidden = await client.get("/runtime/api/v1/namespaces/other-int1/actions", headers=token)
    assert forbidden.status_code == 403
    implicit = await client.get("/runtime/api/v1/namespaces/_/actions", headers=token)
    assert implicit.status_code == 400
    assert "name the namespace" in implicit.json()["error"]


async def test_admin_token_and_basic_auth_and_errors(
    client: httpx.AsyncClient, issue: Issue, create_namespace: NewNamespace
) -> None:
    namespace = await create_namespace("acme", "int1")
    admin = bearer(await issue(admin=True))
    base = "/runtime/api/v1/namespaces/acme-int1/actions"
    assert (await client.get(base, headers=admin)).status_code == 200
    basic = {"Authorization": "Basic " + base64.b64encode(namespace["auth"].encode()).decode()}
    assert (
        await client.get("/runtime/api/v1/namespaces/_/actions", headers=basic)
    ).status_code == 200
    unknown = await client.get(base, headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 401
    missing = await client.get(base)
    assert missing.status_code == 401
    assert missing.headers["access-control-allow-origin"] == "*"
