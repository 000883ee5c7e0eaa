from __future__ import annotations

import httpx


async def test_create_and_get_action(client: httpx.AsyncClient, issue, create_namespace) -> None:
    await create_namespace("acme", "int1")
    headers = await issue(org="acme")
    body = {"name": "hello", "code": "function main(){return {}}", "exec": {"kind": "nodejs:18"}}
    created = await client.post("/runtime/namespaces/acme/int1/actions", json=body, headers=headers)
    assert created.status_code == 200, created.text
    got = await client.get("/runtime/namespaces/acme/int1/actions/hello", headers=headers)
    assert got.json() == created.json()
