"""The controllers' entity cache (controller.execution.cache): a change committed anywhere (a
controller or the `homerun admin` CLI) holds for the very next invocation through every other
controller, and a warm invocation of an unchanged action makes no SQL query on its path.

End to end: two apps over one database and one Redis prefix, one in-process invoker (process
sandbox). Unit: EntityCache on real Redis."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis
from sqlalchemy import event, func, select
from starlette.applications import Starlette

from controller import messages
from controller.api.app import create_app
from controller.api.state import AppState
from controller.db.engine import CACHED_TABLES
from controller.db.models import ActivationRow
from controller.domain import TokenScope
from controller.execution.cache import EntityCache, bump_revision
from controller.services import credentials
from controller.settings import Settings
from controller.setup import in_transaction
from invoker.protocol import Keys
from tests.conftest import (
    REDIS_URL,
    Headers,
    _reset,
    _until_registered,
    make_sandbox,
    quick_invoker_settings,
)

Json = dict[str, Any]
ALICE, BOB = "acme-int1", "globex-int1"
SEED = "/runtime/namespaces/acme/int1/actions"
WEB = f"/api/v1/web/{ALICE}/default"


def code(version: int) -> str:
    return f"function main(p) {{ return {{v: {version}, ns: process.env.__OW_NAMESPACE}}; }}"


def ran(version: int, namespace: str = ALICE) -> Json:
    return {"v": version, "ns": namespace}


def basic(auth: str) -> Headers:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def error(response: httpx.Response, status: int) -> str:
    """Assert an error response of `status` (`{error, code}`); its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "code"}, body
    message: str = body["error"]
    return message


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


@dataclass
class Controller:
    """One running app and an HTTP client to it."""

    app: Starlette
    http: httpx.AsyncClient

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.homerun
        return state

    @property
    def cache(self) -> EntityCache:
        return self.state.require_entry().cache

    async def invoke(self, auth: str, namespace: str, name: str) -> httpx.Response:
        """An OpenWhisk blocking invoke answering the result only."""
        return await self.http.post(
            f"/api/v1/namespaces/{namespace}/actions/{name}", json={}, headers=basic(auth),
            params={"blocking": "true", "result": "true"}, timeout=60,
        )  # fmt: skip

    async def execute(self, headers: Headers, name: str) -> httpx.Response:
        """A seed execute in acme/int1."""
        return await self.http.post(f"{SEED}/{name}", json={}, headers=headers, timeout=60)

    async def web(self, name: str, headers: Headers | None = None) -> httpx.Response:
        return await self.http.get(f"{WEB}/{name}.json", headers=headers, timeout=60)

    async def put_action(self, auth: str, name: str, version: int, **fields: Any) -> None:
        body = {"exec": {"kind": "nodejs:18", "code": code(version)}, **fields}
        response = await self.http.put(
            f"/api/v1/namespaces/_/actions/{name}", json=body, headers=basic(auth),
            params={"overwrite": "true"},
        )  # fmt: skip
        ok(response)

    async def put_package(self, auth: str, name: str, **fields: Any) -> None:
        response = await self.http.put(
            f"/api/v1/namespaces/_/packages/{name}", json=fields, headers=basic(auth),
            params={"overwrite": "true"},
        )  # fmt: skip
        ok(response)


@contextlib.asynccontextmanager
async def _controllers(
    settings: Settings, prefix: str, count: int, tmp_path: Path
) -> AsyncIterator[list[Controller]]:
    """`count` apps sharing the database and the Redis prefix, and one invoker, as the
    `engine` fixture starts it."""
    from invoker.main import make_worker

    invoker_settings = quick_invoker_settings(prefix)
    invoker_id = invoker_settings.id
    redis = Redis.from_url(REDIS_URL)
    worker = make_worker(invoker_settings, redis, make_sandbox("process", tmp_path, invoker_id))
    async with contextlib.AsyncExitStack() as stack:
        controllers = []
        for _ in range(count):
            app = create_app(settings)
            manager = await stack.enter_async_context(LifespanManager(app))
            transport = httpx.ASGITransport(app=manager.app)
            http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
            await stack.enter_async_context(http)
            controllers.append(Controller(app, http))
        running = asyncio.create_task(worker.run())
        await _until_registered(redis, prefix, invoker_id)
        try:
            yield controllers
        finally:
            worker.stop()
            await asyncio.wait_for(asyncio.shield(running), 30)
    await redis.aclose()


@pytest.fixture
def engine_settings(settings: Settings, redis_prefix: str) -> Settings:
    """Every app, and the CLI path, with the execution engine's Redis."""
    return settings.model_copy(update={"redis_url": REDIS_URL, "key_prefix": redis_prefix})


@dataclass
class World:
    """Controllers A and B over one database and Redis prefix. acme-int1 (alice) owns
    `hello`, web-exported; globex-int1 (bob) owns `public/echo`, `public` being published.
    `org` are seed headers of an org token of acme (and an API key), `admin` an admin's."""

    a: Controller
    b: Controller
    redis: Redis
    keys: Keys
    settings: Settings
    admin: Headers
    org: Headers
    org_token_id: int
    alice: str  # uuid:key
    bob: str

    async def revision(self) -> int:
        return int(await self.redis.get(self.keys.entities_revision) or 0)

    @contextlib.asynccontextmanager
    async def changing(self) -> AsyncIterator[None]:
        """Around a change: it must bump the entity revision."""
        before = await self.revision()
        yield
        assert await self.revision() > before, "the change did not bump the entity revision"

    # The probes: `hello` through each surface.

    def invoke(self, c: Controller) -> Awaitable[httpx.Response]:
        return c.invoke(self.alice, "_", "hello")

    def execute(self, c: Controller) -> Awaitable[httpx.Response]:
        return c.execute(self.org, "hello")

    def web(self, c: Controller) -> Awaitable[httpx.Response]:
        return c.web("hello")


def exported(**more: Any) -> list[Json]:
    """`web-export: true` and more annotations: `require_whisk_auth=...`."""
    return [{"key": "web-export", "value": True}] + [
        {"key": key.replace("_", "-"), "value": value} for key, value in more.items()
    ]


async def _setup_world(a: Controller, admin: Headers) -> tuple[str, str]:
    alice = ok(await a.http.post("/runtime/admin/namespaces/acme/int1", headers=admin))["auth"]
    bob = ok(await a.http.post("/runtime/admin/namespaces/globex/int1", headers=admin))["auth"]
    await a.put_action(alice, "hello", 1, annotations=exported())
    await a.put_package(bob, "public", publish=True)
    await a.put_action(bob, "public/echo", 1)
    return alice, bob


@pytest.fixture
async def world(
    engine_settings: Settings,
    redis_prefix: str,
    issue: Callable[..., Awaitable[Headers]],
    tmp_path: Path,
) -> AsyncIterator[World]:
    await _reset(engine_settings)
    admin = await issue(admin=True)

    async def org_token(session: Any) -> tuple[int, Headers]:
        listed, token = await credentials.create_token(session, TokenScope.ORG, "acme")
        _, key = await credentials.create_api_key(session)
        return listed.id, {"Authorization": f"Bearer {token}", "X-Api-Key": key}

    token_id, org = await in_transaction(engine_settings, org_token)
    async with _controllers(engine_settings, redis_prefix, 2, tmp_path) as (a, b):
        alice, bob = await _setup_world(a, admin)
        redis = Redis.from_url(REDIS_URL)
        try:
            yield World(
                a=a, b=b, redis=redis, keys=Keys(redis_prefix), settings=engine_settings,
                admin=admin, org=org, org_token_id=token_id, alice=alice, bob=bob,
            )  # fmt: skip
        finally:
            await redis.aclose()


Probe = Callable[[Controller], Awaitable[httpx.Response]]


async def warm(world: World, *probes: Probe) -> None:
    """Each probe through B, then through A: B's cache holds them at the current revision."""
    for probe in probes:
        for controller in (world.b, world.a):
            ok(await probe(controller))
    assert len(world.b.cache) > 0
    assert world.b.cache.revision == await world.revision()


# A change through A (or the CLI) holds on B's first call after it.


async def test_updated_code_runs_on_the_next_call_elsewhere(world: World) -> None:
    await warm(world, world.invoke, world.execute, world.web)
    async with world.changing():
        await world.a.put_action(world.alice, "hello", 2)
    assert ok(await world.invoke(world.b)) == ran(2)
    assert ok(await world.execute(world.b))["response"]["result"] == ran(2)
    assert ok(await world.web(world.b)) == ran(2)
    assert world.b.cache.revision == await world.revision()


async def test_deleted_action_is_missing_on_the_next_call_elsewhere(world: World) -> None:
    await warm(world, world.invoke, world.execute, world.web)
    async with world.changing():
        deleted = await world.a.http.delete(
            "/api/v1/namespaces/_/actions/hello", headers=basic(world.alice)
        )
        ok(deleted)
    assert error(await world.invoke(world.b), 404) == messages.ENTITY_NOT_FOUND
    missing = messages.action_not_found(ALICE, "hello")
    assert error(await world.execute(world.b), 404) == missing
    assert error(await world.web(world.b), 404) == messages.ENTITY_NOT_FOUND


async def test_deleted_namespace_is_gone_on_the_next_call_elsewhere(world: World) -> None:
    async def execute(c: Controller, int_id: str = "int1") -> httpx.Response:
        url = f"/runtime/namespaces/acme/{int_id}/actions/hello"
        return await c.http.post(url, json={}, headers=world.admin, timeout=60)

    await warm(world, world.invoke, execute, world.web)
    async with world.changing():
        ok(await world.a.http.delete("/runtime/admin/namespaces/acme/int1", headers=world.admin))
    assert error(await world.invoke(world.b), 401) == messages.AUTH_INVALID
    missing = await execute(world.b)
    assert error(missing, 404) == messages.namespace_not_found("acme", "int1")
    never = await execute(world.b, "int9")  # what the seed API answers for a missing one
    assert error(never, 404) == messages.namespace_not_found("acme", "int9")
    assert error(await world.web(world.b), 404) == messages.ENTITY_NOT_FOUND


async def test_token_revoked_by_the_cli_is_refused_on_the_next_call(world: World) -> None:
    await warm(world, world.execute)
    async with world.changing():
        # What `homerun admin token revoke` runs: its own engine, then a bump through Redis.
        await in_transaction(
            world.settings, lambda s: credentials.revoke_token(s, world.org_token_id)
        )
    assert error(await world.execute(world.b), 401) == messages.AUTH_INVALID
    assert error(await world.execute(world.a), 401) == messages.AUTH_INVALID


async def test_unpublished_package_is_refused_on_the_next_call_elsewhere(world: World) -> None:
    def invoke(c: Controller) -> Awaitable[httpx.Response]:
        return c.invoke(world.alice, BOB, "public/echo")

    await warm(world, invoke)
    async with world.changing():
        await world.a.put_package(world.bob, "public", publish=False)
    denied = await invoke(world.b)
    assert error(denied, 403) == messages.not_authorized(f"{BOB}/public/echo")
    assert ok(await world.b.invoke(world.bob, "_", "public/echo")) == ran(1, BOB)


async def test_unexported_web_action_is_missing_on_the_next_call_elsewhere(
    world: World,
) -> None:
    await warm(world, world.web)
    async with world.changing():
        unexported = [{"key": "web-export", "value": False}]  # annotations merge on update
        await world.a.put_action(world.alice, "hello", 2, annotations=unexported)
    assert error(await world.web(world.b), 404) == messages.ENTITY_NOT_FOUND


async def test_web_action_given_a_secret_asks_for_it_on_the_next_call_elsewhere(
    world: World,
) -> None:
    await warm(world, world.web)
    async with world.changing():
        annotations = exported(require_whisk_auth="s3cret")
        await world.a.put_action(world.alice, "hello", 2, annotations=annotations)
    # Observed: 200 with the new code's result ({"v": 2}); the call after it is a 401.
    assert error(await world.web(world.b), 401) == messages.WEB_AUTH_FAILED
    assert ok(await world.b.web("hello", {"X-Require-Whisk-Auth": "s3cret"})) == ran(2)


async def test_web_user_whose_namespace_is_deleted_is_refused_on_the_next_call_elsewhere(
    world: World,
) -> None:
    await world.a.put_action(world.alice, "hello", 1, annotations=exported(require_whisk_auth=True))
    as_bob = basic(world.bob)
    await warm(world, lambda c: c.web("hello", as_bob))
    async with world.changing():
        deleted = await world.a.http.delete(
            "/runtime/admin/namespaces/globex/int1", headers=world.admin
        )
        ok(deleted)
    # Observed: 200, run as if bob's credentials were still valid.
    assert error(await world.b.web("hello", as_bob), 401) == messages.WEB_AUTH_FAILED


# No SQL on the warm path.

# A table name as it appears in SQL (quoted or not, never as part of another name).
_TABLE = re.compile(r'(?<![\w.])"?(\w+)"?(?=\W|$)')
WATCHED_TABLES = CACHED_TABLES | {"code_blobs"}
RECORDER_TASK = "recorder"  # the executor names the task that writes activation records


@dataclass(frozen=True)
class Statement:
    task: str
    sql: str

    @property
    def tables(self) -> set[str]:
        return {name.lower() for name in _TABLE.findall(self.sql)} & (
            WATCHED_TABLES | {"activations"}
        )


@contextlib.contextmanager
def statements(state: AppState) -> Iterator[list[Statement]]:
    """Every statement the app's engine sends, with the asyncio task that sent it (the
    driver runs in a greenlet of the awaiting task, so the task is the caller's)."""
    seen: list[Statement] = []

    def note(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        task = asyncio.current_task()
        seen.append(Statement("" if task is None else task.get_name(), sql))

    event.listen(state.engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(state.engine.sync_engine, "before_cursor_execute", note)


@pytest.fixture
async def solo(
    engine_settings: Settings,
    redis_prefix: str,
    issue: Callable[..., Awaitable[Headers]],
    tmp_path: Path,
) -> AsyncIterator[tuple[Controller, str, Headers]]:
    """One controller (so that its own recorder records every result and no waiter reads a
    record from the database), acme-int1's credentials and seed headers."""
    await _reset(engine_settings)
    admin = await issue(admin=True)
    async with _controllers(engine_settings, redis_prefix, 1, tmp_path) as (controller,):
        alice, _ = await _setup_world(controller, admin)
        yield controller, alice, admin  # the admin's seed headers reach acme/int1


WARM_CALLS = 5
SURFACES: dict[str, Callable[[Controller, str, Headers], Awaitable[httpx.Response]]] = {
    "openwhisk": lambda c, alice, _: c.invoke(alice, "_", "hello"),
    "seed": lambda c, _, seed: c.execute(seed, "hello"),
    "web": lambda c, _alice, _seed: c.web("hello"),
}


def _inserts_of_activations(seen: list[Statement]) -> int:
    return sum(
        1 for s in seen if s.task == RECORDER_TASK and s.sql.lstrip().upper().startswith("INSERT")
    )


async def _recorded(controller: Controller) -> int:
    """Activation records in the database (the recorder batches them: several per INSERT)."""
    async with controller.state.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(ActivationRow)) or 0)


@pytest.mark.parametrize("surface", SURFACES)
async def test_warm_invocations_make_no_sql_query(
    solo: tuple[Controller, str, Headers], surface: str
) -> None:
    controller, alice, seed = solo

    async def call() -> None:
        answer = ok(await SURFACES[surface](controller, alice, seed))
        assert (answer["response"]["result"] if surface == "seed" else answer) == ran(1)

    with statements(controller.state) as seen:
        await call()  # the warm-up: fills the cache and puts the code in Redis
        warm_from = len(seen)
        for _ in range(WARM_CALLS):
            await call()
        on_path = [s for s in seen[warm_from:] if s.task != RECORDER_TASK]
        for _ in range(200):  # the records follow the answers
            if await _recorded(controller) >= 1 + WARM_CALLS:
                break
            await asyncio.sleep(0.05)
    # Only the recorder may have spoken SQL during the warm calls: it writes each activation
    # record (reading the namespace's id and options, then inserting) once it has woken the
    # waiting caller with the result, off the answer's path. It touches no other cached table.
    assert on_path == [], "SQL on the warm invocation path"
    assert await _recorded(controller) == 1 + WARM_CALLS
    assert _inserts_of_activations(seen) >= 1, "the listener missed the recorder"
    recording = {table for s in seen if s.task == RECORDER_TASK for table in s.tables}
    assert recording == {"activations", "namespaces"}

    # The control: once the revision moves, the same call looks the entities up again.
    await controller.cache.changed()
    with statements(controller.state) as cold:
        await call()
    looked_up = {table for s in cold if s.task != RECORDER_TASK for table in s.tables}
    assert "actions" in looked_up, cold


# EntityCache on real Redis.


class Loader:
    """A loader counting its calls; each returns the next value. `during` runs inside."""

    def __init__(self, during: Callable[[], Awaitable[None]] | None = None) -> None:
        self.calls = 0
        self.during = during

    async def __call__(self, session: Any) -> int:
        assert session is SESSION
        self.calls += 1
        if self.during is not None:
            await self.during()
        return self.calls


SESSION = object()


@contextlib.asynccontextmanager
async def _transaction() -> AsyncIterator[Any]:
    yield SESSION  # the loaders are the fakes here: no database is involved


@pytest.fixture
async def redis(redis_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


def make_cache(redis: Redis | None, prefix: str, max_entries: int = 100) -> EntityCache:
    return EntityCache(redis, Keys(prefix), _transaction, max_entries=max_entries)


async def current(redis: Redis, prefix: str) -> int:
    """The entity revision in Redis."""
    found = await redis.get(Keys(prefix).entities_revision)
    assert found is not None, "no entity revision yet"
    return int(found)


async def test_a_fill_is_served_without_loading_at_its_revision(
    redis: Redis, redis_prefix: str
) -> None:
    cache, load = make_cache(redis, redis_prefix), Loader()
    value, revision = await cache.get("k", load)
    assert (value, revision) == (1, await current(redis, redis_prefix))
    assert await cache.get("k", load) == (1, revision)
    assert load.calls == 1
    assert await cache.get("k", load, fresh=True) == (2, revision)


async def test_a_bump_here_reloads(redis: Redis, redis_prefix: str) -> None:
    cache, load = make_cache(redis, redis_prefix), Loader()
    _, revision = await cache.get("k", load)
    await cache.changed()
    assert await current(redis, redis_prefix) == revision + 1
    assert await cache.get("k", load) == (2, revision + 1)
    assert load.calls == 2


async def test_a_bump_elsewhere_reloads_once_learnt(redis: Redis, redis_prefix: str) -> None:
    """Another controller's bump is learnt from the accept script's refusal (`advance`, as
    the entry point does on Stale) or a fresh lookup; until then the entry is served with
    its old revision, which the accept script refuses."""
    here, there = make_cache(redis, redis_prefix), make_cache(redis, redis_prefix)
    load = Loader()
    _, revision = await here.get("k", load)
    await here.get("other", Loader())
    await there.changed()
    assert await here.get("k", load) == (1, revision)
    assert revision != await current(redis, redis_prefix)
    here.advance(await current(redis, redis_prefix))
    assert len(here) == 0
    assert await here.get("k", load) == (2, revision + 1)
    await bump_revision(redis, Keys(redis_prefix))  # the CLI's bump
    assert await here.get("k", load, fresh=True) == (3, revision + 2)
    assert await here.get("k", load) == (3, revision + 2)
    assert load.calls == 3


async def test_a_fill_overtaken_by_a_bump_here_is_not_kept(redis: Redis, redis_prefix: str) -> None:
    cache = make_cache(redis, redis_prefix)
    await cache.get("warm", Loader())  # the cache knows the current revision
    racing = Loader(during=cache.changed)
    value, revision = await cache.get("k", racing)
    assert value == 1
    assert revision == await current(redis, redis_prefix) - 1  # tagged with the older one
    assert len(cache) == 0
    after = Loader()
    assert await cache.get("k", after) == (1, revision + 1)
    assert after.calls == 1


async def test_a_fill_overtaken_by_a_bump_elsewhere_keeps_its_older_revision(
    redis: Redis, redis_prefix: str
) -> None:
    """Read before the database: the entry looks older than it is (refused once by the
    accept script), never newer."""
    cache, keys = make_cache(redis, redis_prefix), Keys(redis_prefix)

    async def bump_elsewhere() -> None:
        await bump_revision(redis, keys)

    racing = Loader(during=bump_elsewhere)
    _, revision = await cache.get("k", racing)
    assert revision == await current(redis, redis_prefix) - 1
    assert await cache.get("k", racing) == (1, revision)  # kept, under the older revision
    assert racing.calls == 1


async def test_the_least_recently_used_entry_is_evicted(redis: Redis, redis_prefix: str) -> None:
    cache = make_cache(redis, redis_prefix, max_entries=2)
    loads: dict[Hashable, Loader] = {key: Loader() for key in "abc"}
    for key in "aba":  # `a` is used last
        await cache.get(key, loads[key])
    await cache.get("c", loads["c"])
    assert len(cache) == 2
    for key in "ac":
        await cache.get(key, loads[key])
    assert (loads["a"].calls, loads["c"].calls) == (1, 1)
    await cache.get("b", loads["b"])
    assert loads["b"].calls == 2


async def test_without_redis_every_lookup_loads() -> None:
    cache, load = make_cache(None, "unused"), Loader()
    assert await cache.get("k", load) == (1, 0)
    assert await cache.get("k", load) == (2, 0)
    await cache.changed()
    assert len(cache) == 0
