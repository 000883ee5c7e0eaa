"""While the database is unreachable, requests that need it get 503 with `Retry-After` and a
clear message, in each surface's error shape, never a 500."""

from __future__ import annotations

from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from controller import messages
from controller.api.app import create_app
from controller.settings import Settings

NOWHERE = "postgresql://postgres@127.0.0.1:1/homerun"  # nothing listens on port 1


async def test_an_unreachable_database_is_503(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, database_url=NOWHERE))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            for path, headers in [
                ("/api/v1/namespaces", {"Authorization": "Basic dTpr"}),  # u:k
                (
                    "/runtime/admin/namespaces/acme/int1",
                    {"Authorization": "Bearer t", "X-Api-Key": "k"},
                ),
            ]:
                response = await http.get(path, headers=headers)
                assert response.status_code == 503, response.text
                assert response.json() == {
                    "error": messages.DATABASE_UNREACHABLE,
                    "code": response.headers["x-request-id"],
                }
                assert response.headers["retry-after"] == "5"
