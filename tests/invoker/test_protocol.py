"""The controller/invoker contract (invoker/protocol.py): messages and their encoding, key names,
and the scripts and operations that move invocations between states, on a real Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from invoker.protocol import (
    CLAIM_SCRIPT,
    COMPLETE_SCRIPT,
    FIELD,
    INVOKER_GROUP,
    MOVE_SCRIPT,
    SCHEMA_VERSION,
    ActionLimitsMsg,
    ActionRef,
    Invocation,
    InvokerInfo,
    Keys,
    Outcome,
    Reason,
    Result,
    StemCell,
    dead_invokers,
    forget_invoker,
    live_invokers,
    reap_queue,
    stem_cells_of,
)
from tests.conftest import REDIS_URL

ABANDONED = "The action did not produce a valid response and exited unexpectedly."


def action(package: str = "", **changes: Any) -> ActionRef:
    fields: dict[str, Any] = {
        "namespace": "acme",
        "package": package,
        "name": "hello",
        "version": "0.0.3",
        "kind": "nodejs:18",
        "image": "homerun/action-nodejs-v18:latest",
        "main": "handler",
        "code_digest": "ab" * 32,
        "limits": ActionLimitsMsg(timeout=60_000, memory=256, logs=10),
    }
    return ActionRef(**{**fields, **changes})


def invocation(n: int = 0, **changes: Any) -> Invocation:
    fields: dict[str, Any] = {
        "activation_id": uuid.uuid4().hex,
        "transaction_id": f"tx{n}",
        "namespace": "guest",
        "subject": "someone@example.com",
        "action": action(package="tools"),
        "params": {"n": n, "nested": {"list": [1, "two", None]}},
        "init_env": {"MY_INIT": "v"},
        "api_key": "uuid:key",
        "api_host": "https://runtime.example.com",
        "cause": "c" * 32,
        "reply_to": "controller-1",
        "accepted_at": 1_700_000_000_000,
    }
    return Invocation(**{**fields, **changes})


def info(invoker_id: str, heartbeat: int = 1_700_000_000_500) -> InvokerInfo:
    return InvokerInfo(
        id=invoker_id, slots=8, memory_mb=2048, sandbox="process",
        started=1_700_000_000_000, heartbeat=heartbeat,
    )  # fmt: skip


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
def keys(redis_prefix: str) -> Keys:
    return Keys(redis_prefix)


async def entries(redis: Redis, stream: str) -> list[tuple[str, bytes]]:
    return [
        (entry_id.decode(), fields[FIELD.encode()])
        for entry_id, fields in await redis.xrange(stream, "-", "+")
    ]


async def results(redis: Redis, keys: Keys) -> list[Result]:
    return [Result.decode(raw) for _, raw in await entries(redis, keys.results)]


async def enqueue(redis: Redis, keys: Keys, invoker_id: str, inv: Invocation) -> str:
    entry_id = await redis.xadd(keys.queue(invoker_id), {FIELD: inv.encode()})
    return str(entry_id.decode())


async def register(redis: Redis, keys: Keys, invoker_id: str, *, alive_ms: int | None) -> None:
    await redis.hset(keys.invokers, invoker_id, info(invoker_id).encode())
    if alive_ms is not None:
        await redis.set(keys.alive(invoker_id), "1", px=alive_ms)


# Messages.


def test_invocation_round_trip() -> None:
    inv = invocation(params=[1, {"a": "b"}], api_key=None, cause=None, reply_to=None)
    decoded = Invocation.decode(inv.encode())
    assert decoded == inv
    assert Invocation.decode(inv.encode().encode()) == inv  # bytes, as Redis returns them
    assert decoded.v == SCHEMA_VERSION
    assert decoded.action.limits.concurrency == 1


def test_invocation_round_trip_keeps_every_field() -> None:
    inv = invocation(7)
    assert json.loads(inv.encode()) == json.loads(Invocation.decode(inv.encode()).encode())
    assert Invocation.decode(inv.encode()).model_dump() == inv.model_dump()


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    inv = invocation()
    raw = json.loads(inv.encode())
    raw["added_in_a_later_version"] = {"x": 1}
    raw["action"]["also_new"] = True
    assert Invocation.decode(json.dumps(raw)) == inv


@pytest.mark.parametrize(
    "activation_id",
    ["", "ABCDEF0123456789ABCDEF0123456789", "0123456789abcdef", "g" * 32, "a" * 33],
)
def test_activation_ids_are_32_lowercase_hex(activation_id: str) -> None:
    with pytest.raises(ValidationError):
        invocation(activation_id=activation_id)


@pytest.mark.parametrize("raw", [b"not json", b"{}", b'{"v": 1}', b"\xff\xfe", b"[]"])
def test_undecodable_messages_raise_value_errors(raw: bytes) -> None:
    for message in (Invocation, Result, InvokerInfo):
        with pytest.raises(ValueError):
            message.decode(raw)


@pytest.mark.parametrize("outcome", list(Outcome))
def test_result_round_trip(outcome: Outcome) -> None:
    result = Result(
        activation_id=uuid.uuid4().hex, namespace="guest", subject="s", action=action(),
        cause=None, reply_to="c1", outcome=outcome, reason=Reason.TIMEOUT, result=[1, 2],
        start=10, end=20, wait_time=3, init_time=4, logs=["a", "b"], invoker="inv-1",
    )  # fmt: skip
    decoded = Result.decode(result.encode())
    assert decoded == result
    assert decoded.outcome is outcome
    assert decoded.reason is Reason.TIMEOUT
    assert decoded.timed_out
    assert json.loads(result.encode())["outcome"] == outcome.value


def test_result_failure_carries_the_invocation_and_the_message() -> None:
    inv = invocation(accepted_at=1_000)
    result = Result.failure(
        inv, Outcome.INTERNAL_ERROR, Reason.ABANDONED, "gone", start=1_250, end=1_300,
        invoker="inv-9", logs=["line"],
    )  # fmt: skip
    assert result.result == {"error": "gone"}
    assert (result.activation_id, result.namespace, result.subject) == (
        inv.activation_id, inv.namespace, inv.subject,
    )  # fmt: skip
    assert (result.action, result.cause, result.reply_to) == (inv.action, inv.cause, inv.reply_to)
    assert (result.start, result.end, result.wait_time) == (1_250, 1_300, 250)
    assert (result.invoker, result.logs, result.init_time) == ("inv-9", ["line"], None)
    assert not result.timed_out
    early = Result.failure(
        inv, Outcome.INTERNAL_ERROR, Reason.INTERNAL, "x", start=900, end=900, invoker="i"
    )
    assert early.wait_time == 0  # clocks disagree: never negative
    assert Result.decode(result.encode()) == result


def test_invoker_info_round_trip() -> None:
    original = info("inv-1")
    assert InvokerInfo.decode(original.encode()) == original
    assert InvokerInfo.decode(original.encode()).v == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("outcome", "value", "status_code", "keeps_container"),
    [
        (Outcome.SUCCESS, "success", 0, True),
        (Outcome.APPLICATION_ERROR, "application error", 1, True),
        (Outcome.DEVELOPER_ERROR, "action developer error", 2, False),
        (Outcome.INTERNAL_ERROR, "whisk internal error", 3, False),
    ],
)
def test_outcomes(outcome: Outcome, value: str, status_code: int, keeps_container: bool) -> None:
    assert outcome.value == value
    assert Outcome(value) is outcome
    assert outcome.status_code == status_code
    assert outcome.keeps_container is keeps_container


@pytest.mark.parametrize(
    ("package", "path", "fully_qualified"),
    [
        ("", "acme/hello", "/acme/hello"),
        ("tools", "acme/tools/hello", "/acme/tools/hello"),
    ],
)
def test_action_ref_names(package: str, path: str, fully_qualified: str) -> None:
    ref = action(package=package)
    assert ref.path == path
    assert ref.fully_qualified == fully_qualified


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (lambda k: k.invokers, "p1:invokers"),
        (lambda k: k.results, "p1:results"),
        (lambda k: k.queue("inv-1"), "p1:invoker:inv-1:queue"),
        (lambda k: k.running("inv-1"), "p1:invoker:inv-1:running"),
        (lambda k: k.alive("inv-1"), "p1:invoker:inv-1:alive"),
        (lambda k: k.reaper_lock("inv-1"), "p1:invoker:inv-1:reaping"),
        (lambda k: k.code("ab12"), "p1:code:ab12"),
        (lambda k: k.replies("ctl-2"), "p1:replies:ctl-2"),
        (lambda k: k.runtimes, "p1:runtimes"),
        (lambda k: k.throttle("acme:rate"), "p1:throttle:acme:rate"),
    ],
    ids=[
        "invokers", "results", "queue", "running", "alive", "reaper_lock", "code", "replies",
        "runtimes", "throttle",
    ],
)  # fmt: skip
def test_every_key_lives_under_the_prefix(name: Any, expected: str) -> None:
    assert name(Keys("p1")) == expected
    assert name(Keys()).startswith("homerun:")


def test_stem_cells_of_a_manifest() -> None:
    manifest = {
        "runtimes": {
            "nodejs": [
                {"kind": "nodejs:18", "image": "node18", "stemCells": [
                    {"count": 2, "memory": 256}, {"count": 1, "memory": 512},
                ]},
                {"kind": "nodejs:20", "image": "node20"},
            ],
            "python": [
                {"kind": "python:3.11", "image": "py311",
                 "stemCells": [{"count": 1, "memory": 128}]},
            ],
        }
    }  # fmt: skip
    assert stem_cells_of(manifest) == [
        StemCell(kind="nodejs:18", image="node18", memory=256, count=2),
        StemCell(kind="nodejs:18", image="node18", memory=512, count=1),
        StemCell(kind="python:3.11", image="py311", memory=128, count=1),
    ]
    assert stem_cells_of({}) == []
    assert stem_cells_of({"runtimes": {}}) == []


# The scripts.


async def test_claim_succeeds_only_while_the_entry_exists(redis: Redis, keys: Keys) -> None:
    claim = redis.register_script(CLAIM_SCRIPT)
    inv = invocation()
    entry_id = await enqueue(redis, keys, "a", inv)
    script_keys = [keys.queue("a"), keys.running("a"), keys.epoch]
    # The first claim of Redis's life sets the epoch; later ones return it.
    assert await claim(keys=script_keys, args=[entry_id, inv.activation_id, "e1"]) == b"e1"
    assert await redis.hget(keys.running("a"), inv.activation_id) == entry_id.encode()
    again = await enqueue(redis, keys, "a", invocation(2))
    assert await claim(keys=script_keys, args=[again, invocation(2).activation_id, "e2"]) == b"e1"

    other = invocation(1)
    moved_id = await enqueue(redis, keys, "a", other)
    await redis.xdel(keys.queue("a"), moved_id)  # as the reaper does
    assert await claim(keys=script_keys, args=[moved_id, other.activation_id, "e3"]) == 0
    assert await redis.hget(keys.running("a"), other.activation_id) is None


async def test_complete_appends_exactly_one_result(redis: Redis, keys: Keys) -> None:
    complete = redis.register_script(COMPLETE_SCRIPT)
    queue, running = keys.queue("a"), keys.running("a")
    await redis.xgroup_create(queue, INVOKER_GROUP, "0", mkstream=True)
    inv = invocation()
    entry_id = await enqueue(redis, keys, "a", inv)
    neighbour = invocation(1)
    await enqueue(redis, keys, "a", neighbour)  # must stay
    await redis.xreadgroup(INVOKER_GROUP, "a", {queue: ">"}, count=1)
    await redis.hset(running, inv.activation_id, entry_id)
    result = Result.failure(
        inv, Outcome.INTERNAL_ERROR, Reason.INTERNAL, "ok", start=1, end=2, invoker="a"
    )
    await redis.set(keys.epoch, "e1")
    args = [entry_id, inv.activation_id, result.encode(), INVOKER_GROUP, FIELD, "e1"]
    script_keys = [queue, running, keys.results, keys.epoch]

    assert await complete(keys=script_keys, args=args) == 1
    assert await results(redis, keys) == [result]
    assert [Invocation.decode(raw) for _, raw in await entries(redis, queue)] == [neighbour]
    assert await redis.hget(running, inv.activation_id) is None
    assert (await redis.xpending(queue, INVOKER_GROUP))["pending"] == 0

    assert await complete(keys=script_keys, args=args) == 0  # a retry after success
    assert len(await results(redis, keys)) == 1


async def test_complete_after_a_move_records_nothing(redis: Redis, keys: Keys) -> None:
    complete = redis.register_script(COMPLETE_SCRIPT)
    move = redis.register_script(MOVE_SCRIPT)
    inv = invocation()
    entry_id = await enqueue(redis, keys, "dead", inv)
    await redis.hset(keys.running("dead"), inv.activation_id, entry_id)
    moved = await move(
        keys=[keys.queue("dead"), keys.queue("b")], args=[entry_id, inv.encode(), FIELD]
    )
    assert moved == 1
    result = Result.failure(
        inv, Outcome.INTERNAL_ERROR, Reason.INTERNAL, "x", start=1, end=2, invoker=""
    )
    await redis.set(keys.epoch, "e1")
    completed = await complete(
        keys=[keys.queue("dead"), keys.running("dead"), keys.results, keys.epoch],
        args=[entry_id, inv.activation_id, result.encode(), INVOKER_GROUP, FIELD, "e1"],
    )
    assert completed == 0
    assert await redis.xlen(keys.results) == 0


@pytest.mark.parametrize("epoch_now", [None, "e2"], ids=["emptied", "emptied-and-used"])
async def test_complete_records_what_ran_after_redis_lost_its_data(
    redis: Redis, keys: Keys, epoch_now: str | None
) -> None:
    # Claimed in the epoch e1; Redis then restarted without its data (the entry, the running
    # mark and the epoch are gone; another claim may have set a new epoch since).
    complete = redis.register_script(COMPLETE_SCRIPT)
    inv = invocation()
    if epoch_now is not None:
        await redis.set(keys.epoch, epoch_now)
    result = Result.failure(
        inv, Outcome.INTERNAL_ERROR, Reason.INTERNAL, "ran", start=1, end=2, invoker="a"
    )
    script_keys = [keys.queue("a"), keys.running("a"), keys.results, keys.epoch]
    args = ["1-1", inv.activation_id, result.encode(), INVOKER_GROUP, FIELD, "e1"]
    assert await complete(keys=script_keys, args=args) == 1
    assert await results(redis, keys) == [result]
    # Not claimed in this life (no epoch): a gone entry records nothing.
    assert await complete(keys=script_keys, args=[*args[:5], ""]) == 0
    assert len(await results(redis, keys)) == 1


async def test_move_happens_once(redis: Redis, keys: Keys) -> None:
    move = redis.register_script(MOVE_SCRIPT)
    inv = invocation()
    entry_id = await enqueue(redis, keys, "dead", inv)
    args = [entry_id, inv.encode(), FIELD]
    assert await move(keys=[keys.queue("dead"), keys.queue("b")], args=args) == 1
    assert await move(keys=[keys.queue("dead"), keys.queue("c")], args=args) == 0
    assert await redis.xlen(keys.queue("dead")) == 0
    assert [raw for _, raw in await entries(redis, keys.queue("b"))] == [inv.encode().encode()]
    assert await redis.exists(keys.queue("c")) == 0


# Liveness.


async def test_liveness_follows_the_alive_key_ttl(redis: Redis, keys: Keys) -> None:
    await register(redis, keys, "inv-c", alive_ms=None)  # registered, never heartbeat
    await register(redis, keys, "inv-b", alive_ms=200)
    await register(redis, keys, "inv-a", alive_ms=60_000)
    assert [i.id for i in await live_invokers(redis, keys)] == ["inv-a", "inv-b"]
    assert await live_invokers(redis, keys) == [info("inv-a"), info("inv-b")]
    assert await dead_invokers(redis, keys) == ["inv-c"]

    for _ in range(100):  # until inv-b's key expires
        if not await redis.exists(keys.alive("inv-b")):
            break
        await asyncio.sleep(0.05)
    assert [i.id for i in await live_invokers(redis, keys)] == ["inv-a"]
    assert await dead_invokers(redis, keys) == ["inv-b", "inv-c"]


async def test_no_registered_invokers(redis: Redis, keys: Keys) -> None:
    assert await live_invokers(redis, keys) == []
    assert await dead_invokers(redis, keys) == []


async def test_an_alive_key_without_registration_is_not_an_invoker(
    redis: Redis, keys: Keys
) -> None:
    await redis.set(keys.alive("ghost"), "1", px=60_000)
    assert await live_invokers(redis, keys) == []


# Reaping.


async def test_reap_queue_redelivers_unstarted_and_fails_started(redis: Redis, keys: Keys) -> None:
    resident = invocation(100)
    await enqueue(redis, keys, "live-1", resident)  # live-1 holds one entry already
    started, waiting_1, waiting_2 = invocation(1), invocation(2), invocation(3)
    started_id = await enqueue(redis, keys, "dead", started)
    await enqueue(redis, keys, "dead", waiting_1)
    await enqueue(redis, keys, "dead", waiting_2)
    await redis.hset(keys.running("dead"), started.activation_id, started_id)

    moved = await reap_queue(redis, keys, "dead", ["live-1", "live-2"], now_ms=1_700_000_009_000)

    assert moved == (2, 1)
    assert await redis.xlen(keys.queue("dead")) == 0
    # Each goes to the shortest queue: live-2 (0 < 1), then live-1 (1 = 1: the first).
    assert [Invocation.decode(raw) for _, raw in await entries(redis, keys.queue("live-2"))] == [
        waiting_1
    ]
    assert [Invocation.decode(raw) for _, raw in await entries(redis, keys.queue("live-1"))] == [
        resident,
        waiting_2,
    ]
    [failure] = await results(redis, keys)
    assert failure.activation_id == started.activation_id
    assert failure.outcome is Outcome.INTERNAL_ERROR
    assert failure.outcome.status_code == 3
    assert failure.reason is Reason.ABANDONED
    assert failure.result == {"error": ABANDONED}
    assert (failure.start, failure.end) == (1_700_000_009_000, 1_700_000_009_000)
    assert failure.wait_time == 9_000
    assert failure.invoker == "dead"
    assert failure.action == started.action


async def test_reap_queue_balances_over_shortest_queues(redis: Redis, keys: Keys) -> None:
    for n in range(3):
        await enqueue(redis, keys, "live-1", invocation(100 + n))
    waiting = [invocation(n) for n in range(5)]
    for inv in waiting:
        await enqueue(redis, keys, "dead", inv)
    assert await reap_queue(redis, keys, "dead", ["live-1", "live-2"], now_ms=0) == (5, 0)
    # live-2 fills up to live-1's length, then they alternate starting with live-1.
    assert await redis.xlen(keys.queue("live-1")) == 3 + 1
    assert await redis.xlen(keys.queue("live-2")) == 4
    moved = [Invocation.decode(raw) for _, raw in await entries(redis, keys.queue("live-2"))]
    assert moved == [*waiting[:3], waiting[4]]


async def test_reap_queue_without_live_invokers_moves_nothing_unstarted(
    redis: Redis, keys: Keys
) -> None:
    started, waiting = invocation(1), invocation(2)
    started_id = await enqueue(redis, keys, "dead", started)
    waiting_id = await enqueue(redis, keys, "dead", waiting)
    await redis.hset(keys.running("dead"), started.activation_id, started_id)

    assert await reap_queue(redis, keys, "dead", [], now_ms=5) == (0, 1)
    # The waiting entry stays for a later reap; the lost one is recorded now all the same.
    assert await entries(redis, keys.queue("dead")) == [(waiting_id, waiting.encode().encode())]
    assert [r.activation_id for r in await results(redis, keys)] == [started.activation_id]


@pytest.mark.parametrize(
    "fields",
    [{FIELD: b"not json"}, {FIELD: b'{"v": 1}'}, {"unexpected": b"no message field"}],
    ids=["not-json", "invalid", "no-field"],
)
async def test_reap_queue_gets_past_an_undecodable_entry(
    redis: Redis, keys: Keys, fields: dict[str, bytes]
) -> None:
    before, after = invocation(1), invocation(2)
    await enqueue(redis, keys, "dead", before)
    await redis.xadd(keys.queue("dead"), fields)  # type: ignore[arg-type]
    await enqueue(redis, keys, "dead", after)

    redelivered, failed = await reap_queue(redis, keys, "dead", ["live-1"], now_ms=0)

    assert (redelivered, failed) == (2, 0)
    moved = [Invocation.decode(raw) for _, raw in await entries(redis, keys.queue("live-1"))]
    assert moved == [before, after]


async def test_reap_queue_of_an_empty_queue(redis: Redis, keys: Keys) -> None:
    assert await reap_queue(redis, keys, "nobody", ["live-1"], now_ms=0) == (0, 0)
    assert await redis.exists(keys.results, keys.queue("live-1")) == 0


async def test_forget_invoker_only_once_its_queue_is_empty(redis: Redis, keys: Keys) -> None:
    await register(redis, keys, "dead", alive_ms=None)
    inv = invocation()
    entry_id = await enqueue(redis, keys, "dead", inv)
    await redis.hset(keys.running("dead"), inv.activation_id, entry_id)

    assert await forget_invoker(redis, keys, "dead") is False
    assert await redis.hexists(keys.invokers, "dead")
    assert await redis.xlen(keys.queue("dead")) == 1

    await reap_queue(redis, keys, "dead", [], now_ms=0)
    assert await forget_invoker(redis, keys, "dead") is True
    assert not await redis.hexists(keys.invokers, "dead")
    assert await redis.exists(keys.queue("dead"), keys.running("dead")) == 0
    assert await dead_invokers(redis, keys) == []
