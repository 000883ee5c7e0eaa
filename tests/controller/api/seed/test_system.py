"""`GET /runtime/system/actions`: the built-in catalog, read from the database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from controller.names import SYSTEM_NAMESPACE, ActionName
from controller.runtimes import load_manifest
from controller.services import actions, catalog, codestore, namespaces
from controller.services.actions import WriteContext
from controller.settings import Settings
from controller.setup import in_transaction

Headers = dict[str, str]

URL = "/runtime/system/actions"
BUILT_INS = ["utils/cat", "utils/date", "utils/echo", "utils/head", "utils/sort", "utils/split"]
ACTION_DTO_FIELDS = {"name", "namespace", "version", "params", "annotations", "limits", "exec"}


async def list_system(client: httpx.AsyncClient, headers: Headers) -> list[dict[str, Any]]:
    response = await client.get(URL, headers=headers)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


async def sync_catalog(settings: Settings) -> None:
    ctx = WriteContext(load_manifest(settings.runtimes_manifest), settings.limits)
    await in_transaction(settings, lambda session: catalog.sync(session, ctx))


async def execute(settings: Settings, statement: str, **params: Any) -> None:
    async def work(session: Any) -> None:
        await session.execute(text(statement), params)

    await in_transaction(settings, work)


IS_BUILT_IN = (
    "name = :name AND package = 'utils' AND namespace_id = "
    "(SELECT id FROM namespaces WHERE name = 'whisk.system')"
)


def versions(listing: list[dict[str, Any]]) -> dict[str, str]:
    return {a["name"]: a["version"] for a in listing}


@pytest.fixture
async def headers(client: httpx.AsyncClient, issue: Callable[..., Awaitable[Headers]]) -> Headers:
    return await issue(org="acme")


async def test_lists_the_built_in_actions_sorted(
    client: httpx.AsyncClient, headers: Headers, settings: Settings
) -> None:
    listing = await list_system(client, headers)

    assert [a["name"] for a in listing] == BUILT_INS
    for action in listing:
        assert set(action) == ACTION_DTO_FIELDS | {"url"}, "ActionDTO fields, without code"
        assert action["namespace"] == SYSTEM_NAMESPACE
        assert action["version"] == "0.0.1"
        assert action["exec"]["kind"].startswith("nodejs:")
        assert action["exec"]["binary"] is False
        assert set(action["limits"]) == {"timeout", "memory", "logs"}
        assert action["limits"]["memory"] == str(settings.limits.memory_default)
        assert action["url"].endswith(f"/namespaces/{SYSTEM_NAMESPACE}/actions/{action['name']}")
        descriptions = [kv["value"] for kv in action["annotations"] if kv["key"] == "description"]
        assert len(descriptions) == 1 and descriptions[0]


@pytest.mark.parametrize("admin", [False, True], ids=["org-token", "admin-token"])
async def test_any_valid_credentials_may_list(
    client: httpx.AsyncClient, issue: Callable[..., Awaitable[Headers]], admin: bool
) -> None:
    headers = await issue(org="someone-else", admin=admin)

    assert [a["name"] for a in await list_system(client, headers)] == BUILT_INS


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"authorization": True},
        {"api_key": True},
        {"authorization": "Bearer not-a-token", "api_key": True},
        {"authorization": True, "api_key": "not-a-key"},
        {"authorization": "Basic dXNlcjpwYXNz", "api_key": True},
    ],
    ids=["none", "token-only", "key-only", "bad-token", "bad-key", "basic-auth"],
)
async def test_requires_a_valid_token_and_api_key(
    client: httpx.AsyncClient, headers: Headers, credentials: dict[str, Any]
) -> None:
    sent = {}
    if credentials.get("authorization"):
        value = credentials["authorization"]
        sent["Authorization"] = headers["Authorization"] if value is True else value
    if credentials.get("api_key"):
        value = credentials["api_key"]
        sent["X-Api-Key"] = headers["X-Api-Key"] if value is True else value

    response = await client.get(URL, headers=sent)

    assert response.status_code == 401, response.text
    assert set(response.json()) == {"error", "code"}


async def test_user_actions_are_not_listed(
    client: httpx.AsyncClient,
    headers: Headers,
    create_namespace: Callable[[str, str], Awaitable[dict[str, Any]]],
) -> None:
    await create_namespace("acme", "int1")
    body = {
        "name": "utils/zzz",
        "code": "function main(){return {}}",
        "exec": {"kind": "nodejs:18"},
    }
    created = await client.post("/runtime/namespaces/acme/int1/actions", json=body, headers=headers)
    assert created.status_code == 200, created.text

    assert [a["name"] for a in await list_system(client, headers)] == BUILT_INS


async def test_listing_comes_from_the_database(
    client: httpx.AsyncClient, headers: Headers, settings: Settings
) -> None:
    await execute(settings, "DELETE FROM actions WHERE " + IS_BUILT_IN, name="date")

    listing = await list_system(client, headers)

    assert [a["name"] for a in listing] == [n for n in BUILT_INS if n != "utils/date"]


async def test_empty_when_the_system_namespace_is_missing(
    client: httpx.AsyncClient, headers: Headers, settings: Settings
) -> None:
    await execute(settings, "DELETE FROM namespaces WHERE name = 'whisk.system'")

    assert await list_system(client, headers) == []


async def test_sync_restores_a_deleted_action_and_keeps_versions(
    client: httpx.AsyncClient, headers: Headers, settings: Settings
) -> None:
    await execute(settings, "DELETE FROM actions WHERE " + IS_BUILT_IN, name="date")

    await sync_catalog(settings)

    listing = await list_system(client, headers)
    assert [a["name"] for a in listing] == BUILT_INS
    assert set(versions(listing).values()) == {"0.0.1"}


async def test_sync_is_idempotent(
    client: httpx.AsyncClient, headers: Headers, settings: Settings
) -> None:
    before = await list_system(client, headers)

    await sync_catalog(settings)
    await sync_catalog(settings)

    assert await list_system(client, headers) == before


async def test_sync_replaces_changed_code_and_bumps_the_version(
    client: httpx.AsyncClient, headers: Headers, settings: Settings
) -> None:
    async def tamper(session: Any) -> None:
        digest = await codestore.put(session, "function main(){return {tampered: true}}")
        await session.execute(
            text("UPDATE actions SET code_digest = :digest WHERE " + IS_BUILT_IN),
            {"digest": digest, "name": "echo"},
        )

    await in_transaction(settings, tamper)

    await sync_catalog(settings)

    listing = versions(await list_system(client, headers))
    assert listing == dict.fromkeys(BUILT_INS, "0.0.1") | {"utils/echo": "0.0.2"}

    async def echo_code(session: Any) -> str | None:
        system = await namespaces.get_by_name(session, SYSTEM_NAMESPACE)
        assert system is not None
        action = await actions.get_action(session, system, ActionName("utils", "echo"))
        return action.exec.code

    assert (
        await in_transaction(settings, echo_code) == (catalog.CATALOG_DIR / "echo.js").read_text()
    )
