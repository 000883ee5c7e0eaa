"""The sequence journal on a real Redis: a sequence is taken over once its controller stops
beating, by one controller only, and never while it runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from controller.execution.journal import ORPHANED, SequenceJournal, SequenceStart
from controller.services.activations import Activation
from invoker.protocol import Keys
from tests.conftest import REDIS_URL


def started(activation_id: str) -> SequenceStart:
    return SequenceStart(
        activation_id=activation_id, namespace="acme", name="seq", version="0.0.1",
        path="acme", start=1, cause=None, limits={"timeout": 60000, "memory": 256, "logs": 10},
    )  # fmt: skip


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


class Store:
    def __init__(self) -> None:
        self.records: list[tuple[Activation, str]] = []

    async def __call__(self, activation: Activation, path: str) -> None:
        self.records.append((activation, path))


async def test_a_running_sequence_is_left_alone_and_a_stopped_one_recorded_once(
    redis: Redis, redis_prefix: str
) -> None:
    keys = Keys(redis_prefix)
    a, b, c = (SequenceJournal(redis, keys, owner) for owner in ("ctl-a", "ctl-b", "ctl-c"))
    beating = asyncio.create_task(a.beat_forever())
    try:
        await a.begin(started("s1"))
        await a.components("s1", ["c1", "c2"])
        await asyncio.sleep(0.1)
        store = Store()

        assert await b.take_over_once(store) == 0  # a beats
        assert await a.take_over_once(store) == 0  # a runs it
    finally:
        beating.cancel()
    await a.stop_beating()
    taken = await asyncio.gather(b.take_over_once(store), c.take_over_once(store))

    assert sorted(taken) == [0, 1]
    ((record, path),) = store.records
    assert (record.activation_id, path, record.logs) == ("s1", "acme", ["c1", "c2"])
    assert record.response["result"] == {"error": ORPHANED} and not record.response["success"]
    assert await redis.zcard(keys.sequences) == 0
    assert not await redis.exists(keys.sequence("s1"))


async def test_a_sequence_its_controller_stopped_short_of_recording_is_taken_over_there(
    redis: Redis, redis_prefix: str
) -> None:
    journal = SequenceJournal(redis, Keys(redis_prefix), "ctl-a")
    await journal.begin(started("s2"))
    store = Store()
    assert await journal.take_over_once(store) == 0

    journal.release("s2")  # its task was cancelled, or the database failed

    assert await journal.take_over_once(store) == 1
    assert [r.activation_id for r, _ in store.records] == ["s2"]


async def test_an_ended_sequence_leaves_nothing(redis: Redis, redis_prefix: str) -> None:
    keys = Keys(redis_prefix)
    journal = SequenceJournal(redis, keys, "ctl-a")
    await journal.begin(started("s3"))

    await journal.end("s3")

    assert await journal.take_over_once(Store()) == 0
    assert await redis.zcard(keys.sequences) == 0
