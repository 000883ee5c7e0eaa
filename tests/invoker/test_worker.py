"""The invoker worker and runner (invoker/worker.py, invoker/runner.py) on a real Redis and the
process sandbox, without a controller: invocations are written to the queue by hand and results
read back from the results stream."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from homerun.redisclient import connect
from invoker import messages, wirejson
from invoker.codecache import CodeCache
from invoker.pool import ContainerPool
from invoker.protocol import (
    FIELD,
    INVOKER_GROUP,
    ActionLimitsMsg,
    ActionRef,
    Invocation,
    InvokerInfo,
    Keys,
    Outcome,
    Reason,
    Result,
)
from invoker.runner import Runner, now_ms
from invoker.worker import Worker
from tests.conftest import REDIS_URL, SANDBOXES, RedisServer, make_sandbox

NODE = ("nodejs:18", "homerun/action-nodejs-v18:latest")
PYTHON = ("python:3.11", "homerun/action-python-v311:latest")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr): (.*)$")
HELLO = """
function main(p) {
  console.log("hello " + p.name);
  console.error("to stderr");
  return {greeting: "Hello, " + p.name, ns: process.env.__OW_NAMESPACE,
          id: process.env.__OW_ACTIVATION_ID};
}
"""


def sleepy(ms: int) -> str:
    return f"function main(p) {{ return new Promise(r => setTimeout(() => r({{n: p.n}}), {ms})); }}"


def texts(result: Result) -> list[tuple[str, str]]:
    out = []
    for line in result.logs:
        match = LOG_LINE.match(line)
        assert match is not None, f"badly formatted log line {line!r}"
        out.append((match[1], match[2]))
    return out


class Harness:
    """Workers on private keys, and the queue and results streams they use."""

    def __init__(self, redis: Redis, keys: Keys, tmp_path: Path) -> None:
        self.redis = redis
        self.keys = keys
        self.tmp_path = tmp_path
        self.workers: list[Worker] = []
        self.runs: list[asyncio.Task[None]] = []

    def worker(
        self, invoker_id: str = "inv-1", *, slots: int = 4, redis: Redis | None = None,
        budget_mb: int = 2048, sandbox: str = "process", pause_grace_s: float = 10.0,
        **options: Any,
    ) -> Worker:  # fmt: skip
        redis = redis or self.redis
        pool = ContainerPool(
            make_sandbox(sandbox, self.tmp_path, invoker_id), budget_mb,
            pause_grace_s=pause_grace_s,
        )  # fmt: skip
        runner = Runner(pool, CodeCache(redis, self.keys), invoker_id, log_wait_s=2.0)
        settings: dict[str, Any] = {
            "slots": slots, "memory_mb": 2048, "heartbeat_s": 0.2, "alive_ttl_s": 1.0,
            "drain_timeout_s": 20.0, "block_ms": 50, "prewarm": False, **options,
        }  # fmt: skip
        worker = Worker(redis, self.keys, invoker_id, runner, pool, **settings)
        self.workers.append(worker)
        return worker

    def start(self, worker: Worker) -> asyncio.Task[None]:
        task = asyncio.create_task(worker.run())
        self.runs.append(task)
        return task

    async def burst(self, worker: Worker) -> None:
        await asyncio.wait_for(worker.run(burst=True), 30)

    async def store(self, code: str) -> str:
        digest = hashlib.sha256(code.encode()).hexdigest()
        await self.redis.set(self.keys.code(digest), code)
        return digest

    async def invocation(
        self, code: str | None, params: dict[str, Any] | None = None, *,
        runtime: tuple[str, str] = NODE, timeout_ms: int = 10_000, digest: str | None = None,
        accepted_at: int | None = None, concurrency: int = 1,
    ) -> Invocation:  # fmt: skip
        if code is not None:
            digest = await self.store(code)
        limits = ActionLimitsMsg(timeout=timeout_ms, memory=128, logs=1, concurrency=concurrency)
        ref = ActionRef(
            namespace="acme", name="act", version="0.0.1", kind=runtime[0], image=runtime[1],
            code_digest=digest, limits=limits,
        )  # fmt: skip
        return Invocation(
            activation_id=uuid.uuid4().hex, transaction_id="tx", namespace="guest",
            subject="tester", action=ref, params=params or {}, api_host="http://api",
            cause="c" * 32, reply_to="ctl-1", accepted_at=accepted_at or now_ms(),
        )  # fmt: skip

    async def enqueue(self, invoker_id: str, *invocations: Invocation) -> list[str]:
        ids = []
        for inv in invocations:
            entry_id = await self.redis.xadd(self.keys.queue(invoker_id), {FIELD: inv.encode()})
            ids.append(entry_id.decode())
        return ids

    async def results(self) -> list[Result]:
        entries = await self.redis.xrange(self.keys.results, "-", "+")
        return [Result.decode(fields[FIELD.encode()]) for _, fields in entries]

    async def queued(self, invoker_id: str) -> list[Invocation]:
        entries = await self.redis.xrange(self.keys.queue(invoker_id), "-", "+")
        return [Invocation.decode(fields[FIELD.encode()]) for _, fields in entries]

    async def register_fake(self, invoker_id: str) -> None:
        """A live invoker that never reads its queue."""
        info = InvokerInfo(
            id=invoker_id, slots=4, memory_mb=1024, sandbox="process", started=now_ms(),
            heartbeat=now_ms(),
        )  # fmt: skip
        await self.redis.hset(self.keys.invokers, invoker_id, info.encode())
        await self.redis.set(self.keys.alive(invoker_id), "1", px=60_000)

    async def until(self, check: Any, timeout_s: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            value = await check()
            if value:
                return value
            assert time.monotonic() < deadline, "condition not reached in time"
            await asyncio.sleep(0.02)


@pytest.fixture
async def harness(redis_prefix: str, tmp_path: Path) -> AsyncIterator[Harness]:
    redis = Redis.from_url(REDIS_URL)
    harness = Harness(redis, Keys(redis_prefix), tmp_path)
    try:
        yield harness
    finally:
        for worker in harness.workers:
            worker.stop()
        if harness.runs:
            _, stuck = await asyncio.wait(harness.runs, timeout=30)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*harness.runs, return_exceptions=True)
        for worker in harness.workers:
            await worker.pool.close()
        await redis.aclose()


def by_id(results: list[Result]) -> dict[str, Result]:
    found = {r.activation_id: r for r in results}
    assert len(found) == len(results), "an activation has more than one result"
    return found


# Running invocations.


async def test_stem_cells_start_once_a_controller_publishes_the_manifest(
    harness: Harness,
) -> None:
    worker = harness.worker(prewarm=True)
    harness.start(worker)
    await asyncio.sleep(0.5)  # it started first: nothing to prewarm yet
    assert worker.pool.stats().stem_cells == 0

    cell = {"count": 1, "memory": 128}
    manifest = {"runtimes": {"python": [{"kind": PYTHON[0], "image": PYTHON[1],
                                         "stemCells": [cell]}]}}  # fmt: skip
    await harness.redis.set(harness.keys.runtimes, json.dumps(manifest))

    for _ in range(100):
        if worker.pool.stats().stem_cells == 1:
            break
        await asyncio.sleep(0.1)
    assert worker.pool.stats().stem_cells == 1


async def test_a_node_action_runs_cold_then_warm(harness: Harness) -> None:
    worker = harness.worker(slots=1)
    cold = await harness.invocation(HELLO, {"name": "World"}, accepted_at=now_ms() - 1_500)
    warm = await harness.invocation(HELLO, {"name": "Again"})
    await harness.enqueue("inv-1", cold, warm)
    await harness.burst(worker)

    results = await harness.results()
    assert [r.activation_id for r in results] == [cold.activation_id, warm.activation_id]
    first, second = results
    assert first.outcome is Outcome.SUCCESS and first.reason is None
    assert first.result == {"greeting": "Hello, World", "ns": "guest", "id": cold.activation_id}
    assert (first.namespace, first.subject, first.action) == ("guest", "tester", cold.action)
    assert (first.cause, first.reply_to, first.invoker) == (cold.cause, "ctl-1", "inv-1")
    assert first.wait_time == first.start - cold.accepted_at
    assert first.wait_time >= 1_500
    assert first.init_time is not None and 0 <= first.init_time <= first.end - first.start
    assert first.start <= first.end
    assert sorted(texts(first)) == [("stderr", "to stderr"), ("stdout", "hello World")]

    assert second.outcome is Outcome.SUCCESS
    assert second.result["greeting"] == "Hello, Again"  # type: ignore[call-overload]
    assert second.init_time is None  # warm: no /init
    assert second.start >= first.end
    assert sorted(texts(second)) == [("stderr", "to stderr"), ("stdout", "hello Again")]

    assert worker.completed == 2
    assert await harness.redis.xlen(harness.keys.queue("inv-1")) == 0
    assert await harness.redis.hlen(harness.keys.running("inv-1")) == 0


@pytest.mark.parametrize(
    ("code", "runtime", "timeout_ms", "outcome", "reason", "error"),
    [
        pytest.param(
            "function main() { return {error: 'nope'}; }", NODE, 10_000,
            Outcome.APPLICATION_ERROR, None, "nope", id="node-application-error",
        ),
        pytest.param(
            "function main() { throw new Error('boom'); }", NODE, 10_000,
            Outcome.DEVELOPER_ERROR, Reason.BAD_RESULT, "An error has occurred: boom",
            id="node-throws",
        ),
        pytest.param(
            sleepy(10_000), NODE, 1_000, Outcome.DEVELOPER_ERROR, Reason.TIMEOUT,
            "The action exceeded its time limits of 1000 milliseconds.", id="node-timeout",
        ),
        pytest.param(
            "def main(args):\n    return {'py': True}\n", PYTHON, 10_000, Outcome.SUCCESS,
            None, None, id="python-success",
        ),
    ],
)  # fmt: skip
async def test_outcomes_and_container_reuse(
    harness: Harness, code: str, runtime: tuple[str, str], timeout_ms: int,
    outcome: Outcome, reason: Reason | None, error: str | None,
) -> None:  # fmt: skip
    worker = harness.worker(slots=1)
    first = await harness.invocation(code, runtime=runtime, timeout_ms=timeout_ms)
    second = await harness.invocation(code, runtime=runtime, timeout_ms=timeout_ms)
    await harness.enqueue("inv-1", first, second)
    await harness.burst(worker)

    one, two = await harness.results()
    for result in (one, two):
        assert result.outcome is outcome
        assert result.reason is reason
        if error is not None:
            assert result.result == {"error": error}
    if outcome is Outcome.DEVELOPER_ERROR:
        assert texts(one)[-1] == (
            "stderr", "The action did not initialize or run as expected. Log data might be missing."
        )  # fmt: skip
    # Success and application errors keep the container warm; developer errors destroy it.
    assert (two.init_time is None) is outcome.keeps_container


async def test_a_warm_container_killed_from_outside_is_never_handed_out(
    harness: Harness,
) -> None:
    harness.start(harness.worker(slots=1))
    code = "function main() { return {pid: process.pid}; }"
    await harness.enqueue("inv-1", await harness.invocation(code))
    [one] = await harness.until(harness.results)
    pid = one.result["pid"]  # type: ignore[call-overload]
    os.killpg(pid, signal.SIGKILL)  # the warm container dies while idle
    await harness.until(lambda: _exited(pid))

    # Straight away, before the pool may have noticed.
    await harness.enqueue("inv-1", await harness.invocation(code))
    _, two = await harness.until(lambda: _at_least(harness, 2))
    assert two.outcome is Outcome.SUCCESS, two.result
    assert two.result["pid"] != pid  # type: ignore[call-overload]
    assert two.init_time is not None  # a new container, initialised for it


async def _exited(pid: int) -> bool:
    """Whether the process is gone (or a zombie): its sockets are closed."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def _at_least(harness: Harness, count: int) -> list[Result]:
    results = await harness.results()
    return results if len(results) >= count else []


async def test_the_result_limit_comes_with_the_invocation(harness: Harness) -> None:
    worker = harness.worker(slots=1)
    big = await harness.invocation("function main() { return {text: 'x'.repeat(200)}; }")
    await harness.enqueue("inv-1", big.model_copy(update={"result_limit": 100}))
    await harness.burst(worker)
    [result] = await harness.results()
    assert (result.outcome, result.reason) == (Outcome.APPLICATION_ERROR, Reason.RESULT_TOO_LARGE)


async def test_burst_mode_returns_once_idle_and_deregisters(harness: Harness) -> None:
    worker = harness.worker()
    await harness.burst(worker)
    keys = harness.keys
    assert not await harness.redis.hexists(keys.invokers, "inv-1")
    assert await harness.redis.exists(keys.alive("inv-1"), keys.queue("inv-1")) == 0
    assert await harness.results() == []


async def test_never_more_running_than_slots(harness: Harness) -> None:
    worker = harness.worker(slots=2)
    invocations = [await harness.invocation(sleepy(300), {"n": n}) for n in range(5)]
    await harness.enqueue("inv-1", *invocations)
    await harness.burst(worker)

    results = await harness.results()
    assert sorted(r.result["n"] for r in results) == [0, 1, 2, 3, 4]  # type: ignore[call-overload]
    assert all(r.outcome is Outcome.SUCCESS for r in results)
    assert peak_running(results) == 2


def peak_running(results: list[Result]) -> int:
    # Ends sort before starts at the same instant: intervals are half-open.
    events = sorted([(r.start, 1) for r in results] + [(r.end, -1) for r in results])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


PID_AFTER = """
function main(p) {
  return new Promise(r => setTimeout(() => r({n: p.n, pid: process.pid,
    concurrent: process.env.__OW_ALLOW_CONCURRENT || null}), %d));
}
"""


async def test_a_concurrent_action_runs_many_activations_in_few_containers(
    harness: Harness,
) -> None:
    worker = harness.worker(slots=64)
    code = PID_AFTER % 3000
    invocations = [await harness.invocation(code, {"n": n}, concurrency=50) for n in range(40)]
    await harness.enqueue("inv-1", *invocations)
    await harness.burst(worker)

    results = await harness.results()
    assert len(results) == 40
    assert all(r.outcome is Outcome.SUCCESS for r in results), [r.result for r in results]
    values: list[dict[str, Any]] = [r.result for r in results]  # type: ignore[misc]
    assert sorted(v["n"] for v in values) == list(range(40))
    assert len({v["pid"] for v in values}) <= 3  # one container, or a few while they start
    assert {v["concurrent"] for v in values} == {"true"}
    assert peak_running(results) == 40  # all at once, not one after another


LOGGING_AFTER = """
function main(p) {
  console.log(`start ${p.n}`);
  process.stdout.write(`part ${p.n} `);
  return new Promise(r => setTimeout(() => {
    process.stdout.write(`of ${p.n}\\n`);
    console.error(`end ${p.n}`);
    setTimeout(() => console.log(`late ${p.n}`), 20);  // after its activation: nobody's
    r({n: p.n, pid: process.pid});
  }, 1000 + 20 * p.n));
}
"""


async def test_activations_sharing_a_container_each_get_their_own_logs(
    harness: Harness,
) -> None:
    worker = harness.worker(slots=64)
    invocations = [
        await harness.invocation(LOGGING_AFTER, {"n": n}, concurrency=50) for n in range(20)
    ]
    await harness.enqueue("inv-1", *invocations)
    await harness.burst(worker)

    results = await harness.results()
    assert len(results) == 20
    assert all(r.outcome is Outcome.SUCCESS for r in results), [r.result for r in results]
    assert peak_running(results) > 1
    for result in results:
        n = result.result["n"]  # type: ignore[call-overload]
        own = [("stdout", f"start {n}"), ("stdout", f"part {n} of {n}"), ("stderr", f"end {n}")]
        assert sorted(texts(result)) == sorted(own), (n, result.logs)


async def test_more_work_than_memory_queues_in_order_without_thrashing(
    harness: Harness,
) -> None:
    # Room for two 128 MB containers; eight activations of one action, one at a time each.
    worker = harness.worker(slots=8, budget_mb=256)
    code = PID_AFTER % 300
    invocations = [await harness.invocation(code, {"n": n}) for n in range(8)]
    await harness.enqueue("inv-1", *invocations)
    await harness.burst(worker)

    results = sorted(await harness.results(), key=lambda r: r.result["n"])  # type: ignore[call-overload]
    assert all(r.outcome is Outcome.SUCCESS for r in results), [r.result for r in results]
    assert peak_running(results) == 2
    assert len({r.result["pid"] for r in results}) == 2  # type: ignore[call-overload]
    # Two start containers; the others wait for those and take them in turn.
    assert sum(r.init_time is not None for r in results) == 2


async def test_work_waiting_for_a_container_is_not_started_yet(harness: Harness) -> None:
    # Room for one 128 MB container: the second activation waits for the first's. Until its
    # container is ready it is not marked running, so a crash of the invoker then hands it to
    # another one instead of recording it as lost.
    worker = harness.worker(slots=4, budget_mb=128)
    code = PID_AFTER % 1000
    await harness.enqueue("inv-1", *[await harness.invocation(code, {"n": n}) for n in range(2)])
    harness.start(worker)
    running = harness.keys.running("inv-1")
    await harness.until(lambda: harness.redis.hlen(running))
    await asyncio.sleep(0.3)  # the first runs for a second: the second waits all that time
    assert await harness.redis.hlen(running) == 1
    assert await harness.redis.xlen(harness.keys.queue("inv-1")) == 2  # both taken, one runs
    results = await harness.until(lambda: _at_least(harness, 2))
    assert all(r.outcome is Outcome.SUCCESS for r in results), [r.result for r in results]
    assert await harness.redis.hlen(running) == 0


# Heartbeat and lifecycle.


async def test_heartbeat_registers_and_refreshes_the_invoker(harness: Harness) -> None:
    worker = harness.worker(slots=3, memory_mb=1536, heartbeat_s=0.1, alive_ttl_s=0.5)
    redis, keys = harness.redis, harness.keys
    before = now_ms()
    task = harness.start(worker)

    raw = await harness.until(lambda: redis.hget(keys.invokers, "inv-1"))
    info = InvokerInfo.decode(raw)
    assert (info.id, info.slots, info.memory_mb, info.sandbox) == ("inv-1", 3, 1536, "process")
    assert worker.started <= info.heartbeat and before <= info.heartbeat <= now_ms()
    assert 0 < await redis.pttl(keys.alive("inv-1")) <= 500

    async def refreshed() -> bool:
        latest = InvokerInfo.decode(await redis.hget(keys.invokers, "inv-1"))
        return latest.heartbeat > info.heartbeat and latest.started == info.started

    await harness.until(refreshed, timeout_s=5)
    # The heartbeat outlives the alive key's TTL: the invoker stays alive.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert await redis.exists(keys.alive("inv-1"))
        await asyncio.sleep(0.1)

    worker.stop()
    await asyncio.wait_for(task, 20)
    assert not await redis.hexists(keys.invokers, "inv-1")
    assert not await redis.exists(keys.alive("inv-1"))


class CancelSwallowingRedis(Redis):
    """A client whose next pipeline, once armed, swallows a cancellation and then completes,
    as redis-py's internal `asyncio.wait_for` does on Python 3.11 when the cancellation meets
    a call that has just finished (CPython gh-86296)."""

    armed = False

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        if not self.armed:
            return pipe
        self.armed = False
        self.entered.set()
        execute = pipe.execute

        async def swallowing_execute(raise_on_error: bool = True) -> Any:
            try:
                await asyncio.Event().wait()  # until cancelled
            except asyncio.CancelledError:
                pass
            return await execute(raise_on_error)

        pipe.execute = swallowing_execute  # type: ignore[method-assign]
        return pipe

    def arm(self) -> None:
        self.entered = asyncio.Event()
        self.armed = True


async def test_a_stopped_worker_stays_deregistered_even_if_a_cancellation_is_lost(
    harness: Harness,
) -> None:
    redis, keys = harness.redis, harness.keys
    flaky = CancelSwallowingRedis.from_url(REDIS_URL)
    try:
        worker = harness.worker(redis=flaky, heartbeat_s=0.05)
        task = harness.start(worker)
        await harness.until(lambda: redis.hexists(keys.invokers, "inv-1"))
        flaky.arm()
        await asyncio.wait_for(flaky.entered.wait(), 5)  # a heartbeat is in flight
        worker.stop()
        await asyncio.wait_for(task, 20)

        # Several heartbeat periods later the departed invoker is still gone.
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            assert not await redis.hexists(keys.invokers, "inv-1"), "a heartbeat outlived run()"
            assert not await redis.exists(keys.alive("inv-1")), "a heartbeat outlived run()"
            await asyncio.sleep(0.05)
    finally:
        for leftover in asyncio.all_tasks():
            if leftover.get_name() == "heartbeat":
                leftover.cancel()
                await asyncio.gather(leftover, return_exceptions=True)
        await flaky.aclose()


async def test_stop_drains_running_work_and_hands_queued_work_over(harness: Harness) -> None:
    await harness.register_fake("other")
    worker = harness.worker(slots=1)
    invocations = [await harness.invocation(sleepy(700), {"n": n}) for n in range(3)]
    await harness.enqueue("inv-1", *invocations)
    redis, keys = harness.redis, harness.keys
    task = harness.start(worker)

    await harness.until(lambda: redis.hlen(keys.running("inv-1")))
    worker.stop()
    await asyncio.wait_for(task, 20)

    [drained] = await harness.results()
    assert drained.activation_id == invocations[0].activation_id
    assert drained.outcome is Outcome.SUCCESS  # finished, not abandoned
    assert await harness.queued("other") == invocations[1:]
    assert await redis.exists(keys.queue("inv-1"), keys.running("inv-1")) == 0
    assert not await redis.hexists(keys.invokers, "inv-1")
    assert await redis.hexists(keys.invokers, "other")


async def test_stop_without_another_live_invoker_keeps_queued_work(harness: Harness) -> None:
    worker = harness.worker(slots=1)
    invocations = [await harness.invocation(sleepy(500), {"n": n}) for n in range(3)]
    await harness.enqueue("inv-1", *invocations)
    redis, keys = harness.redis, harness.keys
    task = harness.start(worker)

    await harness.until(lambda: redis.hlen(keys.running("inv-1")))
    worker.stop()
    await asyncio.wait_for(task, 20)

    assert [r.activation_id for r in await harness.results()] == [invocations[0].activation_id]
    assert await harness.queued("inv-1") == invocations[1:]  # for a reaper or the next life
    assert await redis.hexists(keys.invokers, "inv-1")  # so that it can be reaped
    assert not await redis.exists(keys.alive("inv-1"))


async def test_startup_recovers_entries_of_an_earlier_life(harness: Harness) -> None:
    redis, keys = harness.redis, harness.keys
    queue = keys.queue("inv-1")
    started, unstarted, fresh = [
        await harness.invocation(HELLO, {"name": str(n)}) for n in range(3)
    ]
    await redis.xgroup_create(queue, INVOKER_GROUP, "0", mkstream=True)
    started_id, _ = await harness.enqueue("inv-1", started, unstarted)
    # The earlier life read both entries and had started one when it died.
    await redis.xreadgroup(INVOKER_GROUP, "inv-1", {queue: ">"}, count=2)
    await redis.hset(keys.running("inv-1"), started.activation_id, started_id)
    await harness.enqueue("inv-1", fresh)  # never delivered

    await harness.burst(harness.worker())

    results = by_id(await harness.results())
    assert set(results) == {started.activation_id, unstarted.activation_id, fresh.activation_id}
    lost = results[started.activation_id]
    assert lost.outcome is Outcome.INTERNAL_ERROR
    assert lost.reason is Reason.ABANDONED
    assert lost.result == {
        "error": "The action did not produce a valid response and exited unexpectedly."
    }
    assert lost.invoker == "inv-1"
    assert results[unstarted.activation_id].outcome is Outcome.SUCCESS
    assert results[fresh.activation_id].outcome is Outcome.SUCCESS
    assert await redis.xlen(queue) == 0
    assert await redis.hlen(keys.running("inv-1")) == 0


async def test_missing_code_is_a_provisioning_failure(harness: Harness) -> None:
    worker = harness.worker()
    inv = await harness.invocation(None, digest="0" * 64)
    await harness.enqueue("inv-1", inv)
    await harness.burst(worker)

    [result] = await harness.results()
    assert result.activation_id == inv.activation_id
    assert result.outcome is Outcome.INTERNAL_ERROR
    assert result.outcome.status_code == 3
    assert result.reason is Reason.PROVISION_FAILED
    assert result.result == {"error": "Failed to provision resources to run the action."}


@pytest.mark.parametrize(
    "fields",
    [
        {FIELD: b"not json"},
        {FIELD: b'{"v": 1}'},
        {FIELD: b"\xff\xfe"},
        {FIELD: b'{"activation_id": "not-hex"}'},
        {"unexpected": b"no message field"},
    ],
    ids=["not-json", "incomplete", "not-utf8", "invalid", "no-field"],
)
async def test_an_undecodable_entry_is_dropped_and_the_worker_goes_on(
    harness: Harness, fields: dict[str, bytes]
) -> None:
    worker = harness.worker()
    queue = harness.keys.queue("inv-1")
    await harness.redis.xadd(queue, fields)  # type: ignore[arg-type]
    good = await harness.invocation(HELLO, {"name": "after"})
    await harness.enqueue("inv-1", good)
    await harness.burst(worker)

    [result] = await harness.results()
    assert result.activation_id == good.activation_id
    assert result.outcome is Outcome.SUCCESS
    # Nothing was left behind: the departing worker removed its emptied queue.
    assert await harness.redis.exists(queue) == 0


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


async def test_an_entry_the_codec_refuses_is_recorded_as_failed_not_dropped(
    harness: Harness,
) -> None:
    # Parameters 300 levels deep (the API refuses more than 100; pydantic reads 200): the
    # entry names its activation, so that activation is recorded as failed.
    worker = harness.worker()
    inv = await harness.invocation(HELLO)
    raw = json.dumps({**json.loads(inv.encode()), "params": nested(300)})
    await harness.redis.xadd(harness.keys.queue("inv-1"), {FIELD: raw})
    await harness.burst(worker)

    [result] = await harness.results()
    assert result.activation_id == inv.activation_id
    assert (result.outcome, result.reason) == (Outcome.INTERNAL_ERROR, Reason.INTERNAL)
    assert result.result == {"error": messages.UNDECODABLE}
    assert result.reply_to == "ctl-1"  # the blocking caller gets its answer
    assert await harness.redis.exists(harness.keys.queue("inv-1")) == 0


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        (
            "function main() { let v = {}; for (let i = 0; i < 150; i++) v = {a: v}; return {v}; }",
            wirejson.TOO_DEEP,
        ),
        ("function main() { return {x: 'ok \\ud800'}; }", wirejson.LONE_SURROGATE),
    ],
    ids=["too-deep", "lone-surrogate"],
)
async def test_a_result_no_message_can_carry_is_a_developer_error(
    harness: Harness, code: str, problem: str
) -> None:
    worker = harness.worker()
    inv = await harness.invocation(code)
    after = await harness.invocation(HELLO, {"name": "after"})
    await harness.enqueue("inv-1", inv, after)
    await harness.burst(worker)

    results = by_id(await harness.results())
    failed = results[inv.activation_id]
    assert (failed.outcome, failed.reason) == (Outcome.DEVELOPER_ERROR, Reason.BAD_RESULT)
    assert failed.result == {"error": messages.unfit_response(problem)}
    assert results[after.activation_id].outcome is Outcome.SUCCESS


async def test_a_worker_goes_on_after_redis_restarts_without_its_data(
    redis_server: RedisServer, tmp_path: Path, redis_prefix: str
) -> None:
    redis = connect(redis_server.url)
    harness = Harness(redis, Keys(redis_prefix), tmp_path)
    worker = harness.worker(slots=2, redis=redis)
    try:
        harness.start(worker)
        running = await harness.invocation(sleepy(2_000), {"n": 1})
        await harness.enqueue("inv-1", running)
        await harness.until(lambda: redis.hlen(harness.keys.running("inv-1")))

        redis_server.kill()  # the queue, the claim, the consumer group: all gone
        redis_server.start()

        # What was running when Redis lost its data is recorded once it ends...
        await harness.until(harness.results, timeout_s=30)
        # ...and new work runs: the queue's consumer group is made again.
        after = await harness.invocation(HELLO, {"name": "after"})
        await harness.enqueue("inv-1", after)
        await harness.until(lambda: _count(harness.results, 2), timeout_s=30)
        found = by_id(await harness.results())
        assert found[running.activation_id].outcome is Outcome.SUCCESS
        assert found[running.activation_id].result == {"n": 1}
        assert found[after.activation_id].result["greeting"] == "Hello, after"  # type: ignore[call-overload]
    finally:
        worker.stop()
        await asyncio.wait(harness.runs, timeout=30)
        await worker.pool.close()
        await redis.aclose()


async def _count(results: Any, n: int) -> bool:
    return len(await results()) >= n


async def test_what_an_idle_container_writes_reaches_no_activation(harness: Harness) -> None:
    # The first activation leaves a timer behind that writes every 20 ms, also while the
    # container is idle: the next activation's logs hold what was written during it at most.
    ghost = (
        "function main(p) { if (p.leave) setInterval(() => console.log('ghost'), 20);"
        " console.log('run ' + p.n); return {n: p.n}; }"
    )
    worker = harness.worker(slots=1)
    harness.start(worker)
    first = await harness.invocation(ghost, {"n": 1, "leave": True})
    await harness.enqueue("inv-1", first)
    await harness.until(harness.results)
    await asyncio.sleep(1.0)  # about 50 lines written while idle
    second = await harness.invocation(ghost, {"n": 2})
    await harness.enqueue("inv-1", second)
    await harness.until(lambda: _count(harness.results, 2))

    found = by_id(await harness.results())
    lines = texts(found[second.activation_id])
    assert ("stdout", "run 2") in lines
    assert lines.count(("stdout", "ghost")) <= 3, lines


TICK_S = 0.010
# A timer the first activation leaves behind, counting (and printing when) it ticks.
COUNTER = f"""
let ticks = 0;
let timer = null;
function tick() {{
  ticks += 1;
  console.log('tick ' + Date.now());
}}
function main(p) {{
  if (timer === null) timer = setInterval(tick, {TICK_S * 1000:g});
  console.log('run ' + ticks);
  return {{ticks}};
}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("sandbox", SANDBOXES)
async def test_what_an_action_left_behind_stops_once_its_container_is_paused(
    harness: Harness, sandbox: str
) -> None:
    grace_s = 0.5
    worker = harness.worker(slots=1, sandbox=sandbox, pause_grace_s=grace_s)
    harness.start(worker)
    first = await harness.invocation(COUNTER)
    await harness.enqueue("inv-1", first)
    await harness.until(harness.results)
    idle_from = time.monotonic()
    await asyncio.sleep(grace_s + 2.0)
    assert worker.pool.stats().paused == 1
    second = await harness.invocation(COUNTER)
    await harness.enqueue("inv-1", second)
    await harness.until(lambda: _count(harness.results, 2))
    idle_s = time.monotonic() - idle_from

    found = by_id(await harness.results())
    before, after = found[first.activation_id], found[second.activation_id]
    assert before.result == {"ticks": 0}
    assert after.outcome is Outcome.SUCCESS and after.init_time is None  # resumed, not re-run
    ticks = after.result["ticks"]  # type: ignore[call-overload]
    # It ticked through the grace (and until the next sweep paused it), then stood still:
    # running all along it would have ticked about idle_s / TICK_S times.
    assert grace_s / TICK_S / 4 <= ticks <= (grace_s + 0.6) / TICK_S, (ticks, idle_s)
    assert ticks < idle_s / TICK_S / 2, (ticks, idle_s)
    lines = texts(after)
    assert ("stdout", f"run {ticks}") in lines
    written = [int(text.split()[1]) for stream, text in lines if text.startswith("tick ")]
    assert all(at >= after.start - 100 for at in written), "a line from the idle period"
