"""The container pool (invoker/pool.py) over the real process sandbox: warm reuse, stem cells,
the memory budget with LRU eviction and waiting, idle expiry and shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from invoker.pool import ContainerPool, PoolStats, Slot, StemCellSpec, WarmKey
from invoker.process_sandbox import ProcessActionContainer, ProcessSandbox
from invoker.sandbox import ContainerSpec, ProvisionError
from tests.conftest import make_sandbox

PYTHON = "python:3.11"
NODE = "nodejs:18"
IMAGE = {PYTHON: "homerun/action-python-v311:latest", NODE: "homerun/action-nodejs-v18:latest"}
CODE = "import os\ndef main(args):\n    return {'pid': os.getpid(), 'n': args.get('n')}\n"
KEY = WarmKey(
    namespace="acme", action="acme/hello", version="0.0.1", code_digest="d1", kind=PYTHON,
    memory_mb=128,
)  # fmt: skip


def spec_of(key: WarmKey) -> ContainerSpec:
    return ContainerSpec(key.kind, IMAGE[key.kind], key.memory_mb, name="hello")


class RecordingSandbox:
    """The process sandbox, remembering every container it started."""

    name = "process"
    isolates = False

    def __init__(self, inner: ProcessSandbox) -> None:
        self.inner = inner
        self.started: list[tuple[ContainerSpec, ProcessActionContainer]] = []

    async def start(self, spec: ContainerSpec) -> ProcessActionContainer:
        container = await self.inner.start(spec)
        self.started.append((spec, container))
        return container

    async def close(self) -> None:
        await self.inner.close()

    @property
    def containers(self) -> list[ProcessActionContainer]:
        return [container for _, container in self.started]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sandbox(tmp_path: Path) -> RecordingSandbox:
    return RecordingSandbox(make_sandbox("process", tmp_path, "pool"))


@pytest.fixture
async def make_pool(sandbox: RecordingSandbox) -> AsyncIterator[Callable[..., ContainerPool]]:
    pools: list[ContainerPool] = []

    def make(budget_mb: int = 1024, **options: Any) -> ContainerPool:
        pool = ContainerPool(sandbox, budget_mb, **options)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close()
    assert not any(c.alive() for c in sandbox.containers), "a container outlived its pool"


async def until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def process(slot: Slot) -> ProcessActionContainer:
    assert isinstance(slot.container, ProcessActionContainer)
    return slot.container


NODE_CODE = "function main() { return {}; }"


async def init(pool: ContainerPool, slot: Slot, code: str = CODE) -> None:
    """/init, then tell the pool, as the runner does."""
    init = {"name": "hello", "main": "main", "code": code, "binary": False}
    exchange = await slot.container.init({"value": init}, 10)
    assert exchange.status == 200, exchange
    pool.initialized(slot)


async def run(slot: Slot, n: int) -> dict[str, Any]:
    exchange = await slot.container.run({"value": {"n": n}}, 10)
    assert exchange.status == 200, exchange
    result: dict[str, Any] = json.loads(exchange.body)
    assert result["n"] == n
    return result


# Warm reuse.


async def test_an_equal_key_reuses_the_initialised_container(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    pool = make_pool()
    slot, warm = await pool.acquire(KEY, spec_of(KEY))
    assert not warm
    assert slot.key == KEY
    assert pool.stats() == PoolStats(idle=0, busy=1, stem_cells=0, memory_used_mb=128)
    await init(pool, slot)
    pid = (await run(slot, 1))["pid"]
    await pool.release(slot)
    assert pool.stats() == PoolStats(idle=1, busy=0, stem_cells=0, memory_used_mb=128)

    again, warm = await pool.acquire(replace(KEY), spec_of(KEY))  # equal, not identical
    assert warm
    assert again is slot
    assert again.uses == 2
    assert (await run(again, 2))["pid"] == pid  # no /init: the same live process
    assert len(sandbox.started) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"namespace": "other"},
        {"version": "0.0.2"},
        {"code_digest": "d2"},
        {"code_digest": None},
        {"action": "acme/pkg/hello"},
        {"memory_mb": 256},
        {"kind": NODE},
    ],
    ids=lambda change: next(iter(change)) + "=" + str(next(iter(change.values()))),
)
async def test_keys_that_differ_never_share(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox, change: dict[str, Any]
) -> None:
    pool = make_pool()
    first, _ = await pool.acquire(KEY, spec_of(KEY))
    await pool.release(first)
    other = replace(KEY, **change)
    second, warm = await pool.acquire(other, spec_of(other))
    assert not warm
    assert second is not first
    assert second.container.id != first.container.id
    assert second.key == other
    assert pool.stats() == PoolStats(
        idle=1, busy=1, stem_cells=0, memory_used_mb=128 + other.memory_mb
    )
    # The first key still finds its own container.
    third, warm = await pool.acquire(KEY, spec_of(KEY))
    assert warm and third is first


async def test_each_busy_container_serves_one_activation(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    pool = make_pool()
    one, _ = await pool.acquire(KEY, spec_of(KEY))
    two, warm = await pool.acquire(KEY, spec_of(KEY))
    assert not warm and two is not one
    await pool.release(one)
    await pool.release(two)
    assert pool.stats().idle == 2
    assert len(sandbox.started) == 2


# Stem cells.


async def test_a_stem_cell_serves_a_matching_kind_and_memory_and_is_replaced(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    cell = StemCellSpec(PYTHON, IMAGE[PYTHON], 128, 1)
    pool = make_pool(stem_cells=(cell,), stem_cell_env={"__OW_API_HOST": "http://api"})
    await pool.prewarm()
    assert pool.stats() == PoolStats(idle=0, busy=0, stem_cells=1, memory_used_mb=128)
    [(stem_spec, stem)] = sandbox.started
    assert (stem_spec.kind, stem_spec.memory_mb, stem_spec.image) == (PYTHON, 128, IMAGE[PYTHON])
    assert stem_spec.env == {"__OW_API_HOST": "http://api"}

    slot, warm = await pool.acquire(KEY, spec_of(KEY))
    assert not warm  # a stem cell still needs /init
    assert slot.container is stem
    assert slot.key == KEY
    await init(pool, slot)
    await run(slot, 1)

    await until(lambda: pool.stats().stem_cells == 1)  # replenished in the background
    assert len(sandbox.started) == 2
    assert sandbox.containers[1] is not stem
    assert pool.stats() == PoolStats(idle=0, busy=1, stem_cells=1, memory_used_mb=256)

    # Once warm, the key's own container comes before any stem cell.
    await pool.release(slot)
    again, warm = await pool.acquire(KEY, spec_of(KEY))
    assert warm and again is slot
    assert pool.stats().stem_cells == 1


@pytest.mark.parametrize(
    "change", [{"memory_mb": 256}, {"kind": NODE}], ids=["other-memory", "other-kind"]
)
async def test_a_stem_cell_of_another_kind_or_memory_is_not_used(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox, change: dict[str, Any]
) -> None:
    pool = make_pool(stem_cells=(StemCellSpec(PYTHON, IMAGE[PYTHON], 128, 1),))
    await pool.prewarm()
    [stem] = sandbox.containers
    key = replace(KEY, **change)
    slot, warm = await pool.acquire(key, spec_of(key))
    assert not warm
    assert slot.container is not stem
    assert pool.stats().stem_cells == 1
    assert stem.alive()


async def test_prewarm_stays_within_the_budget(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    pool = make_pool(256, stem_cells=(StemCellSpec(PYTHON, IMAGE[PYTHON], 128, 5),))
    await pool.prewarm()
    assert pool.stats() == PoolStats(idle=0, busy=0, stem_cells=2, memory_used_mb=256)
    assert len(sandbox.started) == 2


# The memory budget.


async def test_over_budget_the_least_recently_used_idle_container_goes(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    clock = Clock()
    pool = make_pool(256, clock=clock)
    key_a, key_b, key_c = (replace(KEY, action=f"acme/{n}") for n in "abc")
    a, _ = await pool.acquire(key_a, spec_of(key_a))
    b, _ = await pool.acquire(key_b, spec_of(key_b))
    clock.now += 1
    await pool.release(b)  # b was used less recently than a
    clock.now += 1
    await pool.release(a)

    c, warm = await pool.acquire(key_c, spec_of(key_c))
    assert not warm
    await until(lambda: not process(b).alive())
    assert process(a).alive()
    assert pool.stats() == PoolStats(idle=1, busy=1, stem_cells=0, memory_used_mb=256)
    again, warm = await pool.acquire(key_a, spec_of(key_a))
    assert warm and again is a
    assert process(c).alive()


async def test_an_idle_warm_container_goes_before_a_stem_cell(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    pool = make_pool(256, stem_cells=(StemCellSpec(NODE, IMAGE[NODE], 128, 1),))
    await pool.prewarm()
    [stem] = sandbox.containers
    a, _ = await pool.acquire(KEY, spec_of(KEY))
    await pool.release(a)
    other = replace(KEY, version="0.0.2")
    await pool.acquire(other, spec_of(other))
    await until(lambda: not process(a).alive())
    assert stem.alive()
    assert pool.stats() == PoolStats(idle=0, busy=1, stem_cells=1, memory_used_mb=256)


@pytest.mark.parametrize("give_back", ["release", "discard"])
async def test_when_everything_is_busy_acquire_waits_for_a_container_to_come_back(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox, give_back: str
) -> None:
    pool = make_pool(256)
    key_a, key_b, key_c = (replace(KEY, action=f"acme/{n}") for n in "abc")
    a, _ = await pool.acquire(key_a, spec_of(key_a))
    await pool.acquire(key_b, spec_of(key_b))

    waiting = asyncio.create_task(pool.acquire(key_c, spec_of(key_c)))
    done, _ = await asyncio.wait({waiting}, timeout=0.3)
    assert not done, "acquire went over the memory budget"
    assert len(sandbox.started) == 2
    assert pool.stats() == PoolStats(idle=0, busy=2, stem_cells=0, memory_used_mb=256)

    await getattr(pool, give_back)(a)
    c, warm = await asyncio.wait_for(waiting, 15)
    assert not warm and c.key == key_c
    await until(lambda: not process(a).alive())
    assert pool.stats() == PoolStats(idle=0, busy=2, stem_cells=0, memory_used_mb=256)


async def test_waiters_for_memory_take_returned_containers_in_order(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    pool = make_pool(budget_mb=128)  # one container at a time
    first, _ = await pool.acquire(KEY, spec_of(KEY))
    served: list[int] = []

    async def wait_for_it(n: int) -> None:
        slot, warm = await pool.acquire(KEY, spec_of(KEY))
        assert warm and slot is first  # never evicted and started again
        served.append(n)
        await asyncio.sleep(0.01)
        await pool.release(slot)

    waiting = []
    for n in range(5):
        waiting.append(asyncio.create_task(wait_for_it(n)))
        await asyncio.sleep(0.01)  # each is waiting before the next comes
    await pool.release(first)
    await asyncio.wait_for(asyncio.gather(*waiting), 10)
    assert served == [0, 1, 2, 3, 4]
    assert len(sandbox.started) == 1


async def test_a_concurrent_key_shares_one_container_even_while_it_starts(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    pool = make_pool()
    key = replace(KEY, kind=NODE)
    first, warm = await pool.acquire(key, spec_of(key), capacity=3)
    assert not warm
    # Two more arrive while the first is still to be initialised: they wait to share it.
    others = [asyncio.create_task(pool.acquire(key, spec_of(key), capacity=3)) for _ in range(2)]
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in others)
    await init(pool, first, NODE_CODE)
    shared = [await task for task in others]
    assert all(slot is first and warm for slot, warm in shared)
    assert first.active == 3
    # Full: a fourth gets a container of its own.
    fourth, warm = await pool.acquire(key, spec_of(key), capacity=3)
    assert fourth is not first and not warm
    assert len(sandbox.started) == 2
    assert pool.stats().busy == 2
    for slot in (first, first, first, fourth):
        await pool.release(slot)
    assert pool.stats() == PoolStats(idle=2, busy=0, stem_cells=0, memory_used_mb=256)


async def test_a_retired_concurrent_container_takes_no_one_else(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    # One activation timed out in a shared container: until it is destroyed (after its logs
    # are read) nothing may join it.
    pool = make_pool()
    key = replace(KEY, kind=NODE)
    failed, _ = await pool.acquire(key, spec_of(key), capacity=3)
    await init(pool, failed, NODE_CODE)
    pool.retire(failed)
    other, warm = await pool.acquire(key, spec_of(key), capacity=3)
    assert other is not failed and not warm
    await pool.discard(failed)
    assert failed.dropped and not other.dropped


async def test_room_for_a_key_is_never_made_by_evicting_its_own_idle_container(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    # A task that found no room goes for memory; by the time it has the pool's lock, one of
    # its key's containers may have come back. It must share that one, not evict it to start
    # its twin: that churn once made a loaded invoker start a container every half second.
    pool = make_pool(budget_mb=128)
    slot, _ = await pool.acquire(KEY, spec_of(KEY))
    await init(pool, slot)
    await pool.release(slot)
    assert not await pool._reserve(KEY, 128)
    assert not slot.dropped
    again, warm = await pool.acquire(KEY, spec_of(KEY))
    assert again is slot and warm
    assert len(sandbox.started) == 1


async def test_a_container_reading_its_logs_is_waited_for_not_duplicated(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    # The runner answers, then reads the logs: the caller's next invocation may arrive then.
    pool = make_pool()
    slot, _ = await pool.acquire(KEY, spec_of(KEY))
    await init(pool, slot)
    pool.finish(slot)
    following = asyncio.create_task(pool.acquire(KEY, spec_of(KEY)))
    await asyncio.sleep(0.1)
    assert not following.done()  # waiting for it, not starting another
    await pool.release(slot)
    again, warm = await asyncio.wait_for(following, 5)
    assert again is slot and warm
    assert len(sandbox.started) == 1


async def test_a_request_bigger_than_the_whole_budget_fails(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    pool = make_pool(256)
    big = replace(KEY, memory_mb=512)
    with pytest.raises(ProvisionError):
        await asyncio.wait_for(pool.acquire(big, spec_of(big)), 5)
    assert sandbox.started == []
    assert pool.stats() == PoolStats(idle=0, busy=0, stem_cells=0, memory_used_mb=0)


async def test_a_failed_start_gives_its_memory_back(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    pool = make_pool(256)
    unknown = replace(KEY, kind="cobol:85")
    with pytest.raises(ProvisionError):
        await pool.acquire(unknown, ContainerSpec("cobol:85", "img", 128, name="x"))
    assert pool.stats().memory_used_mb == 0


async def test_discard_destroys_the_container(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    pool = make_pool()
    slot, _ = await pool.acquire(KEY, spec_of(KEY))
    workdir = process(slot)._workdir
    await pool.discard(slot)
    assert not process(slot).alive()
    assert not workdir.exists()
    assert pool.stats() == PoolStats(idle=0, busy=0, stem_cells=0, memory_used_mb=0)
    again, warm = await pool.acquire(KEY, spec_of(KEY))
    assert not warm and again is not slot


# Expiry and shutdown.


async def test_evict_idle_removes_containers_idle_past_the_timeout(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    clock = Clock()
    pool = make_pool(idle_timeout_s=60, clock=clock)
    key_a, key_b, key_c = (replace(KEY, action=f"acme/{n}") for n in "abc")
    a, _ = await pool.acquire(key_a, spec_of(key_a))
    b, _ = await pool.acquire(key_b, spec_of(key_b))
    busy, _ = await pool.acquire(key_c, spec_of(key_c))
    await pool.release(a)  # idle since 1000
    clock.now += 30
    await pool.release(b)  # idle since 1030

    clock.now += 30  # 1060: a has been idle exactly the timeout
    assert await pool.evict_idle() == 0
    clock.now += 1
    assert await pool.evict_idle() == 1
    assert not process(a).alive() and process(b).alive()
    assert pool.stats() == PoolStats(idle=1, busy=1, stem_cells=0, memory_used_mb=256)

    clock.now += 1_000
    assert await pool.evict_idle() == 1
    assert not process(b).alive()
    assert process(busy).alive()  # busy containers never expire
    assert pool.stats() == PoolStats(idle=0, busy=1, stem_cells=0, memory_used_mb=128)
    assert await pool.evict_idle() == 0


# Containers that die from outside (killed, crashed) are never handed out.


def kill(container: ProcessActionContainer) -> None:
    os.killpg(container._process.pid, signal.SIGKILL)


async def test_a_dead_warm_container_is_replaced_not_handed_out(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    pool = make_pool()
    first, _ = await pool.acquire(KEY, spec_of(KEY))
    second, _ = await pool.acquire(KEY, spec_of(KEY))
    await pool.release(first)
    await pool.release(second)
    kill(process(second))  # the one acquire would take next
    await until(lambda: not process(second).alive())

    slot, warm = await pool.acquire(KEY, spec_of(KEY))
    assert warm and slot is first
    await until(lambda: pool.stats().memory_used_mb == 128)  # the dead one's memory is back
    kill(process(first))
    await until(lambda: not process(first).alive())
    await pool.release(slot)

    fresh, warm = await pool.acquire(KEY, spec_of(KEY))
    assert not warm
    assert fresh.container is sandbox.containers[-1]
    assert fresh.container not in (first.container, second.container)
    await init(pool, fresh)
    await run(fresh, 1)


async def test_a_dead_stem_cell_is_replaced_not_handed_out(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    pool = make_pool(stem_cells=(StemCellSpec(PYTHON, IMAGE[PYTHON], 128, 1),))
    await pool.prewarm()
    [stem] = sandbox.containers
    kill(stem)
    await until(lambda: not stem.alive())

    slot, warm = await pool.acquire(KEY, spec_of(KEY))
    assert not warm
    assert slot.container is not stem
    await init(pool, slot)
    await run(slot, 1)
    await until(lambda: pool.stats().stem_cells == 1)  # and a new one took its place
    assert pool.stats().memory_used_mb == 256


async def test_evict_idle_replaces_dead_idle_containers_and_stem_cells(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    pool = make_pool(stem_cells=(StemCellSpec(PYTHON, IMAGE[PYTHON], 128, 1),))
    await pool.prewarm()
    [stem] = sandbox.containers
    other = replace(KEY, memory_mb=256)  # not served by the stem cell
    warm, _ = await pool.acquire(other, spec_of(other))
    await pool.release(warm)
    kill(stem)
    kill(process(warm))
    await until(lambda: not stem.alive() and not process(warm).alive())

    assert await pool.evict_idle() == 2
    await until(lambda: pool.stats().stem_cells == 1)  # a new stem cell took its place
    assert pool.stats() == PoolStats(idle=0, busy=0, stem_cells=1, memory_used_mb=128)
    assert sandbox.containers[-1] not in (stem, warm.container)


async def test_close_destroys_everything(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    pool = make_pool(stem_cells=(StemCellSpec(NODE, IMAGE[NODE], 128, 1),))
    await pool.prewarm()
    idle, _ = await pool.acquire(KEY, spec_of(KEY))
    await pool.release(idle)
    other = replace(KEY, version="2")
    await pool.acquire(other, spec_of(other))
    assert pool.stats() == PoolStats(idle=1, busy=1, stem_cells=1, memory_used_mb=384)
    assert all(c.alive() for c in sandbox.containers)

    await pool.close()
    assert len(sandbox.containers) == 3
    assert not any(c.alive() for c in sandbox.containers)
    assert pool.stats() == PoolStats(idle=0, busy=0, stem_cells=0, memory_used_mb=0)
    with pytest.raises(ProvisionError):
        await pool.acquire(KEY, spec_of(KEY))


# Pausing idle containers.

FORKS = """
import os
import subprocess


def main(args):
    # One child in the proxy's session, one that leaves it.
    kids = [subprocess.Popen(['sleep', '60'], start_new_session=s).pid for s in (False, True)]
    return {'pid': os.getpid(), 'n': args.get('n'), 'kids': kids}
"""


def stopped(pid: int) -> bool:
    """Whether process `pid` is stopped by a signal (and not, say, sleeping)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


async def warm_slot(pool: ContainerPool, key: WarmKey = KEY, code: str = CODE) -> Slot:
    """A container of `key`, initialised, run once and released."""
    slot, _ = await pool.acquire(key, spec_of(key))
    await init(pool, slot, code)
    await run(slot, 0)
    await pool.release(slot)
    return slot


async def test_an_idle_container_is_paused_after_the_grace_and_not_within_it(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    clock = Clock()
    pool = make_pool(pause_grace_s=10, clock=clock)
    slot = await warm_slot(pool)
    clock.now += 10  # idle exactly the grace
    assert await pool.pause_idle() == 0
    assert not slot.paused and not stopped(process(slot).pid)
    clock.now += 1
    assert await pool.pause_idle() == 1
    assert slot.paused and stopped(process(slot).pid)
    assert process(slot).alive()  # stopped is not dead
    assert pool.stats() == PoolStats(idle=1, busy=0, stem_cells=0, memory_used_mb=128, paused=1)
    assert await pool.pause_idle() == 0  # once


async def test_a_grace_of_zero_never_pauses(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    clock = Clock()
    pool = make_pool(pause_grace_s=0, clock=clock)
    slot = await warm_slot(pool)
    clock.now += 1_000
    assert await pool.pause_idle() == 0
    assert not slot.paused and not stopped(process(slot).pid)


async def test_pausing_stops_the_processes_an_action_forked_and_acquire_resumes_them(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    clock = Clock()
    pool = make_pool(pause_grace_s=10, clock=clock)
    slot, _ = await pool.acquire(KEY, spec_of(KEY))
    await init(pool, slot, FORKS)
    first = await run(slot, 1)
    await pool.release(slot)
    try:
        clock.now += 11
        assert await pool.pause_idle() == 1
        assert all(stopped(pid) for pid in [first["pid"], *first["kids"]])

        again, warm = await pool.acquire(KEY, spec_of(KEY))
        assert warm and again is slot and not slot.paused  # resumed, not initialised again
        assert not any(stopped(pid) for pid in [first["pid"], *first["kids"]])
        assert (await run(again, 2))["pid"] == first["pid"]
        assert pool.stats().paused == 0
    finally:
        for pid in first["kids"]:
            os.kill(pid, signal.SIGKILL)


async def test_an_activation_arriving_while_its_container_is_paused_gets_it_resumed(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    clock = Clock()
    pool = make_pool(pause_grace_s=10, clock=clock)
    slot = await warm_slot(pool)
    clock.now += 11
    pausing = asyncio.create_task(pool.pause_idle())
    for _ in range(10):  # a few turns of the loop, not the time the pause takes
        await asyncio.sleep(0)
    assert slot.transition.locked(), "the pause is under way"
    again, warm = await pool.acquire(KEY, spec_of(KEY))
    assert warm and again is slot
    assert await pausing == 1
    assert not slot.paused and not stopped(process(slot).pid)
    await run(again, 1)
    assert len(sandbox.started) == 1


async def test_a_concurrent_container_is_paused_only_once_none_of_its_activations_runs(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    clock = Clock()
    pool = make_pool(pause_grace_s=10, clock=clock)
    key = replace(KEY, kind=NODE)
    one, _ = await pool.acquire(key, spec_of(key), capacity=3)
    await init(pool, one, NODE_CODE)
    two, warm = await pool.acquire(key, spec_of(key), capacity=3)
    assert warm and two is one
    await pool.release(one)
    clock.now += 100  # released long ago, but another activation still runs in it
    assert await pool.pause_idle() == 0
    assert not one.paused and not stopped(process(one).pid)
    await pool.release(two)
    clock.now += 10
    assert await pool.pause_idle() == 0
    clock.now += 1
    assert await pool.pause_idle() == 1
    assert stopped(process(one).pid)


async def test_a_stem_cell_is_never_paused(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    clock = Clock()
    pool = make_pool(
        pause_grace_s=10, clock=clock, stem_cells=(StemCellSpec(NODE, IMAGE[NODE], 128, 1),)
    )
    await pool.prewarm()
    [stem] = sandbox.containers
    clock.now += 1_000
    assert await pool.pause_idle() == 0
    assert not stopped(stem.pid)


async def test_a_paused_container_that_died_is_replaced_not_handed_out(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    clock = Clock()
    pool = make_pool(pause_grace_s=10, clock=clock)
    slot = await warm_slot(pool)
    clock.now += 11
    assert await pool.pause_idle() == 1
    kill(process(slot))  # SIGKILL ends a stopped process too
    await until(lambda: not process(slot).alive())

    fresh, warm = await pool.acquire(KEY, spec_of(KEY))
    assert not warm and fresh is not slot
    await until(lambda: pool.stats().memory_used_mb == 128)  # the dead one's memory is back
    await init(pool, fresh)
    await run(fresh, 1)


async def test_a_container_that_cannot_be_resumed_is_replaced_not_handed_out(
    make_pool: Callable[..., ContainerPool],
    sandbox: RecordingSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    pool = make_pool(pause_grace_s=10, clock=clock)
    slot = await warm_slot(pool)
    clock.now += 11
    assert await pool.pause_idle() == 1

    async def refuse() -> None:
        raise OSError("the engine refused")

    monkeypatch.setattr(process(slot), "resume", refuse)
    fresh, warm = await pool.acquire(KEY, spec_of(KEY))
    assert not warm and fresh is not slot
    await until(lambda: not process(slot).alive())  # destroyed though paused
    assert slot.gone and pool.containers(KEY) == 1
    await init(pool, fresh)
    await run(fresh, 1)
    assert pool.stats().memory_used_mb == 128


async def test_a_paused_container_expires_after_the_idle_timeout(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    clock = Clock()
    pool = make_pool(idle_timeout_s=60, pause_grace_s=10, clock=clock)
    slot = await warm_slot(pool)
    workdir = process(slot)._workdir
    clock.now += 11
    assert await pool.pause_idle() == 1
    clock.now += 50
    assert await pool.evict_idle() == 1
    assert not process(slot).alive()
    assert not workdir.exists()
    assert pool.stats() == PoolStats(idle=0, busy=0, stem_cells=0, memory_used_mb=0)


async def test_over_budget_a_paused_container_is_evicted_like_any_idle_one(
    make_pool: Callable[..., ContainerPool], sandbox: RecordingSandbox
) -> None:
    clock = Clock()
    pool = make_pool(128, pause_grace_s=10, clock=clock)
    slot = await warm_slot(pool)
    clock.now += 11
    assert await pool.pause_idle() == 1
    other = replace(KEY, action="acme/other")
    new, warm = await pool.acquire(other, spec_of(other))
    assert not warm
    await until(lambda: not process(slot).alive())
    assert pool.containers(KEY) == 0
    await init(pool, new)
    await run(new, 1)
    assert pool.stats() == PoolStats(idle=0, busy=1, stem_cells=0, memory_used_mb=128)
