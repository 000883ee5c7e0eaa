"""Event registrations: handleEventRegistration, handleEventUpdate, handleEventStatus and
handleEventDeletion, with EventDTO exactly as the reference defines it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from controller.db.models import EventRegistrationRow
from controller.settings import Settings
from controller.setup import in_transaction

Headers = dict[str, str]

BASE = "/runtime/namespaces/acme/int1"
HANDLER = {"name": "handler", "code": "function main(){return {}}", "exec": {"kind": "nodejs:18"}}
FULL_DTO: dict[str, Any] = {
    "id": "evt-1",
    "name": "Asset events",
    "description": "Runs the handler on asset changes",
    "client_id": "client-1",
    "type": "webhook",
    "integration_status": "enabled",
    "delivery_type": "webhook",
    "webhook_url": "https://example.com/hook",
    "events_of_interest": [
        {"event_code": "asset_created", "provider": "ccstorage"},
        {"event_code": "asset_deleted", "provider": "ccstorage"},
    ],
    "runtime_action": "handler",
    "registration_id": "reg-1",
}
MINIMAL_DTO: dict[str, Any] = {
    "name": "Minimal",
    "client_id": "client-1",
    "events_of_interest": [{"event_code": "asset_created", "provider": "ccstorage"}],
    "runtime_action": "handler",
}


def register_url(base: str = BASE) -> str:
    return f"{base}/handleEventRegistration"


def update_url(client_id: str, registration_id: str, base: str = BASE) -> str:
    return f"{base}/handleEventUpdate/{client_id}/{registration_id}"


def status_url(client_id: str, registration_id: str, status: str, base: str = BASE) -> str:
    return f"{base}/handleEventStatus/{client_id}/{registration_id}/{status}"


def delete_url(client_id: str, registration_id: str, base: str = BASE) -> str:
    return f"{base}/handleEventDeletion/{client_id}/{registration_id}"


@pytest.fixture
async def headers(
    client: httpx.AsyncClient,
    issue: Callable[..., Awaitable[Headers]],
    create_namespace: Callable[[str, str], Awaitable[dict[str, Any]]],
) -> Headers:
    """Namespace acme/int1 with an action `handler`; headers of an `acme` token."""
    await create_namespace("acme", "int1")
    org_headers = await issue(org="acme")
    created = await client.post(f"{BASE}/actions", json=HANDLER, headers=org_headers)
    assert created.status_code == 200, created.text
    return org_headers


async def register(
    client: httpx.AsyncClient, headers: Headers, body: dict[str, Any], base: str = BASE
) -> httpx.Response:
    return await client.post(register_url(base), json=body, headers=headers)


async def current(
    client: httpx.AsyncClient, headers: Headers, client_id: str, registration_id: str
) -> dict[str, Any]:
    """The stored registration, read back through an empty update."""
    response = await client.put(update_url(client_id, registration_id), json={}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def case_id(value: object) -> str:
    """Readable test ids for tables of body changes."""
    if isinstance(value, dict):
        return ",".join(f"{k}={v!r}" for k, v in value.items())
    return str(value)


def assert_bad_request(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]


# Registration.


async def test_register_returns_the_dto_it_was_given(
    client: httpx.AsyncClient, headers: Headers
) -> None:
    response = await register(client, headers, FULL_DTO)

    assert response.status_code == 200, response.text
    assert response.json() == FULL_DTO
    assert await current(client, headers, "client-1", "reg-1") == FULL_DTO


async def test_register_fills_in_registration_id_and_status(
    client: httpx.AsyncClient, headers: Headers
) -> None:
    response = await register(client, headers, MINIMAL_DTO)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == set(FULL_DTO)
    assert {k: body[k] for k in MINIMAL_DTO} == MINIMAL_DTO
    assert isinstance(body["registration_id"], str) and body["registration_id"]
    assert isinstance(body["id"], str) and body["id"]
    assert body["integration_status"] == "enabled"
    assert body["description"] is None
    assert body["webhook_url"] is None
    assert await current(client, headers, "client-1", body["registration_id"]) == body


@pytest.mark.parametrize(("status", "expected"), [("DISABLED", "disabled"), ("Enabled", "enabled")])
async def test_register_normalises_integration_status(
    client: httpx.AsyncClient, headers: Headers, status: str, expected: str
) -> None:
    response = await register(client, headers, FULL_DTO | {"integration_status": status})

    assert response.status_code == 200, response.text
    assert response.json()["integration_status"] == expected


@pytest.mark.parametrize(
    ("client_id", "registration_id"),
    [("4F2A@AdobeOrg", "reg:1"), ("client one", "r.1-x_y"), ("ümlaut", "ß")],
)
async def test_ids_with_special_characters_address_the_registration(
    client: httpx.AsyncClient, headers: Headers, client_id: str, registration_id: str
) -> None:
    body = FULL_DTO | {"client_id": client_id, "registration_id": registration_id}
    assert (await register(client, headers, body)).status_code == 200

    status = await client.post(status_url(client_id, registration_id, "disabled"), headers=headers)
    assert status.status_code == 200, status.text
    assert status.json() == body | {"integration_status": "disabled"}
    deleted = await client.delete(delete_url(client_id, registration_id), headers=headers)
    assert deleted.status_code == 200, deleted.text


async def test_generated_registration_ids_are_distinct(
    client: httpx.AsyncClient, headers: Headers
) -> None:
    first = await register(client, headers, MINIMAL_DTO)
    second = await register(client, headers, MINIMAL_DTO)

    assert first.status_code == second.status_code == 200
    assert first.json()["registration_id"] != second.json()["registration_id"]


async def test_register_accepts_ams_headers_and_records_them(
    client: httpx.AsyncClient, headers: Headers, settings: Settings
) -> None:
    ams = {"X-Ams-Consumer-Id": "consumer-7", "X-Ams-Application-Id": "app-9"}

    response = await register(client, headers | ams, FULL_DTO)

    assert response.status_code == 200, response.text
    assert response.json() == FULL_DTO

    async def stored(session: Any) -> tuple[str | None, str | None]:
        row = (
            await session.execute(
                select(EventRegistrationRow.consumer_id, EventRegistrationRow.application_id)
            )
        ).one()
        return row.consumer_id, row.application_id

    assert await in_transaction(settings, stored) == ("consumer-7", "app-9")


@pytest.mark.parametrize(
    ("action_name", "runtime_action"),
    [
        ("handler", "handler"),
        ("handler", "/acme-int1/handler"),
        ("handler", "/_/handler"),
        ("tools/handler", "tools/handler"),
        ("tools/handler", "/acme-int1/tools/handler"),
    ],
)
async def test_runtime_action_forms(
    client: httpx.AsyncClient, headers: Headers, action_name: str, runtime_action: str
) -> None:
    if action_name != "handler":
        created = await client.post(
            f"{BASE}/actions", json=HANDLER | {"name": action_name}, headers=headers
        )
        assert created.status_code == 200, created.text

    response = await register(client, headers, FULL_DTO | {"runtime_action": runtime_action})

    assert response.status_code == 200, response.text
    assert response.json()["runtime_action"] == runtime_action


@pytest.mark.parametrize(
    "runtime_action",
    [
        "missing",
        "tools/handler",  # no such package action
        "/acme-int2/handler",  # exists, but in another namespace
        "/whisk.system/utils/echo",  # a public system action is still not this namespace's
        "a/b/c/d",
        "bad name!",
        "",
    ],
)
async def test_runtime_action_must_name_an_action_of_this_namespace(
    client: httpx.AsyncClient,
    headers: Headers,
    create_namespace: Callable[[str, str], Awaitable[dict[str, Any]]],
    runtime_action: str,
) -> None:
    await create_namespace("acme", "int2")
    other = await client.post(
        "/runtime/namespaces/acme/int2/actions", json=HANDLER, headers=headers
    )
    assert other.status_code == 200, other.text

    response = await register(client, headers, FULL_DTO | {"runtime_action": runtime_action})

    assert_bad_request(response, "runtime_action")


async def test_runtime_action_is_required(client: httpx.AsyncClient, headers: Headers) -> None:
    body = {k: v for k, v in FULL_DTO.items() if k != "runtime_action"}
    assert_bad_request(await register(client, headers, body), "runtime_action")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"events_of_interest": []}, "events_of_interest"),
        ({"events_of_interest": None}, "events_of_interest"),
        ({"events_of_interest": [{"event_code": "", "provider": "p"}]}, "events_of_interest"),
        ({"events_of_interest": [{"event_code": "c", "provider": ""}]}, "events_of_interest"),
        ({"events_of_interest": [{"event_code": "c"}]}, "events_of_interest"),
        ({"events_of_interest": [{"provider": "p"}]}, "events_of_interest"),
        ({"events_of_interest": [{"event_code": 1, "provider": "p"}]}, "event_code"),
        (
            {"events_of_interest": [{"event_code": "c", "provider": "p", "severity": 1}]},
            "severity",
        ),
        ({"events_of_interest": "asset_created"}, "events_of_interest"),
        ({"events_of_interest": ["asset_created"]}, "events_of_interest"),
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": 42}, "name"),
        ({"client_id": None}, "client_id"),
        ({"client_id": ""}, "client_id"),
        ({"client_id": ["client-1"]}, "client_id"),
        ({"registration_id": 7}, "registration_id"),
        ({"webhook_url": False}, "webhook_url"),
        ({"description": {"text": "x"}}, "description"),
        ({"runtime_action": 1}, "runtime_action"),
        ({"integration_status": "paused"}, "integration_status"),
        ({"colour": "blue"}, "colour"),
    ],
    ids=case_id,
)
async def test_register_rejects_invalid_dto(
    client: httpx.AsyncClient, headers: Headers, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in (FULL_DTO | change).items() if v is not None}

    assert_bad_request(await register(client, headers, body), field)

    after = await client.post(status_url("client-1", "reg-1", "enabled"), headers=headers)
    assert after.status_code == 404, "nothing is stored after a rejected registration"


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2]", b'"registration"', b"null", b""],
    ids=["malformed", "array", "string", "null", "empty"],
)
async def test_register_rejects_bodies_that_are_not_json_objects(
    client: httpx.AsyncClient, headers: Headers, content: bytes
) -> None:
    response = await client.post(
        register_url(), content=content, headers=headers | {"Content-Type": "application/json"}
    )

    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error", "code"}


async def test_register_rejects_a_non_json_content_type(
    client: httpx.AsyncClient, headers: Headers
) -> None:
    response = await client.post(
        register_url(), content=b"name=x", headers=headers | {"Content-Type": "text/plain"}
    )

    assert response.status_code == 415, response.text


async def test_duplicate_registration_conflicts(
    client: httpx.AsyncClient, headers: Headers
) -> None:
    assert (await register(client, headers, FULL_DTO)).status_code == 200

    again = await register(client, headers, FULL_DTO | {"name": "Another"})

    assert again.status_code == 409, again.text
    assert "reg-1" in again.json()["error"]
    assert (await current(client, headers, "client-1", "reg-1"))["name"] == FULL_DTO["name"]


async def test_same_registration_id_for_another_client_is_independent(
    client: httpx.AsyncClient, headers: Headers
) -> None:
    assert (await register(client, headers, FULL_DTO)).status_code == 200

    other = await register(client, headers, FULL_DTO | {"client_id": "client-2", "name": "B"})

    assert other.status_code == 200, other.text
    assert (await current(client, headers, "client-1", "reg-1"))["name"] == FULL_DTO["name"]
    assert (await current(client, headers, "client-2", "reg-1"))["name"] == "B"


# Authorisation and namespaces.


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", register_url()),
        ("PUT", update_url("client-1", "reg-1")),
        ("POST", status_url("client-1", "reg-1", "enabled")),
        ("DELETE", delete_url("client-1", "reg-1")),
    ],
)
async def test_endpoints_require_credentials(
    client: httpx.AsyncClient, headers: Headers, method: str, url: str
) -> None:
    assert (await register(client, headers, FULL_DTO)).status_code == 200

    response = await client.request(method, url, json=FULL_DTO if method != "DELETE" else None)

    assert response.status_code == 401, response.text
    assert set(response.json()) == {"error", "code"}
    assert await current(client, headers, "client-1", "reg-1") == FULL_DTO


async def test_token_of_another_org_is_forbidden(
    client: httpx.AsyncClient, headers: Headers, issue: Callable[..., Awaitable[Headers]]
) -> None:
    assert (await register(client, headers, FULL_DTO)).status_code == 200
    stranger = await issue(org="globex")

    responses = [
        await register(client, stranger, FULL_DTO | {"registration_id": "reg-2"}),
        await client.put(update_url("client-1", "reg-1"), json={"name": "x"}, headers=stranger),
        await client.post(status_url("client-1", "reg-1", "disabled"), headers=stranger),
        await client.delete(delete_url("client-1", "reg-1"), headers=stranger),
    ]

    assert [r.status_code for r in responses] == [403, 403, 403, 403]
    assert await current(client, headers, "client-1", "reg-1") == FULL_DTO


async def test_unknown_namespace_is_not_found(client: httpx.AsyncClient, headers: Headers) -> None:
    response = await register(client, headers, FULL_DTO, base="/runtime/namespaces/acme/nope")

    assert response.status_code == 404, response.text


async def test_registrations_are_per_namespace(
    client: httpx.AsyncClient,
    headers: Headers,
    create_namespace: Callable[[str, str], Awaitable[dict[str, Any]]],
) -> None:
    other_base = "/runtime/namespaces/acme/int2"
    await create_namespace("acme", "int2")
    created = await client.post(f"{other_base}/actions", json=HANDLER, headers=headers)
    assert created.status_code == 200, created.text

    first = await register(client, headers, FULL_DTO)
    second = await register(client, headers, FULL_DTO | {"name": "Second"}, base=other_base)
    assert (first.status_code, second.status_code) == (200, 200)

    disabled = await client.post(
        status_url("client-1", "reg-1", "disabled", base=other_base), headers=headers
    )
    assert disabled.json()["integration_status"] == "disabled"
    assert await current(client, headers, "client-1", "reg-1") == FULL_DTO

    deleted = await client.delete(delete_url("client-1", "reg-1"), headers=headers)
    assert deleted.status_code == 200
    still = await client.put(
        update_url("client-1", "reg-1", base=other_base), json={}, headers=headers
    )
    assert still.status_code == 200, still.text
    assert still.json() == FULL_DTO | {"name": "Second", "integration_status": "disabled"}


async def test_deleting_the_namespace_deletes_its_registrations(
    client: httpx.AsyncClient,
    headers: Headers,
    admin_headers: Headers,
    create_namespace: Callable[[str, str], Awaitable[dict[str, Any]]],
) -> None:
    assert (await register(client, headers, FULL_DTO)).status_code == 200

    gone = await client.delete("/runtime/admin/namespaces/acme/int1", headers=admin_headers)
    assert gone.status_code == 200, gone.text
    await create_namespace("acme", "int1")

    response = await client.post(status_url("client-1", "reg-1", "enabled"), headers=headers)
    assert response.status_code == 404, response.text


# Update.


async def test_update_merges_supplied_fields(client: httpx.AsyncClient, headers: Headers) -> None:
    assert (await register(client, headers, FULL_DTO)).status_code == 200
    change = {
        "description": "Only deletions",
        "events_of_interest": [{"event_code": "asset_deleted", "provider": "ccstorage"}],
        "webhook_url": "https://example.com/other",
    }

    response = await client.put(update_url("client-1", "reg-1"), json=change, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json() == FULL_DTO | change
    assert await current(client, headers, "client-1", "reg-1") == FULL_DTO | change


async def test_update_can_point_at_another_action(
    client: httpx.AsyncClient, headers: Headers
) -> None:
    created = await client.post(
        f"{BASE}/actions", json=HANDLER | {"name": "tools/other"}, headers=headers
    )
    assert created.status_code == 200, created.text
    assert (await register(client, headers, FULL_DTO)).status_code == 200

    response = await client.put(
        update_url("client-1", "reg-1"), json={"runtime_action": "tools/other"}, headers=headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["runtime_action"] == "tools/other"


@pytest.mark.parametrize(
    ("status", "expected"),
    [("disabled", "disabled"), ("DISABLED", "disabled"), ("Enabled", "enabled")],
)
async def test_update_normalises_integration_status(
    client: httpx.AsyncClient, headers: Headers, status: str, expected: str
) -> None:
    assert (await register(client, headers, FULL_DTO)).status_code == 200

    response = await client.put(
        update_url("client-1", "reg-1"), json={"integration_status": status}, headers=headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["integration_status"] == expected


async def test_update_accepts_ids_equal_to_the_path(
    client: httpx.AsyncClient, headers: Headers
) -> None:
    assert (await register(client, headers, FULL_DTO)).status_code == 200

    response = await client.put(update_url("client-1", "reg-1"), json=FULL_DTO, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json() == FULL_DTO


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"client_id": "client-2"}, "client_id"),
        ({"registration_id": "reg-2"}, "registration_id"),
        ({"runtime_action": "missing"}, "runtime_action"),
        ({"runtime_action": "/acme-int2/handler"}, "runtime_action"),
        ({"runtime_action": ""}, "runtime_action"),
        ({"events_of_interest": []}, "events_of_interest"),
        ({"events_of_interest": [{"event_code": "c", "provider": ""}]}, "events_of_interest"),
        ({"name": ""}, "name"),
        ({"name": 5}, "name"),
        ({"integration_status": "paused"}, "integration_status"),
        ({"colour": "blue"}, "colour"),
    ],
    ids=case_id,
)
async def test_update_rejects_invalid_changes(
    client: httpx.AsyncClient,
    headers: Headers,
    create_namespace: Callable[[str, str], Awaitable[dict[str, Any]]],
    change: dict[str, Any],
    field: str,
) -> None:
    await create_namespace("acme", "int2")
    other = await client.post(
        "/runtime/namespaces/acme/int2/actions", json=HANDLER, headers=headers
    )
    assert other.status_code == 200, other.text
    assert (await register(client, headers, FULL_DTO)).status_code == 200

    response = await client.put(update_url("client-1", "reg-1"), json=change, headers=headers)

    assert_bad_request(response, field)
    assert await current(client, headers, "client-1", "reg-1") == FULL_DTO


async def test_update_rejects_malformed_json(client: httpx.AsyncClient, headers: Headers) -> None:
    assert (await register(client, headers, FULL_DTO)).status_code == 200

    response = await client.put(
        update_url("client-1", "reg-1"),
        content=b'{"name": ',
        headers=headers | {"Content-Type": "application/json"},
    )

    assert response.status_code == 400, response.text


@pytest.mark.parametrize(("client_id", "registration_id"), [("client-1", "nope"), ("x", "reg-1")])
async def test_update_of_a_missing_registration_is_not_found(
    client: httpx.AsyncClient, headers: Headers, client_id: str, registration_id: str
) -> None:
    assert (await register(client, headers, FULL_DTO)).status_code == 200

    response = await client.put(
        update_url(client_id, registration_id), json={"name": "x"}, headers=headers
    )

    assert response.status_code == 404, response.text
    assert set(response.json()) == {"error", "code"}


# Status.


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("enabled", "enabled"),
        ("ENABLED", "enabled"),
        ("Enabled", "enabled"),
        ("disabled", "disabled"),
        ("DISABLED", "disabled"),
        ("Disabled", "disabled"),
        ("dIsAbLeD", "disabled"),
    ],
)
async def test_status_accepts_any_case(
    client: httpx.AsyncClient, headers: Headers, status: str, expected: str
) -> None:
    assert (await register(client, headers, FULL_DTO)).status_code == 200

    response = await client.post(status_url("client-1", "reg-1", status), headers=headers)

    assert response.status_code == 200, response.text
    assert response.json() == FULL_DTO | {"integration_status": expected}
    assert (await current(client, headers, "client-1", "reg-1"))["integration_status"] == expected


async def test_status_round_trip(client: httpx.AsyncClient, headers: Headers) -> None:
    assert (await register(client, headers, FULL_DTO)).status_code == 200

    seen = []
    for status in ("disabled", "enabled", "DISABLED"):
        response = await client.post(status_url("client-1", "reg-1", status), headers=headers)
        seen.append(response.json()["integration_status"])

    assert seen == ["disabled", "enabled", "disabled"]


@pytest.mark.parametrize("status", ["paused", "enable", "on", "true", "enabled1"])
async def test_status_rejects_unknown_values(
    client: httpx.AsyncClient, headers: Headers, status: str
) -> None:
    assert (await register(client, headers, FULL_DTO)).status_code == 200

    response = await client.post(status_url("client-1", "reg-1", status), headers=headers)

    assert_bad_request(response, status)
    assert (await current(client, headers, "client-1", "reg-1"))["integration_status"] == "enabled"


async def test_status_of_a_missing_registration_is_not_found(
    client: httpx.AsyncClient, headers: Headers
) -> None:
    response = await client.post(status_url("client-1", "reg-1", "disabled"), headers=headers)

    assert response.status_code == 404, response.text


# Deletion.


async def test_delete_returns_the_registration_then_it_is_gone(
    client: httpx.AsyncClient, headers: Headers
) -> None:
    assert (await register(client, headers, FULL_DTO)).status_code == 200

    deleted = await client.delete(delete_url("client-1", "reg-1"), headers=headers)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == FULL_DTO

    again = await client.delete(delete_url("client-1", "reg-1"), headers=headers)
    assert again.status_code == 404, again.text
    status = await client.post(status_url("client-1", "reg-1", "enabled"), headers=headers)
    assert status.status_code == 404
    update = await client.put(update_url("client-1", "reg-1"), json={}, headers=headers)
    assert update.status_code == 404


async def test_deleted_ids_can_be_registered_again(
    client: httpx.AsyncClient, headers: Headers
) -> None:
    assert (await register(client, headers, FULL_DTO)).status_code == 200
    assert (await client.delete(delete_url("client-1", "reg-1"), headers=headers)).is_success

    again = await register(client, headers, FULL_DTO | {"name": "Again"})

    assert again.status_code == 200, again.text
    assert again.json() == FULL_DTO | {"name": "Again"}


async def test_delete_leaves_other_registrations(
    client: httpx.AsyncClient, headers: Headers
) -> None:
    assert (await register(client, headers, FULL_DTO)).status_code == 200
    second = FULL_DTO | {"registration_id": "reg-2", "id": "evt-2"}
    assert (await register(client, headers, second)).status_code == 200

    assert (await client.delete(delete_url("client-1", "reg-1"), headers=headers)).is_success

    assert await current(client, headers, "client-1", "reg-2") == second
