"""The bench as an API client: a namespace (seed admin API), actions (OpenWhisk API), and the
requests each surface's invocation takes. Setup goes through httpx; anything timed goes
through wrk or `bench.rawhttp`."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any

import httpx

from bench.load import Target
from bench.rawhttp import Endpoint, format_request

ORG = INTEGRATION = "bench"
NOOP = "function main(params) { return {}; }"
JSON = {"Content-Type": "application/json"}


class ApiError(RuntimeError):
    """The controller refused a setup request; the message carries its status and body."""

    def __init__(self, what: str, response: httpx.Response) -> None:
        super().__init__(f"{what}: {response.status_code} {response.text[:300]}")
        self.status_code = response.status_code


@dataclass(frozen=True)
class Surface:
    """How one API surface invokes an action: a path per action name, and the headers."""

    name: str
    prefix: str
    suffix: str
    headers: dict[str, str]

    def path(self, action: str) -> str:
        return f"{self.prefix}/{action}{self.suffix}"

    def target(self, base_url: str, actions: list[str]) -> Target:
        paths = [self.path(a) for a in actions]
        return Target(base_url, paths, {**self.headers, **JSON})

    def request(self, endpoint: Endpoint, action: str) -> bytes:
        headers = {**self.headers, **JSON}
        return format_request(endpoint, "POST", self.path(action), headers, b"{}")


class Api:
    def __init__(self, base_url: str, operator: dict[str, str]) -> None:
        self.base_url = base_url
        self.operator = operator
        self.http = httpx.AsyncClient(base_url=base_url, timeout=120)
        self.namespace = ""
        self.auth: dict[str, str] = {}

    async def aclose(self) -> None:
        await self.http.aclose()

    async def create_namespace(self) -> None:
        path = f"/runtime/admin/namespaces/{ORG}/{INTEGRATION}"
        response = await self.http.post(path, headers=self.operator)
        if response.status_code != 200:
            raise ApiError("creating the namespace", response)
        body = response.json()
        self.namespace = body["name"]
        basic = base64.b64encode(body["auth"].encode()).decode()
        self.auth = {"Authorization": f"Basic {basic}"}

    @property
    def openwhisk(self) -> Surface:
        """`POST /api/v1/namespaces/{ns}/actions/{name}?blocking=true` with Basic auth, as
        `wsk action invoke --blocking` sends it: the answer is the activation record."""
        prefix = f"/api/v1/namespaces/{self.namespace}/actions"
        return Surface("openwhisk", prefix, "?blocking=true", self.auth)

    @property
    def seed(self) -> Surface:
        """`POST /runtime/namespaces/{org}/{int}/actions/{name}` (blocking by default) with a
        bearer token and an API key."""
        prefix = f"/runtime/namespaces/{ORG}/{INTEGRATION}/actions"
        return Surface("seed", prefix, "", self.operator)

    async def put_action(
        self, name: str, *, code: str = NOOP, kind: str = "nodejs:22", **limits: int
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"exec": {"kind": kind, "code": code}}
        if limits:
            body["limits"] = limits
        path = f"/api/v1/namespaces/{self.namespace}/actions/{name}?overwrite=true"
        response = await self.http.put(path, json=body, headers=self.auth)
        if response.status_code != 200:
            raise ApiError(f"creating action {name}", response)
        created: dict[str, Any] = response.json()
        return created

    async def invoke(self, name: str) -> httpx.Response:
        """One blocking invocation through the OpenWhisk API (setup and warming, untimed)."""
        path = self.openwhisk.path(name)
        return await self.http.post(path, json={}, headers=self.auth)

    async def warm(self, names: list[str], parallel: int = 4) -> dict[str, int]:
        """Invoke each action once, `parallel` at a time; the count of each status code."""
        limit = asyncio.Semaphore(parallel)
        statuses: dict[str, int] = {}

        async def one(name: str) -> None:
            async with limit:
                status = str((await self.invoke(name)).status_code)
                statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(one(n) for n in names))
        return statuses
