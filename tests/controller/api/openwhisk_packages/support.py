"""Helpers of the packages tests: a caller with Basic credentials, and response checks."""

from __future__ import annotations

import base64
from typing import Any

import httpx

Json = dict[str, Any]
NODE_CODE = "function main(p) { return {payload: 'hi ' + p.name} }"

NOT_FOUND = "The requested resource does not exist."
EXISTS = "resource already exists"
NOT_IN_COLLECTION = "Resource by this name exists but is not in this collection."
TARGET_MISSING = "Binding references a package that does not exist."
TO_BINDING = "Cannot bind to another package binding."
TO_NON_PACKAGE = "Cannot bind to a resource that is not a package."
PACKAGE_TO_BINDING = "Resource is a package and cannot be converted into a binding."


class Caller:
    """One namespace calling `/api/v1/namespaces/...` with its own `uuid:key`."""

    def __init__(self, client: httpx.AsyncClient, namespace: Json) -> None:
        self.client = client
        self.name: str = namespace["name"]
        token = base64.b64encode(namespace["auth"].encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    async def request(
        self, method: str, path: str, body: Any = None, **params: str
    ) -> httpx.Response:
        return await self.client.request(
            method,
            f"/api/v1/namespaces/{path}",
            json=body,
            params=params,
            headers=self.headers,
        )

    async def put_package(
        self, name: str, body: Any = None, ns: str = "_", **params: str
    ) -> httpx.Response:
        return await self.request("PUT", f"{ns}/packages/{name}", body or {}, **params)

    async def get_package(self, name: str, ns: str = "_") -> httpx.Response:
        return await self.request("GET", f"{ns}/packages/{name}")

    async def delete_package(self, name: str, ns: str = "_", **params: str) -> httpx.Response:
        return await self.request("DELETE", f"{ns}/packages/{name}", **params)

    async def list_packages(self, ns: str = "_", **params: str) -> httpx.Response:
        return await self.request("GET", f"{ns}/packages", **params)

    async def put_action(self, name: str, code: str = NODE_CODE, **fields: Any) -> httpx.Response:
        body = {"exec": {"kind": "nodejs:default", "code": code}, **fields}
        return await self.request("PUT", f"_/actions/{name}", body)


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def error(response: httpx.Response, status: int) -> str:
    """Assert an OpenWhisk error response of `status`; return its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "code"}
    assert body["code"] == response.headers["x-request-id"]
    message: str = body["error"]
    return message


def forbidden(path: str) -> str:
    return f"The supplied authentication is not authorized to access '{path}'."


def kv(**pairs: Any) -> list[Json]:
    return [{"key": k, "value": v} for k, v in pairs.items()]


def as_dict(pairs: list[Json]) -> dict[str, Any]:
    return {p["key"]: p["value"] for p in pairs}


def binding_to(namespace: str, name: str, **fields: Any) -> Json:
    return {"binding": {"namespace": namespace, "name": name}, **fields}
