"""Helpers shared by the OpenWhisk API tests: Basic credentials, error assertions, sources."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

import httpx

API = "/api/v1"
NODE_KIND = "nodejs:18"
HELLO = "function main(p) { return {greeting: 'hello ' + (p.name || 'world')}; }"
REQUEST_ID = re.compile(r"[A-Za-z0-9]{32}")
ACTIVATION_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Caller:
    """A namespace and the Basic `Authorization` header of its `uuid:key`."""

    name: str
    auth: str

    @property
    def headers(self) -> dict[str, str]:
        return basic(self.auth)


def basic(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def caller_of(dto: dict[str, Any]) -> Caller:
    return Caller(dto["name"], dto["auth"])


def action_url(namespace: str, name: str = "") -> str:
    url = f"{API}/namespaces/{namespace}/actions"
    return f"{url}/{name}" if name else url


def node_action(code: str = HELLO, **fields: Any) -> dict[str, Any]:
    """An action PUT body as `wsk` and the openwhisk npm client send it."""
    return {"exec": {"kind": "nodejs:default", "code": code}, **fields}


def annotations(entity: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: a["value"] for a in entity["annotations"]}


def assert_error(response: httpx.Response, status: int, message: str | None = None) -> str:
    """`response` is an OpenWhisk API error: exactly `{error, code}`, `code` being the
    request id. Returns the error text (compared exactly when `message` is given)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "code"}, body
    assert body["code"] == response.headers["x-request-id"], body
    if message is not None:
        assert body["error"] == message
    return str(body["error"])


def not_authorized(path: str) -> str:
    return f"The supplied authentication is not authorized to access '{path}'."


@dataclass
class Actions:
    """The action routes of one namespace segment, called with one caller's credentials."""

    client: httpx.AsyncClient
    caller: Caller
    namespace: str = "_"

    def url(self, name: str = "") -> str:
        return action_url(self.namespace, name)

    async def put(self, name: str, body: Any, **query: str) -> httpx.Response:
        return await self.client.put(
            self.url(name), json=body, params=query, headers=self.caller.headers
        )

    async def get(self, name: str = "", **query: str) -> httpx.Response:
        return await self.client.get(self.url(name), params=query, headers=self.caller.headers)

    async def delete(self, name: str) -> httpx.Response:
        return await self.client.delete(self.url(name), headers=self.caller.headers)

    async def post(self, name: str, body: Any = None, **query: str) -> httpx.Response:
        return await self.client.post(
            self.url(name), json={} if body is None else body, params=query,
            headers=self.caller.headers,
        )  # fmt: skip

    async def create(self, name: str, body: Any = None) -> dict[str, Any]:
        response = await self.put(name, node_action() if body is None else body)
        assert response.status_code == 200, response.text
        created: dict[str, Any] = response.json()
        return created

    async def names(self, name: str = "", **query: str) -> list[str]:
        response = await self.get(name, **query)
        assert response.status_code == 200, response.text
        return [a["name"] for a in response.json()]
