"""Packages and the engine's namespace through the OpenWhisk API (`acme` and `globex` come
from tests/controller/api/conftest.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Engine
from tests.controller.api.openwhisk.support import API, Caller, caller_of


@pytest.fixture
def put_package(client: httpx.AsyncClient) -> Callable[..., Awaitable[None]]:
    """`await put_package(caller, "tools", publish=True)`: a package through the OpenWhisk API."""

    async def make(caller: Caller, name: str, **fields: Any) -> None:
        response = await client.put(
            f"{API}/namespaces/_/packages/{name}", json=fields, headers=caller.headers
        )
        assert response.status_code == 200, response.text

    return make


@pytest.fixture
async def engine_caller(engine: Engine) -> Caller:
    """The OpenWhisk credentials of the engine's namespace `acme-int1`."""
    response = await engine.client.get(
        "/runtime/admin/namespaces/acme/int1", headers=engine.headers
    )
    assert response.status_code == 200, response.text
    return caller_of(response.json())
