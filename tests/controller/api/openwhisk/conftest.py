"""Namespaces with OpenWhisk credentials, over the plain app (`client`) or the engine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

pytest.register_assert_rewrite("tests.controller.api.openwhisk.support")

from tests.conftest import Engine  # noqa: E402
from tests.controller.api.openwhisk.support import API, Caller, caller_of  # noqa: E402

CreateNamespace = Callable[[str, str], Awaitable[dict[str, Any]]]


@pytest.fixture
async def acme(create_namespace: CreateNamespace) -> Caller:
    return caller_of(await create_namespace("acme", "int1"))


@pytest.fixture
async def globex(create_namespace: CreateNamespace) -> Caller:
    """A second namespace, to check that namespaces are kept apart."""
    return caller_of(await create_namespace("globex", "int2"))


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
