"""The reaper settles the work of invokers whose heartbeat stopped, on real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from controller.execution.reaper import reap_once
from homerun.redisclient import connect
from invoker.protocol import (
    FIELD,
    ActionLimitsMsg,
    ActionRef,
    Invocation,
    InvokerInfo,
    Keys,
    Outcome,
    Reason,
    Result,
)
from tests.conftest import REDIS_URL, RedisServer

LOST = "The action did not produce a valid response and exited unexpectedly."
QUEUED = ["1" * 32, "2" * 32]
STARTED = "3" * 32


@pytest.fixture
async def redis(redis_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
def keys(redis_prefix: str) -> Keys:
    return Keys(redis_prefix)


def invocation(activation_id: str) -> Invocation:
    return Invocation(
        activation_id=activation_id,
        transaction_id=f"tx-{activation_id[:4]}",
        namespace="acme-int1",
        subject="acme-int1",
        action=ActionRef(
            namespace="acme-int1",
            package="tools",
            name="hello",
            version="0.0.2",
            kind="nodejs:18",
            image="homerun/action-nodejs-v18:latest",
            code_digest="d" * 64,
            limits=ActionLimitsMsg(timeout=30_000, memory=512, logs=5),
        ),
        params={"n": activation_id[0]},
        api_host="https://runtime.example",
        cause="c" * 32,
        reply_to="ctl-1",
        accepted_at=1_700_000_000_000,
    )


async def register(redis: Redis, keys: Keys, invoker_id: str, *, alive: bool) -> None:
    info = InvokerInfo(
        id=invoker_id, slots=4, memory_mb=2048, sandbox="process", started=1, heartbeat=1
    )
    await redis.hset(keys.invokers, invoker_id, info.encode())
    if alive:
        await redis.set(keys.alive(invoker_id), "1", ex=60)


async def dead_invoker_with_work(redis: Redis, keys: Keys, invoker_id: str = "inv-dead") -> None:
    """A dead invoker holding two queued invocations and one that had started."""
    await register(redis, keys, invoker_id, alive=False)
    for activation_id in [QUEUED[0], STARTED, QUEUED[1]]:
        entry_id = await redis.xadd(
            keys.queue(invoker_id), {FIELD: invocation(activation_id).encode()}
        )
        if activation_id == STARTED:
            await redis.hset(keys.running(invoker_id), activation_id, entry_id)


async def queued(redis: Redis, keys: Keys, invoker_id: str) -> list[Invocation]:
    entries = await redis.xrange(keys.queue(invoker_id))
    return [Invocation.decode(fields[FIELD.encode()]) for _id, fields in entries]


async def results(redis: Redis, keys: Keys) -> list[Result]:
    entries = await redis.xrange(keys.results)
    return [Result.decode(fields[FIELD.encode()]) for _id, fields in entries]


async def test_dead_invoker_work_is_redelivered_or_recorded_as_lost(
    redis: Redis, keys: Keys
) -> None:
    await dead_invoker_with_work(redis, keys)
    await register(redis, keys, "inv-live", alive=True)

    assert await reap_once(redis, keys, "ctl-1") == (2, 1)

    assert await queued(redis, keys, "inv-live") == [invocation(a) for a in QUEUED]
    [lost] = await results(redis, keys)
    started = invocation(STARTED)
    assert lost.activation_id == STARTED
    assert lost.outcome is Outcome.INTERNAL_ERROR
    assert lost.outcome.value == "whisk internal error"
    assert lost.reason is Reason.ABANDONED
    assert lost.result == {"error": LOST}
    assert lost.invoker == "inv-dead"
    assert (lost.namespace, lost.subject, lost.action) == (
        started.namespace,
        started.subject,
        started.action,
    )
    assert (lost.cause, lost.reply_to) == (started.cause, started.reply_to)
    assert lost.end >= lost.start >= started.accepted_at
    assert lost.wait_time == lost.start - started.accepted_at


async def test_dead_invoker_is_forgotten_once_empty(redis: Redis, keys: Keys) -> None:
    await dead_invoker_with_work(redis, keys)
    await register(redis, keys, "inv-live", alive=True)

    await reap_once(redis, keys, "ctl-1")

    assert await redis.hkeys(keys.invokers) == [b"inv-live"]
    assert not await redis.exists(keys.queue("inv-dead"))
    assert not await redis.exists(keys.running("inv-dead"))
    assert not await redis.exists(keys.reaper_lock("inv-dead"))
    assert await reap_once(redis, keys, "ctl-1") == (0, 0)  # nothing left to do


async def test_an_idle_dead_invoker_is_forgotten(redis: Redis, keys: Keys) -> None:
    await register(redis, keys, "inv-dead", alive=False)
    assert await reap_once(redis, keys, "ctl-1") == (0, 0)
    assert not await redis.hexists(keys.invokers, "inv-dead")


async def test_live_invokers_are_left_alone(redis: Redis, keys: Keys) -> None:
    await register(redis, keys, "inv-live", alive=True)
    for activation_id in QUEUED:
        await redis.xadd(keys.queue("inv-live"), {FIELD: invocation(activation_id).encode()})
    assert await reap_once(redis, keys, "ctl-1") == (0, 0)
    assert await queued(redis, keys, "inv-live") == [invocation(a) for a in QUEUED]
    assert await redis.hexists(keys.invokers, "inv-live")
    assert not await redis.exists(keys.results)


async def test_redelivery_goes_to_the_shortest_live_queue(redis: Redis, keys: Keys) -> None:
    await dead_invoker_with_work(redis, keys)
    await register(redis, keys, "inv-busy", alive=True)
    await register(redis, keys, "inv-idle", alive=True)
    for n in range(5):
        await redis.xadd(keys.queue("inv-busy"), {FIELD: invocation(f"{n:x}" * 32).encode()})

    assert await reap_once(redis, keys, "ctl-1") == (2, 1)

    assert await queued(redis, keys, "inv-idle") == [invocation(a) for a in QUEUED]
    assert await redis.xlen(keys.queue("inv-busy")) == 5


async def test_a_held_reaper_lock_keeps_others_off(redis: Redis, keys: Keys) -> None:
    await dead_invoker_with_work(redis, keys)
    await register(redis, keys, "inv-live", alive=True)
    await redis.set(keys.reaper_lock("inv-dead"), "ctl-other", px=15_000)

    assert await reap_once(redis, keys, "ctl-1") == (0, 0)

    assert await redis.xlen(keys.queue("inv-dead")) == 3
    assert await redis.xlen(keys.queue("inv-live")) == 0
    assert not await redis.exists(keys.results)
    assert await redis.hexists(keys.invokers, "inv-dead")
    assert await redis.get(keys.reaper_lock("inv-dead")) == b"ctl-other"  # not ours to free

    await redis.delete(keys.reaper_lock("inv-dead"))  # the other reaper finished or died
    assert await reap_once(redis, keys, "ctl-1") == (2, 1)


async def test_concurrent_reapers_settle_each_entry_once(redis: Redis, keys: Keys) -> None:
    await dead_invoker_with_work(redis, keys)
    await register(redis, keys, "inv-live", alive=True)
    others = [Redis.from_url(REDIS_URL) for _ in range(3)]
    try:
        totals = await asyncio.gather(
            *(reap_once(client, keys, f"ctl-{n}") for n, client in enumerate(others))
        )
    finally:
        for client in others:
            await client.aclose()

    assert (sum(t[0] for t in totals), sum(t[1] for t in totals)) == (2, 1)
    assert sorted(totals, reverse=True)[1:] == [(0, 0), (0, 0)]  # one reaper did it all
    assert sorted(i.activation_id for i in await queued(redis, keys, "inv-live")) == QUEUED
    assert [r.activation_id for r in await results(redis, keys)] == [STARTED]


async def test_without_live_invokers_queued_work_stays(redis: Redis, keys: Keys) -> None:
    await dead_invoker_with_work(redis, keys)
    await register(redis, keys, "inv-also-dead", alive=False)

    # The started one is lost either way; the others wait for a live invoker.
    assert await reap_once(redis, keys, "ctl-1") == (0, 1)

    assert await queued(redis, keys, "inv-dead") == [invocation(a) for a in QUEUED]
    assert [r.activation_id for r in await results(redis, keys)] == [STARTED]
    assert await redis.hexists(keys.invokers, "inv-dead")
    assert not await redis.hexists(keys.invokers, "inv-also-dead")  # empty: forgotten
    assert not await redis.exists(keys.reaper_lock("inv-dead"))

    await register(redis, keys, "inv-live", alive=True)
    assert await reap_once(redis, keys, "ctl-1") == (2, 0)
    assert await queued(redis, keys, "inv-live") == [invocation(a) for a in QUEUED]
    assert len(await results(redis, keys)) == 1
    assert not await redis.hexists(keys.invokers, "inv-dead")


async def test_nothing_is_reaped_while_redis_has_just_started(
    redis_server: RedisServer, keys: Keys
) -> None:
    # Redis came back from its append-only file: the alive keys expired while it was down,
    # and the invokers, alive all along, have not beaten since.
    redis = connect(redis_server.url)
    try:
        await dead_invoker_with_work(redis, keys)
        await register(redis, keys, "inv-live", alive=True)
        assert await reap_once(redis, keys, "ctl-1") == (0, 0)
        assert len(await queued(redis, keys, "inv-dead")) == 3
        assert await results(redis, keys) == []
    finally:
        await redis.aclose()
