"""Namespace throttles hold across controller replicas: two controller processes share one Redis
and one database, and the limits count requests to both."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from controller.domain import TokenScope
from controller.services import credentials
from controller.settings import Settings
from controller.setup import in_transaction, upgrade_database
from invoker.protocol import InvokerInfo, Keys
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def replicas(redis_prefix: str) -> Iterator[dict[str, Any]]:
    """Two `homerun controller` processes on one SQLite database and one Redis prefix, with
    5 invocations per minute and 3 in flight allowed per namespace."""
    data = Path(tempfile.mkdtemp(prefix="hrt", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMERUN_")} | {
        "HOMERUN_DATA_DIR": str(data),
        "HOMERUN_REDIS_URL": REDIS_URL,
        "HOMERUN_KEY_PREFIX": redis_prefix,
        "HOMERUN_LIMITS__INVOCATIONS_PER_MINUTE": "5",
        "HOMERUN_LIMITS__CONCURRENT_INVOCATIONS": "3",
        "HOMERUN_LOG_LEVEL": "warning",
        "HOMERUN_SECRET_KEYS": os.environ["HOMERUN_SECRET_KEYS"],  # as the database's
    }
    upgrade_database(Settings(data_dir=data))
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "homerun.cli", "controller"],
            env=env | {"HOMERUN_PORT": str(port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port in ports:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                pytest.fail(f"controller on {port} did not start")
        yield {
            "urls": [f"http://127.0.0.1:{p}" for p in ports],
            "data": data,
            "prefix": redis_prefix,
        }
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


@pytest.fixture
async def idle_invoker(redis_prefix: str) -> AsyncIterator[None]:
    """A registered, heartbeating invoker that takes nothing: accepted work stays in flight."""
    keys = Keys(redis_prefix)
    redis = Redis.from_url(REDIS_URL)
    info = InvokerInfo(id="idle", slots=100, memory_mb=1024, sandbox="none", started=0, heartbeat=0)
    await redis.hset(keys.invokers, "idle", info.encode())

    async def beat() -> None:
        while True:
            await redis.set(keys.alive("idle"), "1", px=2000)
            await asyncio.sleep(0.5)

    task = asyncio.create_task(beat())
    await asyncio.sleep(0.1)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await redis.aclose()


async def setup_namespace(data: Path, url: str) -> dict[str, str]:
    async def issue(session: Any) -> dict[str, str]:
        _, token = await credentials.create_token(session, TokenScope.ADMIN)
        _, key = await credentials.create_api_key(session)
        return {"Authorization": f"Bearer {token}", "X-Api-Key": key}

    headers = await in_transaction(Settings(data_dir=data), issue)
    async with httpx.AsyncClient(headers=headers) as http:
        assert (await http.post(f"{url}/runtime/admin/namespaces/acme/int1")).status_code == 200
        body = {
            "name": "noop",
            "code": "function main() { return {}; }",
            "exec": {"kind": "nodejs:18"},
        }
        created = await http.post(f"{url}/runtime/namespaces/acme/int1/actions", json=body)
        assert created.status_code == 200
    return headers


async def test_limits_hold_across_two_controllers(
    replicas: dict[str, Any], idle_invoker: None
) -> None:
    urls = replicas["urls"]
    headers = await setup_namespace(replicas["data"], urls[0])
    path = "/runtime/namespaces/acme/int1/actions/noop?blocking=false"
    while time.time() % 60 > 45:  # all nine requests must fall in one calendar minute
        await asyncio.sleep(1)
    responses = []
    async with httpx.AsyncClient(headers=headers) as http:
        for i in range(6):  # alternate between the replicas
            responses.append(await http.post(urls[i % 2] + path, json={}))
    assert [r.status_code for r in responses] == [202, 202, 202, 429, 429, 429]
    assert {r.json()["error"] for r in responses[3:]} == {
        "Too many concurrent requests in flight (count: 3, allowed: 3)."
    }, "3 in flight are allowed across both replicas"
    # The three in flight end; the refused ones used none of the minute's five.
    redis = Redis.from_url(REDIS_URL)
    try:
        inflight = [k async for k in redis.scan_iter(f"{replicas['prefix']}:*inflight*")]
        assert len(inflight) == 1
        await redis.delete(*inflight)
    finally:
        await redis.aclose()
    async with httpx.AsyncClient(headers=headers) as http:
        later = [await http.post(urls[i % 2] + path, json={}) for i in range(3)]
    assert [r.status_code for r in later] == [202, 202, 429]
    assert later[2].json()["error"] == (
        "Too many requests in the last minute (count: 6, allowed: 5)."
    )
