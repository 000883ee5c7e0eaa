"""Secrets at rest, on each backend: namespace keys, default parameters and log-forwarding
settings are sealed in the database, read back through the API unchanged, and a database copied
without the operator's key reveals none of them."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from controller import messages
from controller.api import app as app_module
from controller.api.app import create_app
from controller.db.engine import create_engine, session_factory
from controller.db.models import Base, NamespaceRow
from controller.db.sealed import KEY_FILE, SEALED, Keyring, SealingError
from controller.settings import ConfigError, Settings, load_settings
from controller.setup import in_transaction, upgrade_database
from tests.controller.api.openwhisk.support import API, basic, node_action

SECRET = "s3cr3t-value-0f-the-tenant"
CreateNamespace = Callable[[str, str], Awaitable[dict[str, Any]]]


@pytest.fixture(autouse=True)
async def emptied_after(settings: Settings) -> AsyncIterator[None]:
    """These tests seal with keys of their own: leave no row sealed with them behind."""
    yield
    engine = create_engine(settings.effective_database_url)
    try:
        async with engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                await connection.execute(table.delete())
    finally:
        await engine.dispose()


async def raw_rows(settings: Settings) -> str:
    """Every row of every table, as the database stores it (read without any keys)."""
    engine = create_engine(settings.effective_database_url)
    try:
        async with engine.connect() as connection:
            dump = []
            for table in Base.metadata.sorted_tables:
                result = await connection.execute(text(f"SELECT * FROM {table.name}"))
                dump += [repr(tuple(row)) for row in result]
            return "\n".join(dump)
    finally:
        await engine.dispose()


def database_files(settings: Settings) -> bytes:
    """The SQLite database's files as a copy of them would hold them (empty for PostgreSQL,
    whose rows `raw_rows` reads)."""
    url = settings.effective_database_url
    if not url.startswith("sqlite:///"):
        return b""
    path = Path(url[len("sqlite:///") :])
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


async def store_secrets(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    secret_param = [{"key": "password", "value": SECRET}]
    for path, body in (
        ("actions/hello", node_action(parameters=secret_param)),
        ("packages/tools", {"parameters": secret_param}),
        ("triggers/tick", {"parameters": secret_param}),
    ):
        response = await client.put(f"{API}/namespaces/_/{path}", json=body, headers=auth)
        assert response.status_code == 200, response.text
    forwarding = {"splunk_hec": {"host": "h", "port": 8088, "index": "i", "hec_token": SECRET}}
    response = await client.put(
        "/runtime/namespaces/_/logForwarding", json=forwarding, headers=auth
    )
    assert response.status_code == 200, response.text


async def test_the_database_holds_no_credential_and_the_api_reads_them_back(
    client: httpx.AsyncClient, create_namespace: CreateNamespace, settings: Settings
) -> None:
    namespace = await create_namespace("acme", "int1")
    key = namespace["auth"].split(":", 1)[1]
    auth = basic(namespace["auth"])
    await store_secrets(client, auth)

    stored = await raw_rows(settings)
    assert SECRET not in stored and key not in stored
    assert stored.count(SEALED) >= 5  # the key, three parameter lists, the forwarding settings
    files = database_files(settings)
    assert SECRET.encode() not in files and key.encode() not in files

    for path in ("actions/hello", "packages/tools", "triggers/tick"):
        response = await client.get(f"{API}/namespaces/_/{path}", headers=auth)
        assert response.status_code == 200, response.text
        assert response.json()["parameters"] == [{"key": "password", "value": SECRET}]
    response = await client.get("/runtime/namespaces/_/logForwarding", headers=auth)
    assert response.json()["splunk_hec"]["hec_token"] == SECRET


async def _plain_namespace(session: AsyncSession) -> None:
    await session.execute(
        text(
            "INSERT INTO namespaces (name, uuid, key, created)"
            " VALUES ('legacy', '00000000-0000-4000-8000-000000000001', :key, 0)"
        ),
        {"key": "k" * 64},
    )


async def test_upgrade_seals_what_was_stored_plain(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await in_transaction(settings, _plain_namespace)
    assert "k" * 64 in await raw_rows(settings)

    await asyncio.to_thread(upgrade_database, settings)

    assert "k" * 64 not in await raw_rows(settings)
    row = await in_transaction(
        settings, lambda s: s.scalar(text("SELECT id FROM namespaces WHERE name = 'legacy'"))
    )
    found = await in_transaction(settings, lambda s: s.get(NamespaceRow, row))
    assert found is not None and found.key == "k" * 64


async def test_another_key_is_refused_and_a_rotation_reseals(
    client: httpx.AsyncClient, create_namespace: CreateNamespace, settings: Settings
) -> None:
    namespace = await create_namespace("acme", "int1")
    old = settings.keyring().keys[0].decode()
    stranger = settings.model_copy(update={"secret_keys": None})
    assert stranger.keyring().keys[0].decode() != old  # the data directory's own key file

    with pytest.raises(SealingError, match="HOMERUN_SECRET_KEYS"):
        async with LifespanManager(create_app(stranger)):
            pass

    new = Keyring.new_key()
    rotated = load_settings(
        database_url=settings.database_url, data_dir=settings.data_dir, secret_keys=f"{new},{old}"
    )
    await asyncio.to_thread(upgrade_database, rotated)
    only_new = load_settings(
        database_url=settings.database_url, data_dir=settings.data_dir, secret_keys=new
    )
    app = create_app(only_new)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.get(f"{API}/namespaces", headers=basic(namespace["auth"]))
    assert response.status_code == 200, response.text


async def test_keys_checked_after_a_start_without_the_database_refuse_every_request(
    create_namespace: CreateNamespace, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = await create_namespace("acme", "int1")
    stranger = settings.model_copy(update={"secret_keys": None})

    async def unreachable_at_start(state: Any) -> None:
        return None

    monkeypatch.setattr(app_module, "_admit", unreachable_at_start)
    async with LifespanManager(create_app(stranger)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.get(f"{API}/namespaces", headers=basic(namespace["auth"]))

    assert response.status_code == 503, response.text
    assert response.json()["error"] == messages.MISCONFIGURED
    assert response.headers["retry-after"] == "5"


async def test_an_engine_without_keys_refuses_sealed_columns(
    create_namespace: CreateNamespace, settings: Settings
) -> None:
    await create_namespace("acme", "int1")
    engine = create_engine(settings.effective_database_url)
    try:
        async with session_factory(engine)() as session:
            with pytest.raises(SealingError, match="without the operator's keys"):
                await session.scalar(select(NamespaceRow).where(NamespaceRow.name == "acme-int1"))
    finally:
        await engine.dispose()


def test_the_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", secret_keys=None)

    first = settings.keyring()

    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert settings.keyring().keys == first.keys
    assert Settings(data_dir=tmp_path / "elsewhere", secret_keys=None).keyring().keys != first.keys


def test_unusable_keys_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(os.environ, "HOMERUN_SECRET_KEYS", "not-a-key")

    with pytest.raises(ConfigError, match=r"HOMERUN_SECRET_KEYS: .*32 url-safe base64"):
        load_settings()
