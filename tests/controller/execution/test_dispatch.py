"""Choosing an invoker, enqueuing, and publishing action code, on real Redis."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from controller.errors import HomerunError
from controller.execution.dispatch import CODE_TTL_S, CodeMissing, Dispatcher, NoInvokers
from invoker.protocol import FIELD, ActionLimitsMsg, ActionRef, Invocation, InvokerInfo, Keys
from tests.conftest import REDIS_URL

CODE_DIGEST = "d" * 64  # the code of `invocation()`, stored by the fixture


@pytest.fixture
async def redis(redis_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    await client.set(Keys(redis_prefix).code(CODE_DIGEST), "function main() {}")
    yield client
    await client.aclose()


@pytest.fixture
def keys(redis_prefix: str) -> Keys:
    return Keys(redis_prefix)


async def register(
    redis: Redis, keys: Keys, invoker_id: str, *, slots: int = 4, alive: bool = True
) -> None:
    info = InvokerInfo(
        id=invoker_id, slots=slots, memory_mb=2048, sandbox="process", started=1, heartbeat=1
    )
    await redis.hset(keys.invokers, invoker_id, info.encode())
    if alive:
        await redis.set(keys.alive(invoker_id), "1", ex=60)


async def fill(redis: Redis, keys: Keys, invoker_id: str, entries: int) -> None:
    for n in range(entries):
        await redis.xadd(keys.queue(invoker_id), {FIELD: f"filler {n}"})


def invocation(name: str = "hello", package: str = "") -> Invocation:
    return Invocation(
        activation_id="0123456789abcdef0123456789abcdef",
        transaction_id="tx-1",
        namespace="acme-int1",
        subject="acme-int1",
        action=ActionRef(
            namespace="acme-int1",
            package=package,
            name=name,
            version="0.0.3",
            kind="nodejs:18",
            image="homerun/action-nodejs-v18:latest",
            code_digest=CODE_DIGEST,
            limits=ActionLimitsMsg(timeout=60_000, memory=256, logs=10),
        ),
        params={"name": "World"},
        init_env={"TOKEN": "t"},
        api_key="uuid:key",
        api_host="https://runtime.example",
        reply_to="ctl-1",
        accepted_at=1_700_000_000_000,
    )


HOME_KEYS = [f"acme-int1/acme-int1/action-{n}" for n in range(60)]


async def choose(dispatcher: Dispatcher, home_key: str) -> str:
    """The invoker an invocation with this home key goes to, leaving the queues as they were."""
    path = home_key.split("/")[2:]  # "namespace/namespace/[package/]name"
    target = await dispatcher.enqueue(invocation(path[-1], path[0] if len(path) == 2 else ""))
    queue = dispatcher.keys.queue(target)
    [(entry_id, _)] = await dispatcher.redis.xrevrange(queue, count=1)
    await dispatcher.redis.xdel(queue, entry_id)
    return target


async def test_no_invokers_raises(redis: Redis, keys: Keys) -> None:
    with pytest.raises(NoInvokers):
        await choose(Dispatcher(redis, keys), "acme-int1/acme-int1/hello")


async def test_only_dead_invokers_raises(redis: Redis, keys: Keys) -> None:
    await register(redis, keys, "inv-a", alive=False)
    await register(redis, keys, "inv-b", alive=False)
    with pytest.raises(NoInvokers):
        await choose(Dispatcher(redis, keys), "acme-int1/acme-int1/hello")


async def test_no_invokers_is_a_homerun_error_with_a_message(redis: Redis, keys: Keys) -> None:
    with pytest.raises(HomerunError) as caught:
        await Dispatcher(redis, keys).enqueue(invocation())
    assert isinstance(caught.value, NoInvokers)
    assert caught.value.message


async def test_home_invoker_is_stable_for_a_key(redis: Redis, keys: Keys) -> None:
    for invoker_id in ("inv-c", "inv-a", "inv-b"):
        await register(redis, keys, invoker_id)
    first = [await choose(Dispatcher(redis, keys), key) for key in HOME_KEYS]
    again = Dispatcher(redis, keys)
    assert [await choose(again, key) for key in HOME_KEYS] == first
    assert [await choose(again, key) for key in HOME_KEYS] == first


async def test_home_does_not_depend_on_registration_order(redis: Redis, keys: Keys) -> None:
    for invoker_id in ("inv-a", "inv-b", "inv-c"):
        await register(redis, keys, invoker_id)
    forward = [await choose(Dispatcher(redis, keys), key) for key in HOME_KEYS]
    await redis.delete(keys.invokers)
    for invoker_id in ("inv-c", "inv-b", "inv-a"):
        await register(redis, keys, invoker_id)
    assert [await choose(Dispatcher(redis, keys), key) for key in HOME_KEYS] == forward


async def test_keys_spread_over_invokers(redis: Redis, keys: Keys) -> None:
    for invoker_id in ("inv-a", "inv-b", "inv-c"):
        await register(redis, keys, invoker_id)
    dispatcher = Dispatcher(redis, keys)
    homes = Counter([await choose(dispatcher, key) for key in HOME_KEYS])
    assert set(homes) == {"inv-a", "inv-b", "inv-c"}
    assert min(homes.values()) >= 5  # 60 keys: no invoker is starved


async def test_full_home_overflows_to_the_next_in_order(redis: Redis, keys: Keys) -> None:
    ids = ["inv-a", "inv-b", "inv-c"]
    for invoker_id in ids:
        await register(redis, keys, invoker_id, slots=2)
    dispatcher = Dispatcher(redis, keys)
    key = HOME_KEYS[0]
    home = await choose(dispatcher, key)
    following = ids[(ids.index(home) + 1) % 3]
    after_that = ids[(ids.index(home) + 2) % 3]

    await fill(redis, keys, home, 1)  # below capacity: still home
    assert await choose(dispatcher, key) == home
    await fill(redis, keys, home, 1)  # XLEN == slots: full
    assert await choose(dispatcher, key) == following
    await fill(redis, keys, following, 2)
    assert await choose(dispatcher, key) == after_that


async def test_all_full_goes_home(redis: Redis, keys: Keys) -> None:
    ids = ["inv-a", "inv-b", "inv-c"]
    for invoker_id in ids:
        await register(redis, keys, invoker_id, slots=1)
    dispatcher = Dispatcher(redis, keys)
    homes = {key: await choose(dispatcher, key) for key in HOME_KEYS[:10]}
    for invoker_id in ids:
        await fill(redis, keys, invoker_id, 3)
    assert {key: await choose(dispatcher, key) for key in HOME_KEYS[:10]} == homes


@pytest.mark.parametrize("alive", ["inv-a", "inv-b", "inv-c"])
async def test_dead_invokers_are_never_chosen(redis: Redis, keys: Keys, alive: str) -> None:
    for invoker_id in ("inv-a", "inv-b", "inv-c"):
        await register(redis, keys, invoker_id, slots=1, alive=invoker_id == alive)
    dispatcher = Dispatcher(redis, keys)
    assert {await choose(dispatcher, key) for key in HOME_KEYS} == {alive}
    await fill(redis, keys, alive, 5)  # even full, a live invoker beats a dead one
    assert {await choose(dispatcher, key) for key in HOME_KEYS} == {alive}


async def test_an_invoker_whose_alive_key_expired_is_no_longer_chosen(
    redis: Redis, keys: Keys
) -> None:
    await register(redis, keys, "inv-a")
    await register(redis, keys, "inv-b")
    await redis.delete(keys.alive("inv-a"))
    dispatcher = Dispatcher(redis, keys)
    assert {await choose(dispatcher, key) for key in HOME_KEYS} == {"inv-b"}


async def test_enqueue_appends_the_encoded_invocation(redis: Redis, keys: Keys) -> None:
    for invoker_id in ("inv-a", "inv-b"):
        await register(redis, keys, invoker_id)
    message = invocation(package="tools")
    dispatcher = Dispatcher(redis, keys)
    target = await dispatcher.enqueue(message)

    assert target == await choose(dispatcher, "acme-int1/acme-int1/tools/hello")
    entries = await redis.xrange(keys.queue(target))
    assert len(entries) == 1
    _entry_id, fields = entries[0]
    assert set(fields) == {FIELD.encode()}
    assert Invocation.decode(fields[FIELD.encode()]) == message
    other = "inv-b" if target == "inv-a" else "inv-a"
    assert await redis.xlen(keys.queue(other)) == 0


async def test_enqueue_keeps_an_action_on_its_home(redis: Redis, keys: Keys) -> None:
    for invoker_id in ("inv-a", "inv-b", "inv-c"):
        await register(redis, keys, invoker_id, slots=10)
    dispatcher = Dispatcher(redis, keys)
    targets = {await dispatcher.enqueue(invocation()) for _ in range(5)}
    assert len(targets) == 1
    assert await redis.xlen(keys.queue(targets.pop())) == 5


class Loader:
    def __init__(self, code: str | None) -> None:
        self.code = code
        self.calls = 0

    async def __call__(self) -> str | None:
        self.calls += 1
        return self.code


DIGEST = "a" * 64


async def test_ensure_code_stores_the_code_with_a_ttl(redis: Redis, keys: Keys) -> None:
    load = Loader("function main() { return {}; }")
    await Dispatcher(redis, keys).ensure_code(DIGEST, load)
    assert load.calls == 1
    assert await redis.get(keys.code(DIGEST)) == b"function main() { return {}; }"
    ttl = await redis.ttl(keys.code(DIGEST))
    assert CODE_TTL_S - 60 <= ttl <= CODE_TTL_S


async def test_ensure_code_loads_only_when_absent(redis: Redis, keys: Keys) -> None:
    load = Loader("code v1")
    dispatcher = Dispatcher(redis, keys)
    await dispatcher.ensure_code(DIGEST, load)
    await dispatcher.ensure_code(DIGEST, load)
    await Dispatcher(redis, keys).ensure_code(DIGEST, load)  # another controller
    assert load.calls == 1

    await Dispatcher(redis, keys).ensure_code("b" * 64, load)
    assert load.calls == 2


async def test_ensure_code_refreshes_the_ttl_of_existing_code(redis: Redis, keys: Keys) -> None:
    await redis.set(keys.code(DIGEST), "stored earlier", ex=30)
    load = Loader("must not be used")
    await Dispatcher(redis, keys).ensure_code(DIGEST, load)
    assert load.calls == 0
    assert await redis.get(keys.code(DIGEST)) == b"stored earlier"
    assert await redis.ttl(keys.code(DIGEST)) > CODE_TTL_S - 60


async def test_ensure_code_raises_when_the_loader_finds_nothing(redis: Redis, keys: Keys) -> None:
    with pytest.raises(HomerunError) as caught:
        await Dispatcher(redis, keys).ensure_code(DIGEST, Loader(None))
    assert DIGEST in caught.value.message
    assert not await redis.exists(keys.code(DIGEST))


async def test_ensure_code_retries_after_a_failed_load(redis: Redis, keys: Keys) -> None:
    dispatcher = Dispatcher(redis, keys)
    with pytest.raises(HomerunError):
        await dispatcher.ensure_code(DIGEST, Loader(None))
    load = Loader("now present")
    await dispatcher.ensure_code(DIGEST, load)
    assert load.calls == 1
    assert await redis.get(keys.code(DIGEST)) == b"now present"


async def test_code_lost_with_a_redis_restart_is_put_again(redis: Redis, keys: Keys) -> None:
    # This controller put the code, then Redis restarted empty: the accept script refuses the
    # invocation (nothing is counted or enqueued), and the next ensure_code loads it again.
    await register(redis, keys, "inv-a")
    dispatcher = Dispatcher(redis, keys)
    load = Loader("function main() {}")
    await dispatcher.ensure_code(CODE_DIGEST, load)  # known to be there for a while
    await redis.delete(keys.code(CODE_DIGEST))
    with pytest.raises(CodeMissing) as caught:
        await dispatcher.enqueue(invocation())
    assert caught.value.digest == CODE_DIGEST
    assert await redis.xlen(keys.queue("inv-a")) == 0
    await dispatcher.ensure_code(CODE_DIGEST, load)
    assert load.calls == 1  # at first, the code was there
    assert await redis.get(keys.code(CODE_DIGEST)) == b"function main() {}"
    assert await dispatcher.enqueue(invocation()) == "inv-a"
