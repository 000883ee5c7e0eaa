"""The recorder turns invoker results into exactly one activation record each, on real Redis
and both databases (shared/spec/openwhisk.md §3.5)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.db.engine import create_engine, session_factory
from controller.db.models import ActivationRow
from controller.execution import recorder as recorder_module
from controller.execution.recorder import Recorder
from controller.services import activations
from controller.settings import Settings
from controller.setup import in_transaction
from homerun.redisclient import connect
from invoker.protocol import (
    FIELD,
    RECORDERS_GROUP,
    ActionLimitsMsg,
    ActionRef,
    Keys,
    Outcome,
    Reason,
    Result,
)
from tests.conftest import REDIS_URL, RedisServer

START = 1_700_000_000_000


def result(namespace: str, activation_id: str, **fields: Any) -> Result:
    values: dict[str, Any] = {
        "activation_id": activation_id,
        "namespace": namespace,
        "subject": namespace,
        "action": ActionRef(
            namespace="owner-ns",
            package="tools",
            name="hello",
            version="0.0.7",
            kind="nodejs:18",
            image="homerun/action-nodejs-v18:latest",
            code_digest="d" * 64,
            limits=ActionLimitsMsg(timeout=30_000, memory=512, logs=5, concurrency=1),
        ),
        "reply_to": "ctl-1",
        "outcome": Outcome.SUCCESS,
        "result": {"payload": "hi World"},
        "start": START + 12,
        "end": START + 57,
        "wait_time": 12,
        "logs": ["2024-03-16T20:03:00.123456789Z stdout: hello"],
        "invoker": "inv-a",
    }
    values.update(fields)
    return Result(**values)


class Notified:
    """Records the `notify` (after recording) and `early_notify` (before) calls."""

    def __init__(self) -> None:
        self.results: list[Result] = []
        self.early: list[Result] = []

    def __call__(self, pipe: Any, result: Result) -> None:
        self.results.append(result)

    def early_notify(self, result: Result) -> None:
        self.early.append(result)


@pytest.fixture
async def namespace(create_namespace: Callable[[str, str], Awaitable[dict[str, Any]]]) -> str:
    created = await create_namespace("acme", "int1")
    return str(created["name"])


@pytest.fixture
async def redis(redis_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
def keys(redis_prefix: str) -> Keys:
    return Keys(redis_prefix)


@pytest.fixture
async def transaction(settings: Settings) -> AsyncIterator[Callable[[], Any]]:
    engine = create_engine(settings.effective_database_url)
    sessions = session_factory(engine)

    @contextlib.asynccontextmanager
    async def begin() -> AsyncIterator[AsyncSession]:
        async with sessions() as session, session.begin():
            yield session

    yield begin
    await engine.dispose()


@pytest.fixture
def notified() -> Notified:
    return Notified()


@pytest.fixture
async def start_recorder(
    redis: Redis, keys: Keys, transaction: Callable[[], Any], notified: Notified
) -> AsyncIterator[Callable[[], Awaitable[Recorder]]]:
    """`await start_recorder()`: a running recorder (stopped after the test)."""
    tasks: list[asyncio.Task[None]] = []

    async def start() -> Recorder:
        recorder = Recorder(
            redis, keys, "ctl-test", transaction, notified, notified.early_notify, block_ms=50
        )
        await recorder.setup()
        tasks.append(asyncio.create_task(recorder.run()))
        return recorder

    yield start
    for task in tasks:
        assert not task.done(), "the recorder stopped"
        await cancel(task)


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait for it. On Python 3.11 `asyncio.wait_for`, which redis-py uses
    to send commands, can swallow a cancellation (CPython gh-86296): cancel again if so."""
    for _ in range(50):
        task.cancel()
        done, _pending = await asyncio.wait([task], timeout=0.1)
        if done:
            return
    pytest.fail(f"{task} did not stop when cancelled")


async def append(redis: Redis, keys: Keys, *results: Result) -> None:
    for each in results:
        await redis.xadd(keys.results, {FIELD: each.encode()})


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        await asyncio.sleep(0.02)


async def settled(redis: Redis, keys: Keys) -> bool:
    """Every entry of the results stream acknowledged and deleted."""
    pending = await redis.xpending(keys.results, RECORDERS_GROUP)
    return await redis.xlen(keys.results) == 0 and pending["pending"] == 0


async def record_of(settings: Settings, activation_id: str) -> activations.Activation | None:
    return await in_transaction(settings, lambda s: activations.get(s, activation_id))


async def record_count(settings: Settings, activation_id: str) -> int:
    query = select(func.count()).where(ActivationRow.activation_id == activation_id)
    count = await in_transaction(settings, lambda s: s.scalar(query))
    return int(count or 0)


async def test_a_result_becomes_its_activation_record(
    settings: Settings,
    namespace: str,
    redis: Redis,
    keys: Keys,
    notified: Notified,
    start_recorder: Callable[[], Awaitable[Recorder]],
) -> None:
    sent = result(namespace, "a" * 32, init_time=40)
    await start_recorder()
    await append(redis, keys, sent)
    await until(lambda: settled(redis, keys), "the result is acknowledged")

    record = await record_of(settings, "a" * 32)
    assert record is not None
    assert record.activation_id == "a" * 32
    assert record.name == "hello"
    assert record.namespace == namespace
    assert record.subject == namespace
    assert record.version == "0.0.7"
    assert (record.start, record.end, record.duration) == (START + 12, START + 57, 45)
    assert record.status_code == 0
    assert record.response == {
        "status": "success",
        "statusCode": 0,
        "success": True,
        "result": {"payload": "hi World"},
        "size": 22,
    }
    assert record.logs == ["2024-03-16T20:03:00.123456789Z stdout: hello"]
    assert record.annotations == [
        {"key": "path", "value": "owner-ns/tools/hello"},
        {"key": "waitTime", "value": 12},
        {"key": "kind", "value": "nodejs:18"},
        {"key": "timeout", "value": False},
        {
            "key": "limits",
            "value": {"timeout": 30_000, "memory": 512, "logs": 5, "concurrency": 1},
        },
        {"key": "initTime", "value": 40},
    ]
    assert record.cause is None
    assert notified.results == notified.early == [sent]


@pytest.mark.parametrize(
    ("outcome", "reason", "payload", "status_code", "timeout"),
    [
        (Outcome.SUCCESS, None, [1, 2], 0, False),
        (Outcome.APPLICATION_ERROR, None, {"error": "bad input"}, 1, False),
        (
            Outcome.DEVELOPER_ERROR,
            Reason.TIMEOUT,
            {"error": "The action exceeded its time limits of 30000 milliseconds."},
            2,
            True,
        ),
        (Outcome.DEVELOPER_ERROR, Reason.OOM, {"error": "oom"}, 2, False),
        (Outcome.INTERNAL_ERROR, Reason.ABANDONED, {"error": "lost"}, 3, False),
    ],
)
async def test_outcomes_are_recorded(
    settings: Settings,
    namespace: str,
    redis: Redis,
    keys: Keys,
    start_recorder: Callable[[], Awaitable[Recorder]],
    outcome: Outcome,
    reason: Reason | None,
    payload: Any,
    status_code: int,
    timeout: bool,
) -> None:
    await start_recorder()
    await append(
        redis, keys, result(namespace, "b" * 32, outcome=outcome, reason=reason, result=payload)
    )
    await until(lambda: settled(redis, keys), "the result is acknowledged")

    record = await record_of(settings, "b" * 32)
    assert record is not None
    assert record.status_code == status_code
    assert record.outcome is outcome
    assert record.response["status"] == outcome.value
    assert record.response["statusCode"] == status_code
    assert record.response["success"] is (outcome is Outcome.SUCCESS)
    assert record.response["result"] == payload
    assert record.annotation_map["timeout"] is timeout
    assert "initTime" not in record.annotation_map  # warm: no init_time


@pytest.mark.parametrize(
    ("payload", "size"),
    [
        pytest.param({"payload": "hi World"}, 22, id="spec-example"),
        pytest.param({}, 2, id="empty-object"),
        pytest.param([], 2, id="empty-array"),
        pytest.param({"error": "a\nb"}, 16, id="escaped-newline"),
        pytest.param({"text": "héllo"}, 16, id="non-ascii-counts-one-char"),
    ],
)
def test_response_size_counts_characters_of_compact_json(payload: Any, size: int) -> None:
    assert activations.response_of(result("ns", "c" * 32, result=payload))["size"] == size


async def test_a_component_result_is_marked_caused_by_a_sequence(
    settings: Settings,
    namespace: str,
    redis: Redis,
    keys: Keys,
    start_recorder: Callable[[], Awaitable[Recorder]],
) -> None:
    await start_recorder()
    await append(redis, keys, result(namespace, "c" * 32, cause="f" * 32))
    await until(lambda: settled(redis, keys), "the result is acknowledged")

    record = await record_of(settings, "c" * 32)
    assert record is not None
    assert record.cause == "f" * 32
    assert record.annotation_map["causedBy"] == "sequence"


async def test_a_redelivered_result_is_recorded_once(
    settings: Settings,
    namespace: str,
    redis: Redis,
    keys: Keys,
    notified: Notified,
    start_recorder: Callable[[], Awaitable[Recorder]],
) -> None:
    first = result(namespace, "d" * 32)
    await start_recorder()
    await append(redis, keys, first)
    await until(lambda: settled(redis, keys), "the first delivery is acknowledged")
    again = result(namespace, "d" * 32, result={"second": True}, start=START + 99, end=START + 120)
    await append(redis, keys, again)
    await until(lambda: settled(redis, keys), "the redelivery is acknowledged")

    assert await record_count(settings, "d" * 32) == 1
    record = await record_of(settings, "d" * 32)
    assert record is not None
    assert record.response["result"] == {"payload": "hi World"}  # the first one stays
    assert record.start == START + 12


async def test_duplicates_in_one_batch_are_recorded_once(
    settings: Settings,
    namespace: str,
    redis: Redis,
    keys: Keys,
    start_recorder: Callable[[], Awaitable[Recorder]],
) -> None:
    await append(redis, keys, result(namespace, "e" * 32), result(namespace, "e" * 32))
    await start_recorder()
    await until(lambda: settled(redis, keys), "both deliveries are acknowledged")
    assert await record_count(settings, "e" * 32) == 1


async def test_a_result_of_a_vanished_namespace_is_dropped(
    settings: Settings,
    namespace: str,
    redis: Redis,
    keys: Keys,
    start_recorder: Callable[[], Awaitable[Recorder]],
) -> None:
    await start_recorder()
    await append(redis, keys, result("gone-ns", "1" * 32))
    await append(redis, keys, result(namespace, "2" * 32))
    await until(lambda: settled(redis, keys), "both results are acknowledged")
    assert await record_of(settings, "1" * 32) is None
    assert await record_of(settings, "2" * 32) is not None

    await append(redis, keys, result(namespace, "3" * 32))  # the recorder is still going
    await until(lambda: settled(redis, keys), "a later result is acknowledged")
    assert await record_of(settings, "3" * 32) is not None


async def test_every_result_is_recorded_acknowledged_and_notified_once(
    settings: Settings,
    namespace: str,
    redis: Redis,
    keys: Keys,
    notified: Notified,
    start_recorder: Callable[[], Awaitable[Recorder]],
) -> None:
    sent = [result(namespace, f"{n:x}" * 32) for n in range(10)]
    await append(redis, keys, *sent[:4])  # waiting before the recorder starts
    await start_recorder()
    await append(redis, keys, *sent[4:])
    await until(lambda: settled(redis, keys), "all results are acknowledged")

    for each in sent:
        assert await record_count(settings, each.activation_id) == 1
    expected = sorted(r.activation_id for r in sent)
    assert sorted(r.activation_id for r in notified.results) == expected
    assert sorted(r.activation_id for r in notified.early) == expected
    assert await redis.xlen(keys.results) == 0
    groups = await redis.xinfo_groups(keys.results)
    assert [(g["name"], g["pending"]) for g in groups] == [(RECORDERS_GROUP.encode(), 0)]


async def test_results_an_earlier_life_read_but_did_not_acknowledge_are_recorded(
    settings: Settings,
    namespace: str,
    redis: Redis,
    keys: Keys,
    notified: Notified,
    start_recorder: Callable[[], Awaitable[Recorder]],
) -> None:
    await redis.xgroup_create(keys.results, RECORDERS_GROUP, "0", mkstream=True)
    pending = result(namespace, "4" * 32)
    await append(redis, keys, pending)
    # This controller, under the same consumer name, read it and died before recording it.
    read = await redis.xreadgroup(RECORDERS_GROUP, "ctl-test", {keys.results: ">"}, count=10)
    assert len(read[0][1]) == 1
    assert recorder_module.CLAIM_IDLE_MS >= 30_000  # so claiming cannot be what picks it up

    await start_recorder()
    await until(lambda: settled(redis, keys), "the pending result is recorded")
    assert await record_count(settings, "4" * 32) == 1
    assert notified.results == [pending]


async def test_results_of_a_dead_consumer_are_claimed_after_the_idle_time(
    settings: Settings,
    namespace: str,
    redis: Redis,
    keys: Keys,
    notified: Notified,
    start_recorder: Callable[[], Awaitable[Recorder]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recorder_module, "CLAIM_IDLE_MS", 200)
    await redis.xgroup_create(keys.results, RECORDERS_GROUP, "0", mkstream=True)
    lost = result(namespace, "5" * 32)
    await append(redis, keys, lost)
    # Another controller reads it and dies before acknowledging it.
    read = await redis.xreadgroup(RECORDERS_GROUP, "ctl-dead", {keys.results: ">"}, count=10)
    assert len(read[0][1]) == 1

    await start_recorder()
    await until(lambda: settled(redis, keys), "the abandoned result is claimed")
    assert await record_count(settings, "5" * 32) == 1
    assert notified.results == [lost]


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({FIELD: b"not json"}, id="not-json"),
        pytest.param({FIELD: b'{"activation_id": "x"}'}, id="not-a-result"),
        pytest.param({FIELD: b"\xff\xfe"}, id="not-utf8"),
        pytest.param({"other": b"x"}, id="no-message-field"),
    ],
)
async def test_an_undecodable_entry_is_dropped(
    settings: Settings,
    namespace: str,
    redis: Redis,
    keys: Keys,
    notified: Notified,
    start_recorder: Callable[[], Awaitable[Recorder]],
    fields: dict[str, bytes],
) -> None:
    good = result(namespace, "6" * 32)
    await redis.xadd(keys.results, fields)  # type: ignore[arg-type]
    await append(redis, keys, good)
    await start_recorder()
    await until(lambda: settled(redis, keys), "both entries are acknowledged")
    assert await record_count(settings, "6" * 32) == 1
    assert notified.results == notified.early == [good]


async def test_recording_goes_on_after_redis_restarts_without_its_data(
    settings: Settings,
    namespace: str,
    keys: Keys,
    transaction: Callable[[], Any],
    notified: Notified,
    redis_server: RedisServer,
) -> None:
    redis = connect(redis_server.url)
    recorder = Recorder(
        redis, keys, "ctl-test", transaction, notified, notified.early_notify, block_ms=50
    )
    await recorder.setup()
    task = asyncio.create_task(recorder.run())
    try:
        before = result(namespace, "7" * 32)
        await append(redis, keys, before)
        await until(lambda: settled(redis, keys), "the first result is recorded")

        redis_server.kill()  # the results stream and its consumer group are gone
        redis_server.start()
        after = result(namespace, "8" * 32)
        await append(redis, keys, after)

        async def recorded() -> bool:
            return await record_count(settings, "8" * 32) == 1

        await until(recorded, "the result after the restart is recorded")
        await until(lambda: settled(redis, keys), "it is acknowledged")
        assert not task.done(), "the recorder stopped"
    finally:
        await cancel(task)
        await redis.aclose()
