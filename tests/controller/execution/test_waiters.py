"""Blocking callers' waiters: resolved locally, or from replies published on real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from controller.execution.waiters import Waiters
from invoker.protocol import ActionLimitsMsg, ActionRef, Keys, Outcome, Reply, Result
from tests.conftest import REDIS_URL

CONTROLLER = "ctl-waiters"


def result(activation_id: str = "a" * 32) -> Result:
    return Result(
        activation_id=activation_id,
        namespace="acme-int1",
        subject="acme-int1",
        action=ActionRef(
            namespace="acme-int1",
            name="hello",
            version="0.0.1",
            kind="nodejs:18",
            image="homerun/action-nodejs-v18:latest",
            limits=ActionLimitsMsg(timeout=60_000, memory=256, logs=10),
        ),
        reply_to=CONTROLLER,
        outcome=Outcome.SUCCESS,
        result={"ok": True},
        start=1_700_000_000_010,
        end=1_700_000_000_020,
        wait_time=10,
    )


async def test_resolve_wakes_the_registered_caller() -> None:
    waiters = Waiters()
    future = waiters.register("a" * 32)
    assert len(waiters) == 1
    assert not future.done()
    assert waiters.resolve("a" * 32, result())
    assert future.result() == result()
    assert len(waiters) == 0


async def test_resolve_with_none_means_read_the_record() -> None:
    waiters = Waiters()
    future = waiters.register("a" * 32)
    assert waiters.resolve("a" * 32, None)
    assert future.result() is None


async def test_resolving_twice_is_harmless() -> None:
    waiters = Waiters()
    future = waiters.register("a" * 32)
    assert waiters.resolve("a" * 32, result())
    assert not waiters.resolve("a" * 32, None)
    assert future.result() == result()


async def test_resolving_an_unknown_activation_does_nothing() -> None:
    waiters = Waiters()
    other = waiters.register("b" * 32)
    assert not waiters.resolve("a" * 32, result())
    assert not other.done()
    assert len(waiters) == 1


async def test_discard_forgets_the_waiter() -> None:
    waiters = Waiters()
    future = waiters.register("a" * 32)
    waiters.discard("a" * 32)
    waiters.discard("a" * 32)  # twice, or unknown: harmless
    assert len(waiters) == 0
    assert not waiters.resolve("a" * 32, result())
    assert not future.done()


async def test_resolving_a_cancelled_waiter_is_harmless() -> None:
    waiters = Waiters()
    future = waiters.register("a" * 32)
    future.cancel()  # the caller gave up
    assert not waiters.resolve("a" * 32, result())
    assert len(waiters) == 0


async def test_waiters_are_independent() -> None:
    waiters = Waiters()
    first, second = waiters.register("a" * 32), waiters.register("b" * 32)
    assert waiters.resolve("b" * 32, result("b" * 32))
    assert not first.done()
    assert second.result() == result("b" * 32)


@pytest.fixture
async def redis(redis_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def listening(redis: Redis, redis_prefix: str) -> AsyncIterator[tuple[Waiters, Keys]]:
    """Waiters listening for replies to CONTROLLER; subscribed before the test starts."""
    waiters, keys = Waiters(), Keys(redis_prefix)
    task = asyncio.create_task(waiters.listen(redis, keys, CONTROLLER))
    channel = keys.replies(CONTROLLER)
    for _ in range(200):
        if dict(await redis.pubsub_numsub(channel)).get(channel.encode()):
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the waiters did not subscribe")
    yield waiters, keys
    assert not task.done(), "the listener stopped"
    # Cancel until it stops: on Python 3.11 `asyncio.wait_for`, which redis-py uses to send
    # commands, can swallow a cancellation (CPython gh-86296).
    for _ in range(50):
        task.cancel()
        done, _pending = await asyncio.wait([task], timeout=0.1)
        if done:
            break
    else:
        pytest.fail("the listener did not stop when cancelled")


async def test_listen_resolves_from_published_replies(
    redis: Redis, listening: tuple[Waiters, Keys]
) -> None:
    waiters, keys = listening
    first, second = waiters.register("a" * 32), waiters.register("b" * 32)
    await redis.publish(keys.replies(CONTROLLER), Reply(activation_id="b" * 32).encode())
    assert await asyncio.wait_for(second, 5) is None  # None: read the record
    assert not first.done()
    await redis.publish(keys.replies(CONTROLLER), Reply(activation_id="a" * 32).encode())
    assert await asyncio.wait_for(first, 5) is None
    assert len(waiters) == 0


async def test_listen_ignores_replies_for_other_controllers(
    redis: Redis, listening: tuple[Waiters, Keys]
) -> None:
    waiters, keys = listening
    mine, theirs = waiters.register("a" * 32), waiters.register("b" * 32)
    await redis.publish(keys.replies("ctl-other"), Reply(activation_id="b" * 32).encode())
    await redis.publish(keys.replies(CONTROLLER), Reply(activation_id="a" * 32).encode())
    await asyncio.wait_for(mine, 5)
    assert not theirs.done()


async def test_listen_ignores_garbage_and_keeps_listening(
    redis: Redis, listening: tuple[Waiters, Keys]
) -> None:
    waiters, keys = listening
    future = waiters.register("a" * 32)
    channel = keys.replies(CONTROLLER)
    for garbage in [b"not json", b"{}", b'{"activation_id": 42}', b"[1, 2]", b"\xff\xfe", b""]:
        await redis.publish(channel, garbage)
    # Published right behind the garbage: a listener that died on it would miss this one.
    await redis.publish(channel, Reply(activation_id="a" * 32).encode())
    assert await asyncio.wait_for(future, 5) is None


async def test_listen_ignores_replies_nobody_waits_for(
    redis: Redis, listening: tuple[Waiters, Keys]
) -> None:
    waiters, keys = listening
    await redis.publish(keys.replies(CONTROLLER), Reply(activation_id="c" * 32).encode())
    future = waiters.register("a" * 32)
    await redis.publish(keys.replies(CONTROLLER), Reply(activation_id="a" * 32).encode())
    await asyncio.wait_for(future, 5)
    assert len(waiters) == 0
