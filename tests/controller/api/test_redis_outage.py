"""While Redis is down, callers get 503 with `Retry-After` and a clear message, never a 500;
once it is back (here: restarted empty), the same controller serves again by itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from controller import messages
from controller.api.app import create_app
from controller.settings import Settings
from tests.conftest import RedisServer, _reset

NO_INVOKERS = "No invokers are available to run the action; try again later."


async def test_a_redis_outage_is_503_and_passes(
    settings: Settings, redis_server: RedisServer, issue: Callable[..., Awaitable[Any]]
) -> None:
    await _reset(settings)
    app = create_app(settings.model_copy(update={"redis_url": redis_server.url}))
    headers = await issue(admin=True)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            made = await http.post("/runtime/admin/namespaces/acme/int1", headers=headers)
            assert made.status_code == 200, made.text
            base = "/runtime/namespaces/acme/int1/actions"
            action = {"name": "noop", "code": "function main() {}", "exec": {"kind": "nodejs:18"}}
            assert (await http.post(base, json=action, headers=headers)).status_code == 200

            async def invoke() -> httpx.Response:
                return await http.post(f"{base}/noop?blocking=false", json={}, headers=headers)

            before = await invoke()  # Redis answers; no invoker runs
            assert before.status_code == 503 and before.json()["error"] == NO_INVOKERS

            redis_server.kill()
            for _ in range(3):
                down = await invoke()
                assert down.status_code == 503, down.text
                assert down.json() == {
                    "error": messages.REDIS_UNREACHABLE,
                    "code": down.headers["x-request-id"],
                }
                assert down.headers["retry-after"] == "5"

            redis_server.start()  # empty: no invoker, no revision, no consumer group
            after = await invoke()
            assert after.status_code == 503 and after.json()["error"] == NO_INVOKERS
            assert after.headers["retry-after"] == "5"
