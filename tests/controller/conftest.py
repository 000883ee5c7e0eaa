"""The OpenWhisk credentials of the engine's namespace, for the API and execution tests."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.controller.api.openwhisk.support")

from tests.conftest import Engine  # noqa: E402
from tests.controller.api.openwhisk.support import Caller, caller_of  # noqa: E402


@pytest.fixture
async def engine_caller(engine: Engine) -> Caller:
    """The OpenWhisk credentials of the engine's namespace `acme-int1`."""
    response = await engine.client.get(
        "/runtime/admin/namespaces/acme/int1", headers=engine.headers
    )
    assert response.status_code == 200, response.text
    return caller_of(response.json())
