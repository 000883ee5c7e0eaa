"""Shared fixtures. Every test that uses `database_url` runs once per backend: SQLite and
PostgreSQL (a private database created for the session and dropped after it)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from controller.api.app import create_app
from controller.db.models import Base
from controller.domain import TokenScope
from controller.services import credentials
from controller.settings import Settings
from controller.setup import in_transaction, upgrade_database

PG_ADMIN_URL = os.environ.get(
    "HOMERUN_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = os.environ.get("HOMERUN_TEST_BACKENDS", "sqlite,postgresql").split(",")


async def _pg_admin(statement: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[Callable[[], str]]:
    """Creates private PostgreSQL databases on demand; drops them all at the end."""
    created: list[str] = []

    def make() -> str:
        name = f"homerun_test_{os.getpid()}_{secrets.token_hex(4)}"
        try:
            asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        except (OSError, asyncpg.PostgresError) as exc:
            pytest.fail(
                f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc}). Start it, or run "
                "with HOMERUN_TEST_BACKENDS=sqlite to test SQLite only."
            )
        created.append(name)
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        return f"{base}/{name}"

    yield make
    for name in created:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def fresh_database_url(
    tmp_path_factory: pytest.TempPathFactory, pg_database: Callable[[], str]
) -> Callable[[str], str]:
    """A factory of empty databases of a backend, for migration tests."""

    def make(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp('db') / 'homerun.db'}"
        return pg_database()

    return make


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest,
    fresh_database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """A migrated database (schema at head, system catalog synced) of each backend."""
    url = fresh_database_url(request.param)
    upgrade_database(Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=url))
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url)


async def _reset(settings: Settings) -> None:
    """Empty every table, then restore the system catalog."""
    from controller.runtimes import load_manifest
    from controller.services import catalog
    from controller.services.actions import WriteContext

    async def wipe(session: Any) -> None:
        for table in reversed(Base.metadata.sorted_tables):
            await session.execute(text(f"DELETE FROM {table.name}"))
        await catalog.sync(session, WriteContext(load_manifest(), settings.limits))

    await in_transaction(settings, wipe)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for a fresh app over an emptied database."""
    await _reset(settings)
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


Headers = dict[str, str]


@pytest.fixture
def issue(settings: Settings) -> Callable[..., Awaitable[Headers]]:
    """`await issue(org="acme")` or `await issue(admin=True)`: seed-API headers for a new
    token and API key."""

    async def make(*, org: str | None = None, admin: bool = False) -> Headers:
        scope = TokenScope.ADMIN if admin else TokenScope.ORG

        async def work(session: Any) -> Headers:
            _, token = await credentials.create_token(session, scope, None if admin else org)
            _, key = await credentials.create_api_key(session)
            return {"Authorization": f"Bearer {token}", "X-Api-Key": key}

        return await in_transaction(settings, work)

    return make


@pytest.fixture
async def admin_headers(
    client: httpx.AsyncClient, issue: Callable[..., Awaitable[Headers]]
) -> Headers:
    return await issue(admin=True)


@pytest.fixture
def create_namespace(
    client: httpx.AsyncClient, admin_headers: Headers
) -> Callable[[str, str], Awaitable[dict[str, Any]]]:
    """`await create_namespace(org, int)`: the NamespaceDTO of a new namespace."""

    async def make(org: str, int_id: str) -> dict[str, Any]:
        response = await client.post(
            f"/runtime/admin/namespaces/{org}/{int_id}", headers=admin_headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return make
