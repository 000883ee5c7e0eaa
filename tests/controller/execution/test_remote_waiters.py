"""A blocking caller waiting in one controller while another records (controller.execution):
the invoker publishes the answer straight to the waiting controller's `replies` channel, before
it collects logs and before the result enters the results stream; the record follows, written
by whichever controller's recorder reads the result.

End to end on each database backend: controllers A and B over one database and Redis prefix,
one in-process invoker (process sandbox), as test_cache builds them. B's recorder is stopped in
every test, so a caller waiting in B is never woken by its own recorder: its answer comes from
the invoker (or, were that lost, from A's reply once A has recorded)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from redis.asyncio import Redis

from controller.execution.tasks import cancel_all
from controller.settings import Settings
from homerun.cli import main
from invoker.protocol import FIELD, Keys, Outcome, live_invokers
from tests.conftest import REDIS_URL, Headers, _reset
from tests.controller.execution.test_cache import (
    ALICE,
    RECORDER_TASK,
    Controller,
    _controllers,
    basic,
    ok,
)

# Below the executor's DB poll interval (`_DB_POLL_S`, 5 s): a waiter that is not woken reads
# the database once, at this deadline, and answers 202 unless the record is there by then.
WAIT_MS = 3_000
LINE = "greeting the caller"
ACTIONS = {
    "greet": f"function main(p) {{ console.log({LINE!r}); return {{greeting: 'hi ' + p.name}}; }}",
    "fail": f"function main(p) {{ console.log({LINE!r}); return {{error: 'no ' + p.name}}; }}",
}
GREETING = {"greeting": "hi ada"}


@dataclass
class Pair:
    """Controllers A and B (whose recorder is stopped), acme-int1's `uuid:key`."""

    a: Controller
    b: Controller
    redis: Redis
    keys: Keys
    settings: Settings
    auth: str
    warm_ups: set[str]  # activations that started the containers, before each test

    async def invoke(self, name: str) -> Any:
        """A blocking invoke through B; the activation JSON it answers with (200 or 502)."""
        response = await self.b.http.post(
            f"/api/v1/namespaces/_/actions/{name}", json={"name": "ada"},
            headers=basic(self.auth), params={"blocking": "true"}, timeout=30,
        )  # fmt: skip
        expected = 200 if name == "greet" else 502
        assert response.status_code == expected, response.text  # 202: B was never woken
        return response.json()

    async def record(self, activation_id: str) -> httpx.Response:
        return await self.a.http.get(
            f"/api/v1/namespaces/_/activations/{activation_id}", headers=basic(self.auth)
        )

    async def records(self) -> list[Any]:
        """The test's own records (not the warm-ups')."""
        found: list[Any] = ok(
            await self.a.http.get("/api/v1/namespaces/_/activations", headers=basic(self.auth))
        )
        return [r for r in found if r["activationId"] not in self.warm_ups]

    async def completed(self, activation_id: str) -> None:
        """Until the invoker has handed the result over: its entry leaves the invoker's queue
        as the result enters the results stream, in one script (COMPLETE_SCRIPT). (It joins
        the running set only once its container is ready, so that says nothing before.)"""
        (invoker,) = await live_invokers(self.redis, self.keys)
        queue = self.keys.queue(invoker.id)

        async def handed_over() -> bool:
            entries = await self.redis.xrange(queue)
            held = (fields.get(FIELD.encode(), b"") for _, fields in entries)
            return not any(activation_id.encode() in raw for raw in held)

        await _until(handed_over, f"the invoker did not complete {activation_id}")

    async def recorded(self, activation_id: str) -> None:
        """Until its result is recorded (or dropped): a recorder deletes a result from the
        stream only once its transaction committed."""
        await self.completed(activation_id)

        async def stream_empty() -> bool:
            return await self.redis.xlen(self.keys.results) == 0

        await _until(stream_empty, f"the result of {activation_id} was not recorded")


async def _until(condition: Callable[[], Awaitable[bool]], failure: str) -> None:
    for _ in range(200):
        if await condition():
            return
        await asyncio.sleep(0.05)
    pytest.fail(failure)


def _recorder_of(controller: Controller) -> asyncio.Task[None]:
    executor = controller.state.require_entry().executor
    (task,) = [t for t in executor._tasks if t.get_name() == RECORDER_TASK and not t.done()]
    return task


async def stop_recorder(controller: Controller) -> None:
    """Cancel the task the executor runs its recorder in: the controller still accepts, and
    wakes its waiters from its `replies` channel, but reads no result from the stream (nothing
    else could make it unable to record without also breaking its database or its Redis)."""
    task = _recorder_of(controller)
    await cancel_all([task])
    assert task.cancelled()


def start_recorder(controller: Controller) -> None:
    """A recorder again, as `Executor.start` runs it (and among its tasks, so `stop` ends it)."""
    executor = controller.state.require_entry().executor
    executor._tasks.append(asyncio.create_task(executor.recorder.run(), name=RECORDER_TASK))


async def keep_blocking_successes(settings: Settings, namespace: str, keep: bool) -> None:
    """`homerun admin namespace keep-blocking-successes NAMESPACE true|false`, the CLI itself
    (in a thread: it runs its own event loop)."""
    env = {
        "HOMERUN_DATABASE_URL": settings.database_url,
        "HOMERUN_DATA_DIR": str(settings.data_dir),
    }
    args = ["admin", "namespace", "keep-blocking-successes", namespace, str(keep).lower()]
    done = await asyncio.to_thread(CliRunner().invoke, main, args, env=env)
    assert done.exit_code == 0, done.output


@pytest.fixture
async def pair(
    settings: Settings,
    redis_prefix: str,
    issue: Callable[..., Awaitable[Headers]],
    tmp_path: Path,
) -> AsyncIterator[Pair]:
    limits = settings.limits.model_copy(update={"blocking_wait_ms": WAIT_MS})
    engine_settings = settings.model_copy(
        update={"redis_url": REDIS_URL, "key_prefix": redis_prefix, "limits": limits}
    )
    await _reset(engine_settings)
    admin = await issue(admin=True)
    async with _controllers(engine_settings, redis_prefix, 2, tmp_path) as (a, b):
        created = await a.http.post("/runtime/admin/namespaces/acme/int1", headers=admin)
        auth = ok(created)["auth"]
        for name, code in ACTIONS.items():
            body = {"exec": {"kind": "nodejs:18", "code": code}}
            put = await a.http.put(
                f"/api/v1/namespaces/_/actions/{name}", json=body, headers=basic(auth)
            )
            ok(put)
        redis = Redis.from_url(REDIS_URL)
        try:
            # Warm both actions (through A, recorded) so that no cold start, slow on a busy
            # machine, meets the short blocking wait of the measured calls.
            warm_ups = set()
            for name in ACTIONS:
                started = await a.http.post(
                    f"/api/v1/namespaces/_/actions/{name}", json={"name": "warm"},
                    headers=basic(auth), params={"blocking": "false"},
                )  # fmt: skip
                assert started.status_code == 202, started.text
                warm_ups.add(started.json()["activationId"])
            pair = Pair(a, b, redis, Keys(redis_prefix), engine_settings, auth, warm_ups)
            for activation_id in warm_ups:
                await pair.recorded(activation_id)
            await stop_recorder(b)
            yield pair
        finally:
            await redis.aclose()


async def test_the_answer_comes_while_no_controller_records(pair: Pair) -> None:
    await stop_recorder(pair.a)  # no recorder runs anywhere now
    answer = await pair.invoke("greet")
    assert answer["response"]["result"] == GREETING
    activation_id = answer["activationId"]
    # The answer cannot have been read from a record: its result sits in the stream unread.
    await pair.completed(activation_id)
    assert await pair.redis.xlen(pair.keys.results) == 1
    assert (await pair.record(activation_id)).status_code == 404

    start_recorder(pair.a)
    await pair.recorded(activation_id)
    assert ok(await pair.record(activation_id))["response"]["result"] == GREETING


async def test_dropped_blocking_success_is_answered_and_not_recorded(pair: Pair) -> None:
    """The bug this guards against: B's waiter was woken only to read a record that A, the
    recorder, never writes for such a namespace; it polled until its deadline and answered 202."""
    await keep_blocking_successes(pair.settings, ALICE, False)
    answer = await pair.invoke("greet")
    assert answer["response"]["result"] == GREETING
    await pair.recorded(answer["activationId"])
    assert (await pair.record(answer["activationId"])).status_code == 404

    failed = await pair.invoke("fail")
    assert failed["response"]["result"] == {"error": "no ada"}
    await pair.recorded(failed["activationId"])
    kept = ok(await pair.record(failed["activationId"]))
    assert kept["response"]["status"] == Outcome.APPLICATION_ERROR.value
    assert [r["activationId"] for r in await pair.records()] == [failed["activationId"]]


async def test_kept_blocking_success_is_answered_and_recorded_once(pair: Pair) -> None:
    answer = await pair.invoke("greet")
    assert answer["response"]["result"] == GREETING
    await pair.recorded(answer["activationId"])
    assert [r["activationId"] for r in await pair.records()] == [answer["activationId"]]
    assert ok(await pair.record(answer["activationId"]))["response"]["result"] == GREETING


async def test_the_answer_has_no_logs_and_the_record_has_them(pair: Pair) -> None:
    """The answer left the invoker before it collected the logs: had it been read from the
    record (A's reply, or B's poll of the database), it would carry them."""
    answer = await pair.invoke("greet")
    assert answer["logs"] == []
    await pair.recorded(answer["activationId"])
    logs = ok(await pair.record(answer["activationId"]))["logs"]
    assert [line.split(" stdout: ", 1)[1] for line in logs] == [LINE]
