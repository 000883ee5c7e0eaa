"""Packages through the OpenWhisk API (`acme` and `globex` come from
tests/controller/api/conftest.py, `engine_caller` from tests/controller/conftest.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.controller.api.openwhisk.support import API, Caller


@pytest.fixture
def put_package(client: httpx.AsyncClient) -> Callable[..., Awaitable[None]]:
    """`await put_package(caller, "tools", publish=True)`: a package through the OpenWhisk API."""

    async def make(caller: Caller, name: str, **fields: Any) -> None:
        response = await client.put(
            f"{API}/namespaces/_/packages/{name}", json=fields, headers=caller.headers
        )
        assert response.status_code == 200, response.text

    return make
