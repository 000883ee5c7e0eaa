"""`/runtime/admin/namespaces/{orgId}/{intId}`: create (idempotent), read, delete (cascading)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from controller.db.models import (
    ActionRow,
    CodeBlobRow,
    EventRegistrationRow,
    NamespaceRow,
    PackageRow,
)
from controller.services import namespaces
from controller.services.codestore import code_digest
from controller.settings import Settings
from controller.setup import in_transaction

Headers = dict[str, str]
Issue = Callable[..., Awaitable[Headers]]

ADMIN = "/runtime/admin/namespaces"
HELLO = {"name": "hello", "code": "function main() { return {} }", "exec": {"kind": "nodejs:18"}}
HELPER_CODE = "function main() { return {helper: 'only in int1'} }"
HELPER = {"name": "tools/helper", "code": HELPER_CODE, "exec": {"kind": "nodejs:18"}}
REGISTRATION = {
    "name": "r",
    "client_id": "c1",
    "registration_id": "reg1",
    "events_of_interest": [{"event_code": "e", "provider": "p"}],
    "runtime_action": "hello",
}


def assert_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "code"}, body
    assert body["error"].strip()
    assert body["code"] == response.headers["x-request-id"]


def assert_dto(body: Any, name: str) -> tuple[str, str]:
    """`body` is exactly a NamespaceDTO for `name`; returns its (uuid, key)."""
    assert isinstance(body, dict) and set(body) == {"name", "auth"}, body
    assert body["name"] == name
    uuid_part, _, key = body["auth"].partition(":")
    assert str(uuid.UUID(uuid_part)) == uuid_part, body["auth"]
    assert re.fullmatch(r"[A-Za-z0-9]{64}", key), body["auth"]
    return uuid_part, key


async def ok(response: Awaitable[httpx.Response]) -> Any:
    done = await response
    assert done.status_code == 200, done.text
    return done.json()


async def count(settings: Settings, model: Any, **where: Any) -> int:
    async def work(session: Any) -> int:
        query = select(func.count()).select_from(model).filter_by(**where)
        return int(await session.scalar(query))

    return await in_transaction(settings, work)


async def namespace_id(settings: Settings, org: str, int_id: str) -> int:
    async def work(session: Any) -> int:
        return (await namespaces.get_by_ids(session, org, int_id)).id

    return await in_transaction(settings, work)


# Create and read.


async def test_post_creates_a_namespace(
    client: httpx.AsyncClient, admin_headers: Headers, issue: Issue
) -> None:
    response = await client.post(f"{ADMIN}/acme/int1", headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert_dto(response.json(), "acme-int1")
    # The org's endpoints now find it.
    org = await issue(org="acme")
    assert await ok(client.get("/runtime/namespaces/acme/int1/actions", headers=org)) == []


async def test_post_is_idempotent(client: httpx.AsyncClient, admin_headers: Headers) -> None:
    first = await ok(client.post(f"{ADMIN}/acme/int1", headers=admin_headers))
    await ok(client.post(f"{ADMIN}/acme/int2", headers=admin_headers))
    second = await ok(client.post(f"{ADMIN}/acme/int1", headers=admin_headers))
    assert second == first
    assert await ok(client.get(f"{ADMIN}/acme/int1", headers=admin_headers)) == first


async def test_get_returns_what_post_created(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    created = await ok(client.post(f"{ADMIN}/acme/int1", headers=admin_headers))
    got = await ok(client.get(f"{ADMIN}/acme/int1", headers=admin_headers))
    assert_dto(got, "acme-int1")
    assert got == created


async def test_each_namespace_has_its_own_credentials(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    pairs = [("acme", "int1"), ("acme", "int2"), ("other", "int1")]
    dtos = [await ok(client.post(f"{ADMIN}/{o}/{i}", headers=admin_headers)) for o, i in pairs]
    creds = [assert_dto(dto, f"{o}-{i}") for dto, (o, i) in zip(dtos, pairs, strict=True)]
    assert len({u for u, _ in creds}) == len({k for _, k in creds}) == len(pairs)


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_missing_namespace_is_404(
    client: httpx.AsyncClient, admin_headers: Headers, method: str
) -> None:
    await ok(client.post(f"{ADMIN}/acme/int1", headers=admin_headers))
    for path in ("acme/int2", "other/int1", "nobody/nothing"):
        assert_error(await client.request(method, f"{ADMIN}/{path}", headers=admin_headers), 404)
    # The existing namespace is unaffected.
    assert_dto(await ok(client.get(f"{ADMIN}/acme/int1", headers=admin_headers)), "acme-int1")


@pytest.mark.parametrize(
    ("org", "int_id"),
    [
        ("a$b", "int1"),
        ("acme", "a$b"),
        ("-acme", "int1"),
        ("acme", "int1 "),
        ("acme", "x*y"),
        ("ácme", "int1"),
        ("a" * 300, "int1"),
    ],
    ids=[
        "dollar-in-org",
        "dollar-in-int",
        "leading-dash",
        "trailing-space",
        "star",
        "non-ascii",
        "too-long",
    ],
)
async def test_invalid_ids_are_rejected(
    client: httpx.AsyncClient, settings: Settings, admin_headers: Headers, org: str, int_id: str
) -> None:
    assert_error(await client.post(f"{ADMIN}/{org}/{int_id}", headers=admin_headers), 400)
    assert await count(settings, NamespaceRow, int_id=int_id) == 0


async def test_ids_whose_names_collide_do_not_share_a_namespace(
    client: httpx.AsyncClient, settings: Settings, admin_headers: Headers
) -> None:
    """(`a-b`, `c`) and (`a`, `b-c`) would both be named `a-b-c`: the second must not be
    handed the first one's credentials."""
    first = await ok(client.post(f"{ADMIN}/a-b/c", headers=admin_headers))
    second = await client.post(f"{ADMIN}/a/b-c", headers=admin_headers)
    assert second.status_code in (400, 409), second.text
    assert first["auth"] not in second.text
    assert_error(await client.get(f"{ADMIN}/a/b-c", headers=admin_headers), 404)
    assert await ok(client.get(f"{ADMIN}/a-b/c", headers=admin_headers)) == first


# Delete.


async def test_delete_returns_the_namespace_and_removes_it(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    created = await ok(client.post(f"{ADMIN}/acme/int1", headers=admin_headers))
    await ok(client.post(f"{ADMIN}/acme/int2", headers=admin_headers))
    deleted = await ok(client.delete(f"{ADMIN}/acme/int1", headers=admin_headers))
    assert_dto(deleted, "acme-int1")
    assert deleted == created
    assert_error(await client.get(f"{ADMIN}/acme/int1", headers=admin_headers), 404)
    assert_error(await client.delete(f"{ADMIN}/acme/int1", headers=admin_headers), 404)
    assert_dto(await ok(client.get(f"{ADMIN}/acme/int2", headers=admin_headers)), "acme-int2")


async def test_delete_cascades_to_everything_the_namespace_owns(
    client: httpx.AsyncClient, settings: Settings, admin_headers: Headers, issue: Issue
) -> None:
    org = await issue(org="acme")
    old = await ok(client.post(f"{ADMIN}/acme/int1", headers=admin_headers))
    await ok(client.post(f"{ADMIN}/acme/int2", headers=admin_headers))
    for int_id, bodies in (("int1", (HELLO, HELPER)), ("int2", (HELLO,))):
        base = f"/runtime/namespaces/acme/{int_id}"
        for body in bodies:
            await ok(client.post(base + "/actions", json=body, headers=org))
        await ok(client.post(base + "/handleEventRegistration", json=REGISTRATION, headers=org))
    old_id = await namespace_id(settings, "acme", "int1")

    await ok(client.delete(f"{ADMIN}/acme/int1", headers=admin_headers))

    base = "/runtime/namespaces/acme/int1"
    for method, path in (
        ("GET", "/actions"),
        ("GET", "/actions/hello"),
        ("GET", "/actions/tools/helper"),
        ("POST", "/handleEventStatus/c1/reg1/disabled"),
        ("DELETE", "/handleEventDeletion/c1/reg1"),
    ):
        assert_error(await client.request(method, base + path, headers=org), 404)
    for model in (ActionRow, PackageRow, EventRegistrationRow):
        assert await count(settings, model, namespace_id=old_id) == 0, model.__name__
    # Code only the deleted namespace used is gone; code still in use elsewhere stays.
    assert await count(settings, CodeBlobRow, digest=code_digest(HELPER_CODE)) == 0
    int2 = await ok(client.get("/runtime/namespaces/acme/int2/actions/hello", headers=org))
    assert int2["code"] == HELLO["code"]
    int2_status = "/runtime/namespaces/acme/int2/handleEventStatus/c1/reg1/disabled"
    assert (await ok(client.post(int2_status, headers=org)))["integration_status"] == "disabled"

    # Created again, it is a new, empty namespace with new credentials.
    new = await ok(client.post(f"{ADMIN}/acme/int1", headers=admin_headers))
    old_uuid, old_key = assert_dto(old, "acme-int1")
    new_uuid, new_key = assert_dto(new, "acme-int1")
    assert new_uuid != old_uuid and new_key != old_key
    assert await ok(client.get(base + "/actions", headers=org)) == []
    assert_error(await client.get(base + "/actions/hello", headers=org), 404)
    status = await client.post(base + "/handleEventStatus/c1/reg1/disabled", headers=org)
    assert_error(status, 404)
    # ...and the old names are free again.
    await ok(client.post(base + "/actions", json=HELLO, headers=org))
    await ok(client.post(base + "/handleEventRegistration", json=REGISTRATION, headers=org))


# Only admin tokens administer namespaces.


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_org_token_is_forbidden(
    client: httpx.AsyncClient,
    settings: Settings,
    admin_headers: Headers,
    issue: Issue,
    method: str,
) -> None:
    existing = await ok(client.post(f"{ADMIN}/acme/int1", headers=admin_headers))
    org = await issue(org="acme")
    for path in ("acme/int1", "acme/int2", "other/int1"):
        assert_error(await client.request(method, f"{ADMIN}/{path}", headers=org), 403)
    assert await ok(client.get(f"{ADMIN}/acme/int1", headers=admin_headers)) == existing
    assert await count(settings, NamespaceRow, org_id="acme") == 1
    assert await count(settings, NamespaceRow, org_id="other") == 0
