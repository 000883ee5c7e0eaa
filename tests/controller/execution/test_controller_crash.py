"""A controller killed with SIGKILL loses nothing: the blocking invocations it accepted run and
are recorded once (by the surviving controller), and each sequence it was running is recorded
once, as failed, naming the components it started, so that no component record is an orphan."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from controller.db.models import ActivationRow
from controller.execution.journal import ORPHANED
from controller.settings import Settings
from controller.setup import in_transaction
from invoker.protocol import Keys, Outcome
from tests.conftest import REDIS_URL, Headers
from tests.controller.api.openwhisk.support import API, basic
from tests.homerun.support import free_port
from tests.invoker.test_crash_safety import SLEEPY, running_cluster

pytestmark = pytest.mark.slow

IN_FLIGHT = 8  # the two invokers' slots: all of them running when the controller dies


async def start_controller(settings: Settings) -> tuple[subprocess.Popen[bytes], str]:
    """`homerun controller` on the cluster's database and Redis: the one that is killed."""
    port = free_port()
    env = {
        **os.environ,
        "HOMERUN_DATABASE_URL": settings.effective_database_url,
        "HOMERUN_DATA_DIR": tempfile.mkdtemp(prefix="hrctl"),
        "HOMERUN_REDIS_URL": str(settings.redis_url),
        "HOMERUN_KEY_PREFIX": settings.key_prefix,
        "HOMERUN_PORT": str(port),
        "HOMERUN_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen([sys.executable, "-m", "homerun.cli", "controller"], env=env)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            try:
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return process, url
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    process.kill()
    pytest.fail("the controller did not start")


@pytest.fixture
async def cluster(
    settings: Settings, redis_prefix: str, issue: Callable[..., Awaitable[Headers]]
) -> AsyncIterator[dict[str, Any]]:
    """The crash-safety cluster (a controller in this process, two invokers), a second
    controller as a process, and the namespace's `sleepy` action and a sequence of two."""
    async with running_cluster(settings, REDIS_URL, redis_prefix, issue) as running:
        http: httpx.AsyncClient = running["http"]
        found = await http.get("/runtime/admin/namespaces/acme/int1", headers=running["headers"])
        auth = basic(found.json()["auth"])
        actions = f"{API}/namespaces/_/actions"
        bodies = {
            "sleepy": {"exec": {"kind": "nodejs:18", "code": SLEEPY}},
            "twice": {"exec": {"kind": "sequence", "components": ["/_/sleepy", "/_/sleepy"]}},
        }
        for name, body in bodies.items():
            response = await http.put(f"{actions}/{name}", json=body, headers=auth)
            assert response.status_code == 200, response.text
        process, url = await start_controller(running["settings"])
        try:
            yield {**running, "auth": auth, "doomed": process, "doomed_url": url}
        finally:
            process.kill()
            process.wait()


async def rows(settings: Settings, **where: Any) -> list[ActivationRow]:
    async def query(session: Any) -> list[ActivationRow]:
        statement = select(ActivationRow)
        for column, values in where.items():
            statement = statement.where(getattr(ActivationRow, column).in_(values))
        return list(await session.scalars(statement))

    return await in_transaction(settings, query)


async def until_running(cluster: dict[str, Any], count: int) -> None:
    keys: Keys = cluster["keys"]
    for _ in range(300):
        running = [await cluster["redis"].hlen(keys.running(i)) for i in cluster["invokers"]]
        if sum(running) >= count:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{count} activations never ran at once")


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 60) -> None:
    for _ in range(int(timeout_s * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    assert await check()


async def test_blocking_calls_of_a_killed_controller_are_recorded_once(
    cluster: dict[str, Any],
) -> None:
    settings: Settings = cluster["settings"]
    url = f"{cluster['doomed_url']}{API}/namespaces/_/actions/sleepy?blocking=true"

    async def call(n: int) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            await http.post(url, json={"n": n}, headers=cluster["auth"])

    calls = [asyncio.create_task(call(n)) for n in range(IN_FLIGHT)]
    await until_running(cluster, IN_FLIGHT)
    cluster["doomed"].send_signal(signal.SIGKILL)
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(o, httpx.HTTPError) for o in outcomes), outcomes  # cut off

    async def all_recorded() -> bool:
        return len(await rows(settings, name=["sleepy"])) >= IN_FLIGHT

    await until(all_recorded)
    await asyncio.sleep(2)  # time for a duplicate to show, were there one
    recorded = await rows(settings, name=["sleepy"])
    assert sorted(r.response["result"]["n"] for r in recorded) == list(range(IN_FLIGHT))
    assert {r.status_code for r in recorded} == {0}


async def test_sequences_of_a_killed_controller_are_recorded_once_with_their_components(
    cluster: dict[str, Any],
) -> None:
    settings: Settings = cluster["settings"]
    url = f"{cluster['doomed_url']}{API}/namespaces/_/actions/twice?blocking=false"
    ids = []
    async with httpx.AsyncClient(timeout=30) as http:
        for n in range(IN_FLIGHT):
            response = await http.post(url, json={"n": n}, headers=cluster["auth"])
            assert response.status_code == 202, response.text
            ids.append(response.json()["activationId"])
    await until_running(cluster, IN_FLIGHT)  # every first component
    cluster["doomed"].send_signal(signal.SIGKILL)

    async def all_recorded() -> bool:
        sequences = await rows(settings, activation_id=ids)
        components = await rows(settings, cause=ids)
        return len(sequences) == IN_FLIGHT and len(components) >= IN_FLIGHT

    await until(all_recorded)
    await asyncio.sleep(2)  # time for a duplicate, or a second component, to show
    sequences = {r.activation_id: r for r in await rows(settings, activation_id=ids)}
    components = await rows(settings, cause=ids)
    assert set(sequences) == set(ids)
    for record in sequences.values():
        assert record.status_code == Outcome.INTERNAL_ERROR.status_code
        assert record.response["result"] == {"error": ORPHANED}
    # Each component record is one its sequence's record names: none is an orphan.
    assert len(components) == IN_FLIGHT
    for component in components:
        assert component.cause is not None
        assert component.activation_id in sequences[component.cause].logs
        assert component.status_code == 0
