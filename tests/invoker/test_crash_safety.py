"""Crash safety: an invoker killed with SIGKILL while it holds queued and running work loses
nothing. Every accepted invocation ends in exactly one activation record."""

from __future__ import annotations

import asyncio
import contextlib
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
from sqlalchemy import select

from controller.api.app import create_app
from controller.db.models import ActivationRow
from controller.settings import Settings
from controller.setup import in_transaction
from homerun.redisclient import connect
from invoker.protocol import Keys, live_invokers
from tests.conftest import REDIS_URL, Headers, RedisServer, _reset

pytestmark = pytest.mark.slow

SLEEPY = "function main(p) { return new Promise(r => setTimeout(() => r({n: p.n}), 1000)); }"


def start_invoker(
    invoker_id: str, prefix: str, work: Path, redis_url: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HOMERUN_REDIS_URL": redis_url,
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


@contextlib.asynccontextmanager
async def running_cluster(
    settings: Settings, redis_url: str, prefix: str, issue: Callable[..., Awaitable[Headers]]
) -> AsyncIterator[dict[str, Any]]:
    """A controller app and two invoker processes on `redis_url`, with a namespace."""
    await _reset(settings)
    settings = settings.model_copy(update={"redis_url": redis_url, "key_prefix": prefix})
    work = Path(tempfile.mkdtemp(prefix="hrc", dir="/tmp"))
    work.chmod(0o755)
    invokers = {i: start_invoker(i, prefix, work, redis_url) for i in ("crash-a", "crash-b")}
    redis = connect(redis_url)
    app = create_app(settings)
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                for _ in range(300):
                    if len(await live_invokers(redis, Keys(prefix))) == 2:
                        break
                    await asyncio.sleep(0.1)
                else:
                    pytest.fail("the invokers did not register")
                headers = await issue(admin=True)
                created = await http.post("/runtime/admin/namespaces/acme/int1", headers=headers)
                assert created.status_code == 200
                yield {
                    "http": http, "headers": headers, "redis": redis, "keys": Keys(prefix),
                    "invokers": invokers, "settings": settings,
                }  # fmt: skip
    finally:
        for process in invokers.values():
            process.kill()
            process.wait()
        # Action processes outlive a SIGKILLed invoker, as containers would: clean them up.
        subprocess.run(["pkill", "-9", "-f", str(work)], check=False)
        await redis.aclose()


@pytest.fixture
async def cluster(
    settings: Settings, redis_prefix: str, issue: Callable[..., Awaitable[Headers]]
) -> AsyncIterator[dict[str, Any]]:
    async with running_cluster(settings, REDIS_URL, redis_prefix, issue) as running:
        yield running


async def accept_sleepy(cluster: dict[str, Any], count: int) -> list[str]:
    """Create the action `sleepy` and invoke it `count` times, not blocking: the ids."""
    http: httpx.AsyncClient = cluster["http"]
    base = "/runtime/namespaces/acme/int1/actions"
    body = {"name": "sleepy", "code": SLEEPY, "exec": {"kind": "nodejs:18"}}
    assert (await http.post(base, json=body, headers=cluster["headers"])).status_code == 200
    ids = []
    for n in range(count):
        response = await http.post(
            f"{base}/sleepy", params={"blocking": "false"}, json={"n": n},
            headers=cluster["headers"],
        )  # fmt: skip
        assert response.status_code == 202, response.text
        ids.append(response.json()["activationId"])
    return ids


async def records(settings: Settings, ids: list[str]) -> list[tuple[str, int, Any]]:
    """(activation id, status code, response) of every record of `ids`."""

    async def query(session: Any) -> list[tuple[str, int, Any]]:
        rows = await session.execute(
            select(ActivationRow.activation_id, ActivationRow.status_code, ActivationRow.response)
            .where(ActivationRow.activation_id.in_(ids))
        )  # fmt: skip
        return [tuple(row) for row in rows]

    return await in_transaction(settings, query)


async def until_recorded(settings: Settings, ids: list[str], timeout_s: float = 120) -> None:
    for _ in range(int(timeout_s * 10)):
        if len(await records(settings, ids)) == len(ids):
            return
        await asyncio.sleep(0.1)
    assert len(await records(settings, ids)) == len(ids), "every accepted one has a record"


async def test_sigkill_of_an_invoker_loses_nothing(cluster: dict[str, Any]) -> None:
    keys: Keys = cluster["keys"]
    redis: Redis = cluster["redis"]
    ids = await accept_sleepy(cluster, 50)

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

    await until_recorded(cluster["settings"], ids)
    rows = await records(cluster["settings"], ids)
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


async def test_kill_9_of_redis_with_its_fsynced_append_only_file_loses_nothing(
    settings: Settings, redis_prefix: str, issue: Callable[..., Awaitable[Headers]],
    tmp_path: Path,
) -> None:  # fmt: skip
    # Redis as the standalone runs it (appendonly yes, appendfsync always), killed while the
    # invokers hold queued and running work, and started again from its file 2 s later.
    server = RedisServer(tmp_path, fsync="always")
    server.start()
    try:
        async with running_cluster(settings, server.url, redis_prefix, issue) as cluster:
            keys: Keys = cluster["keys"]
            redis: Redis = cluster["redis"]
            ids = await accept_sleepy(cluster, 50)
            for _ in range(200):
                if await redis.hlen(keys.running("crash-a")) + await redis.hlen(
                    keys.running("crash-b")
                ):
                    break
                await asyncio.sleep(0.05)
            server.kill()
            await asyncio.sleep(2)
            server.start()

            await until_recorded(cluster["settings"], ids)
            rows = await records(cluster["settings"], ids)
            assert sorted(r[0] for r in rows) == sorted(ids), "exactly one record each"
            assert [r for r in rows if r[1] != 0] == [], "every one ran to its end"
            assert sorted(r[2]["result"]["n"] for r in rows) == list(range(50))
    finally:
        server.kill()
