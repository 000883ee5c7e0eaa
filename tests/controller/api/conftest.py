"""Namespaces with OpenWhisk `uuid:key` credentials (what the OpenWhisk and State APIs take),
over the plain app (`client`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.controller.api.openwhisk.support import Caller, caller_of

CreateNamespace = Callable[[str, str], Awaitable[dict[str, Any]]]


@pytest.fixture
async def acme(create_namespace: CreateNamespace) -> Caller:
    return caller_of(await create_namespace("acme", "int1"))


@pytest.fixture
async def globex(create_namespace: CreateNamespace) -> Caller:
    """A second namespace, to check that namespaces are kept apart."""
    return caller_of(await create_namespace("globex", "int2"))
