"""The State API (controller.api.statestore), as `@adobe/aio-lib-state` calls it: the routes,
Adobe's limits, glob matching, paging, expiry and namespaces kept apart. The real library
drives it in tests/compat/test_aio_lib_state.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from controller.api.app import create_app
from controller.db.engine import create_engine, session_factory
from controller.maintenance import sweep_state_once
from controller.services import namespaces, statestore
from controller.settings import Settings, StateSettings
from controller.setup import in_transaction
from tests.controller.api.openwhisk.support import Caller, assert_error, basic, caller_of

NewNamespace = Callable[[str, str], Awaitable[dict[str, Any]]]
DAY_MS = 24 * 3600 * 1000


class Store:
    """One namespace's container, called as the library calls it."""

    def __init__(self, client: httpx.AsyncClient, caller: Caller, namespace: str = "") -> None:
        self.client, self.caller = client, caller
        self.url = f"/state/containers/{namespace or caller.name}"

    async def put(self, key: str, value: bytes | str, **query: Any) -> httpx.Response:
        return await self.client.put(
            f"{self.url}/data/{key}", content=value, params=query,
            headers={**self.caller.headers, "Content-Type": "application/octet-stream"},
        )  # fmt: skip

    async def get(self, key: str) -> httpx.Response:
        return await self.client.get(f"{self.url}/data/{key}", headers=self.caller.headers)

    async def delete(self, key: str) -> httpx.Response:
        return await self.client.delete(f"{self.url}/data/{key}", headers=self.caller.headers)

    async def list(self, **query: Any) -> httpx.Response:
        return await self.client.get(f"{self.url}/data", params=query, headers=self.caller.headers)

    async def keys(self, match: str | None = None) -> list[str]:
        """Every key, over as many pages as the cursor takes."""
        found: list[str] = []
        cursor = 0
        while True:
            query = {"cursor": cursor, **({"match": match} if match else {})}
            response = await self.list(**query)
            if response.status_code == 404:
                return found
            assert response.status_code == 200, response.text
            found += response.json()["keys"]
            cursor = response.json()["cursor"]
            if cursor == 0:
                return found

    async def stats(self) -> httpx.Response:
        return await self.client.get(self.url, headers=self.caller.headers)

    async def any(self) -> int:
        return (await self.client.head(self.url, headers=self.caller.headers)).status_code

    async def delete_all(self, **query: Any) -> httpx.Response:
        return await self.client.delete(self.url, params=query, headers=self.caller.headers)


async def test_put_get_delete_round_trip(client: httpx.AsyncClient, acme: Caller) -> None:
    store = Store(client, acme)
    assert await store.any() == 404
    put = await store.put("greeting", "hello wörld", ttl=60)
    assert put.status_code == 200, put.text
    got = await store.get("greeting")
    assert got.status_code == 200 and got.content == "hello wörld".encode()
    expires = int(got.headers["x-key-expires-ms"])
    assert expires == int(put.headers["x-key-expires-ms"])
    assert await store.any() == 200
    assert (await store.stats()).json() == {"keys": 1, "bytesKeys": 8, "bytesValues": 12}

    assert (await store.put("greeting", "again")).status_code == 200  # replaced, default TTL
    again = await store.get("greeting")
    assert again.content == b"again"
    assert int(again.headers["x-key-expires-ms"]) - expires > DAY_MS - 120_000

    assert (await store.delete("greeting")).status_code == 200
    assert_error(await store.get("greeting"), 404)
    assert_error(await store.delete("greeting"), 404)
    assert_error(await store.stats(), 404)
    assert await store.any() == 404


async def test_any_bytes_are_a_value(client: httpx.AsyncClient, acme: Caller) -> None:
    store = Store(client, acme)
    value = bytes(range(256)) * 4
    assert (await store.put("blob", value)).status_code == 200
    assert (await store.get("blob")).content == value
    assert (await store.put("empty", b"")).status_code == 200
    empty = await store.get("empty")
    assert empty.status_code == 200 and empty.content == b""


@pytest.mark.parametrize(
    ("key", "ttl", "status"),
    [
        ("has space", None, 400),
        ("ünïcode", None, 400),
        ("k" * 1025, None, 400),
        ("ok", "-1", 400),
        ("ok", str(365 * 24 * 3600 + 1), 400),
        ("ok", "soon", 400),
        ("ok", "1.5", 400),
    ],
)
async def test_bad_keys_and_ttls_are_400(
    client: httpx.AsyncClient, acme: Caller, key: str, ttl: str | None, status: int
) -> None:
    store = Store(client, acme)
    query = {"ttl": ttl} if ttl is not None else {}
    assert_error(await store.put(key, "v", **query), status)
    assert await store.any() == 404  # nothing was stored
    if ttl is None:
        assert_error(await store.get(key), 400)
        assert_error(await store.delete(key), 400)


async def test_limits_are_adobes(client: httpx.AsyncClient, acme: Caller) -> None:
    store = Store(client, acme)
    longest = "k" * 1024
    assert (await store.put(longest, "v", ttl=365 * 24 * 3600)).status_code == 200
    assert (await store.get(longest)).content == b"v"
    megabyte = b"x" * statestore.MAX_VALUE_BYTES
    assert (await store.put("big", megabyte)).status_code == 200
    assert_error(await store.put("bigger", megabyte + b"x"), 413)
    assert_error(await store.get("bigger"), 404)


async def test_a_full_container_refuses_more_with_403(
    database_url: str, tmp_path: Any, create_namespace: NewNamespace, client: httpx.AsyncClient
) -> None:
    """Counted as Adobe counts it: twice the keys plus the values."""
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, state=StateSettings(max_bytes=100)
    )
    acme_ns = caller_of(await create_namespace("acme", "int1"))
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as small:
            store = Store(small, acme_ns)
            assert (await store.put("abcd", "v" * 92)).status_code == 200  # 2*4 + 92 = 100
            assert_error(await store.put("e", ""), 403)  # 102
            assert (await store.put("abcd", "v" * 90)).status_code == 200  # replacing: 98
            assert_error(await store.put("abcd", "v" * 93), 403)
            assert (await store.put("e", "")).status_code == 200  # 100
            assert (await store.delete("abcd")).status_code == 200
            assert (await store.put("f", "v" * 96)).status_code == 200


async def test_glob_matching_and_paging(
    client: httpx.AsyncClient, acme: Caller, settings: Settings
) -> None:
    store = Store(client, acme)
    names = [f"user.{i}" for i in range(1, 26)] + ["USER.x", "user_a", "order-1", "u.ser"]
    for name in names:
        assert (await store.put(name, "v")).status_code == 200

    assert sorted(await store.keys()) == sorted(names)
    assert sorted(await store.keys("user.*")) == sorted(names[:25])
    assert await store.keys("user.1*") == [f"user.{i}" for i in [1, *range(10, 20)]]
    assert await store.keys("USER.*") == ["USER.x"]  # case matters
    assert await store.keys("user_*") == ["user_a"]  # '_' is no wildcard
    assert await store.keys("u.*") == ["u.ser"]  # nor is '.'
    assert await store.keys("*-1") == ["order-1"]
    assert await store.keys("order-1") == ["order-1"]
    assert await store.keys("nothing*") == []
    assert_error(await store.list(match="user?"), 400)
    assert_error(await store.list(cursor="-1"), 400)

    async def pages(session: Any) -> list[statestore.Page]:
        namespace_id = await _namespace_id(session, acme.name)
        seen, cursor = [], 0
        while True:
            page = await statestore.scan(session, namespace_id, cursor, "user.*", count=10)
            seen.append(page)
            if not page.cursor:
                return seen
            cursor = page.cursor

    scanned = await in_transaction(settings, pages)
    assert [len(page.keys) for page in scanned] == [10, 10, 5]  # the other 4 keys come last
    first = await store.list(countHint=100)
    assert first.json() == {"keys": names, "cursor": 0}
    assert_error(await store.list(countHint=5), 400)


async def _namespace_id(session: Any, name: str) -> int:
    found = await namespaces.get_by_name(session, name)
    assert found is not None
    return found.id


async def test_delete_all_by_glob_and_everything(client: httpx.AsyncClient, acme: Caller) -> None:
    store = Store(client, acme)
    for name in ["a.1", "a.2", "b.1"]:
        await store.put(name, "v")
    deleted = await store.delete_all(matchData="a.*")
    assert deleted.status_code == 200 and deleted.json() == {"keys": 2}
    assert await store.keys() == ["b.1"]
    assert (await store.delete_all(matchData="zzz*")).json() == {"keys": 0}
    assert_error(await store.delete_all(matchData="a?"), 400)
    assert (await store.delete_all()).json() == {"keys": 1}  # v4's deleteAll(): every key
    assert_error(await store.delete_all(matchData="*"), 404)  # nothing left


async def test_expired_keys_are_gone_and_swept(
    client: httpx.AsyncClient, acme: Caller, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(client, acme)
    await store.put("short", "v", ttl=1)
    await store.put("long", "v", ttl=3600)
    later = statestore.now_ms() + 2000
    monkeypatch.setattr(statestore, "now_ms", lambda: later)
    assert_error(await store.get("short"), 404)
    assert_error(await store.delete("short"), 404)
    assert await store.keys() == ["long"]
    assert (await store.stats()).json()["keys"] == 1
    assert (await store.put("short", "new", ttl=60)).status_code == 200  # a fresh key
    assert (await store.get("short")).content == b"new"

    monkeypatch.setattr(statestore, "now_ms", lambda: later + 7200 * 1000)
    assert await store.any() == 404

    engine = create_engine(settings.effective_database_url)
    sessions = session_factory(engine)

    @asynccontextmanager
    async def transaction() -> Any:
        async with sessions.begin() as session:
            yield session

    try:
        assert await sweep_state_once(transaction) == 2  # "short" (again) and "long"
        assert await sweep_state_once(transaction) == 0
    finally:
        await engine.dispose()


async def test_namespaces_are_kept_apart(
    client: httpx.AsyncClient, acme: Caller, globex: Caller
) -> None:
    mine, theirs = Store(client, acme), Store(client, globex)
    await mine.put("secret", "acme's")
    await theirs.put("secret", "globex's")
    assert (await mine.get("secret")).content == b"acme's"
    assert (await theirs.get("secret")).content == b"globex's"
    await theirs.delete_all(matchData="*")
    assert (await mine.get("secret")).content == b"acme's"

    intruder = Store(client, globex, namespace=acme.name)
    for response in (
        await intruder.get("secret"),
        await intruder.put("secret", "overwritten"),
        await intruder.delete("secret"),
        await intruder.list(),
        await intruder.stats(),
        await intruder.delete_all(matchData="*"),
    ):
        assert_error(response, 403)
    assert (await mine.get("secret")).content == b"acme's"
    own = Store(client, acme, namespace="_")
    assert (await own.get("secret")).content == b"acme's"


async def test_credentials_are_required(client: httpx.AsyncClient, acme: Caller) -> None:
    url = f"/state/containers/{acme.name}/data/k"
    assert_error(await client.get(url), 401)
    wrong = acme.auth.split(":")[0] + ":not-the-key"
    assert_error(await client.get(url, headers=basic(wrong)), 401)
    assert_error(await client.put(url, content=b"v", headers={"Authorization": "Bearer x"}), 401)
    assert_error(await client.get(url, headers=acme.headers), 404)
