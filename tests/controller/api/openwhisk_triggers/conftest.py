"""An OpenWhisk API caller (Basic `uuid:key`) for the trigger and rule tests."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

API = "/api/v1/namespaces"
NODE = "nodejs:18"


def basic(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


@dataclass
class Caller:
    """One namespace's OpenWhisk credentials, and its entity endpoints."""

    client: httpx.AsyncClient
    namespace: str
    headers: dict[str, str]

    def url(self, collection: str, name: str = "", namespace: str = "_") -> str:
        return f"{API}/{namespace}/{collection}" + (f"/{name}" if name else "")

    async def get(self, collection: str, entity: str = "", **params: Any) -> httpx.Response:
        url = self.url(collection, entity)
        return await self.client.get(url, headers=self.headers, params=params)

    async def put(
        self, collection: str, name: str, body: Any = None, **params: Any
    ) -> httpx.Response:
        url = self.url(collection, name)
        return await self.client.put(url, json=body or {}, headers=self.headers, params=params)

    async def post(self, collection: str, name: str, body: Any = None) -> httpx.Response:
        url = self.url(collection, name)
        return await self.client.post(url, json=body, headers=self.headers)

    async def delete(self, collection: str, name: str) -> httpx.Response:
        return await self.client.delete(self.url(collection, name), headers=self.headers)

    async def action(self, name: str, code: str = "function main(p) { return p; }") -> None:
        body = {"exec": {"kind": NODE, "code": code}}
        response = await self.put("actions", name, body)
        assert response.status_code == 200, response.text

    async def trigger(self, name: str, **body: Any) -> dict[str, Any]:
        response = await self.put("triggers", name, body)
        assert response.status_code == 200, response.text
        created: dict[str, Any] = response.json()
        return created

    async def rule(self, name: str, trigger: Any, action: Any) -> dict[str, Any]:
        response = await self.put("rules", name, {"trigger": trigger, "action": action})
        assert response.status_code == 200, response.text
        created: dict[str, Any] = response.json()
        return created


@pytest.fixture
def caller_of(
    client: httpx.AsyncClient, create_namespace: Callable[[str, str], Awaitable[dict[str, Any]]]
) -> Callable[[str, str], Awaitable[Caller]]:
    """`await caller_of(org, int)`: a Caller of a new namespace."""

    async def make(org: str, int_id: str) -> Caller:
        namespace = await create_namespace(org, int_id)
        return Caller(client, namespace["name"], basic(namespace["auth"]))

    return make


@pytest.fixture
async def ow(caller_of: Callable[[str, str], Awaitable[Caller]]) -> Caller:
    return await caller_of("acme", "int1")


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error", "code"}, body
    message: str = body["error"]
    return message
