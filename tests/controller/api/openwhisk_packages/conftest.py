"""Two namespaces, alice and bob, calling the OpenWhisk API with their own credentials."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.controller.api.openwhisk_packages.support import Caller


@pytest.fixture
async def alice(
    client: httpx.AsyncClient, create_namespace: Callable[[str, str], Awaitable[dict[str, Any]]]
) -> Caller:
    return Caller(client, await create_namespace("alice", "int1"))


@pytest.fixture
async def bob(
    client: httpx.AsyncClient, create_namespace: Callable[[str, str], Awaitable[dict[str, Any]]]
) -> Caller:
    return Caller(client, await create_namespace("bob", "int1"))
