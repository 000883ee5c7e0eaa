"""Crash safety: an invoker killed with SIGKILL while it holds queued and running work loses
nothing. Every accepted invocation ends in exactly one activation record."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis
from sqlalchemy import func, select

from controller.api.app import create_app
from controller.db.models import ActivationRow
from controller.settings import Settings
from controller.setup import in_transaction
from invoker.protocol import Keys, live_invokers
from tests.conftest import REDIS_URL, Headers, _reset

pytestmark = pytest.mark.slow

SLEEPY = "function main(p) { return new Promise(r => setTimeout(() => r({n: p.n}), 1000)); }"


def start_invoker(invoker_id: str, prefix: str, work: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HOMERUN_REDIS_URL": REDIS_URL,
        "HOMERUN_KEY_PREFIX": prefix,
        "HOMERUN_INVOKER_ID": invoker_id,
        "HOMERUN_INVOKER_SANDBOX": "process",
        "HOMERUN_INVOKER_SLOTS": "4",
        "HOMERUN_INVOKER_HEARTBEAT_S": "0.3",
        "HOMERUN_INVOKER_ALIVE_TTL_S": "2",
        "HOMERUN_INVOKER_PREWARM": "false",
        "HOMERUN_INVOKER_WORK_DIR": str(work / invoker_id),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "homerun.cli", "invoker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
async def cluster(
    settings: Settings, redis_prefix: str, issue: Callable[..., Awaitable[Headers]]
) -> AsyncIterator[dict[str, Any]]:
    await _reset(settings)
    settings = settings.model_copy(update={"redis_url": REDIS_URL, "key_prefix": redis_prefix})
    work = Path(tempfile.mkdtemp(prefix="hrc", dir="/tmp"))
    work.chmod(0o755)
    invokers = {i: start_invoker(i, redis_prefix, work) for i in ("crash-a", "crash-b")}
    redis = Redis.from_url(REDIS_URL)
    app = create_app(settings)
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                for _ in range(300):
                    if len(await live_invokers(redis, Keys(redis_prefix))) == 2:
                        break
                    await asyncio.sleep(0.1)
                else:
                    pytest.fail("the invokers did not register")
                headers = await issue(admin=True)
                created = await http.post("/runtime/admin/namespaces/acme/int1", headers=headers)
                assert created.status_code == 200
                yield {
                    "http": http, "headers": headers, "redis": redis, "keys": Keys(redis_prefix),
                    "invokers": invokers, "settings": settings,
                }  # fmt: skip
    finally:
        for process in invokers.values():
            process.kill()
            process.wait()
        # Action processes outlive a SIGKILLed invoker, as containers would: clean them up.
        subprocess.run(["pkill", "-9", "-f", str(work)], check=False)
        await redis.aclose()


async def test_sigkill_of_an_invoker_loses_nothing(cluster: dict[str, Any]) -> None:
    http: httpx.AsyncClient = cluster["http"]
    headers = cluster["headers"]
    keys: Keys = cluster["keys"]
    redis: Redis = cluster["redis"]
    base = "/runtime/namespaces/acme/int1/actions"
    body = {"name": "sleepy", "code": SLEEPY, "exec": {"kind": "nodejs:18"}}
    assert (await http.post(base, json=body, headers=headers)).status_code == 200

    ids = []
    for n in range(50):
        response = await http.post(
            f"{base}/sleepy", params={"blocking": "false"}, json={"n": n}, headers=headers
        )
        assert response.status_code == 202, response.text
        ids.append(response.json()["activationId"])

    # Kill the invoker that holds the most work once it is running some of it.
    victim = None
    for _ in range(200):
        held = {i: await redis.xlen(keys.queue(i)) for i in cluster["invokers"]}
        running = {i: await redis.hlen(keys.running(i)) for i in cluster["invokers"]}
        candidate = max(held, key=lambda i: held[i])
        if running[candidate] > 0 and held[candidate] > running[candidate]:
            victim = candidate
            break
        await asyncio.sleep(0.05)
    assert victim is not None, "no invoker was both running and holding queued work"
    cluster["invokers"][victim].send_signal(signal.SIGKILL)
    cluster["invokers"][victim].wait()

    async def recorded() -> int:
        async def count(session: Any) -> int:
            query = select(func.count()).where(ActivationRow.activation_id.in_(ids))
            return int(await session.scalar(query) or 0)

        return await in_transaction(cluster["settings"], count)

    for _ in range(1200):
        if await recorded() == len(ids):
            break
        await asyncio.sleep(0.1)
    assert await recorded() == len(ids), "every accepted invocation has an activation record"

    async def outcomes(session: Any) -> list[tuple[str, int, Any]]:
        rows = await session.execute(
            select(ActivationRow.activation_id, ActivationRow.status_code, ActivationRow.response)
            .where(ActivationRow.activation_id.in_(ids))
        )  # fmt: skip
        return list(rows)

    rows = await in_transaction(cluster["settings"], outcomes)
    assert sorted(r[0] for r in rows) == sorted(ids), "exactly one record per invocation"
    lost = [r for r in rows if r[1] == 3]
    succeeded = [r for r in rows if r[1] == 0]
    assert len(lost) + len(succeeded) == len(ids)
    assert lost, "the invocations running on the killed invoker are recorded as lost"
    assert all(
        r[2]["result"]["error"]
        == "The action did not produce a valid response and exited unexpectedly."
        for r in lost
    )
    assert len(succeeded) > len(lost), "queued work was redelivered and ran"
    assert sorted(r[2]["result"]["n"] for r in succeeded) == sorted(
        {r[2]["result"]["n"] for r in succeeded}
    ), "nothing ran twice"
    assert not await redis.hexists(keys.invokers, victim), "the dead invoker was forgotten"
