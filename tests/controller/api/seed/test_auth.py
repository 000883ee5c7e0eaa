"""Seed-API authentication (bearer token + API key, both required) and authorisation by org.

Every endpoint is exercised from one table, `ALL_CALLS`, checked against the app's own route
list so that a new endpoint cannot ship without these tests covering it.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from controller.api.app import SEED_ENDPOINTS
from controller.db.models import ActivationRow, EventRegistrationRow
from controller.domain import TokenScope
from controller.errors import NotFound
from controller.services import credentials, namespaces
from controller.settings import Settings
from controller.setup import in_transaction
from tests.conftest import Engine, activation_of

Headers = dict[str, str]
Issue = Callable[..., Awaitable[Headers]]
CreateNamespace = Callable[[str, str], Awaitable[dict[str, Any]]]

ACTION = {"name": "hello", "code": "function main() { return {} }", "exec": {"kind": "nodejs:18"}}


def registration(registration_id: str = "reg1") -> dict[str, Any]:
    return {
        "name": "r",
        "client_id": "c1",
        "registration_id": registration_id,
        "events_of_interest": [{"event_code": "e", "provider": "p"}],
        "runtime_action": "hello",
    }


@dataclass(frozen=True)
class Call:
    """One seed request; `template` uses the route's own placeholder names. `status` is what
    a permitted caller gets from the `client` app, which has no execution engine."""

    method: str
    template: str
    body: dict[str, Any] | None = None
    status: int = 200

    def path(self, org: str, int_id: str) -> str:
        return self.template.format(
            orgId=org,
            intId=int_id,
            name="hello",
            clientId="c1",
            registrationId="reg1",
            status="disabled",
        )

    async def send(
        self, client: httpx.AsyncClient, headers: Headers, org: str = "acme", int_id: str = "int1"
    ) -> httpx.Response:
        return await client.request(
            self.method, self.path(org, int_id), json=self.body, headers=headers
        )

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


ADMIN_NS = "/runtime/admin/namespaces/{orgId}/{intId}"
NS = "/runtime/namespaces/{orgId}/{intId}"
ACTIONS = NS + "/actions"
ACTION_PATH = ACTIONS + "/{name}"

ADMIN_CALLS = (Call("GET", ADMIN_NS), Call("POST", ADMIN_NS), Call("DELETE", ADMIN_NS))
ORG_CALLS = (
    Call("GET", ACTIONS),
    Call("POST", ACTIONS, {**ACTION, "name": "other"}),
    Call("GET", ACTION_PATH),
    Call("POST", ACTION_PATH, {"name": "world"}, status=503),
    Call("PUT", ACTION_PATH, {**ACTION, "code": "function main() { return {changed: 1} }"}),
    Call("DELETE", ACTION_PATH),
    Call("POST", NS + "/handleEventRegistration", registration("reg2")),
    Call("PUT", NS + "/handleEventUpdate/{clientId}/{registrationId}", {"description": "new"}),
    Call("POST", NS + "/handleEventStatus/{clientId}/{registrationId}/{status}"),
    Call("DELETE", NS + "/handleEventDeletion/{clientId}/{registrationId}"),
)
SYSTEM_CALLS = (Call("GET", "/runtime/system/actions"),)
ALL_CALLS = ADMIN_CALLS + ORG_CALLS + SYSTEM_CALLS


def ids(calls: tuple[Call, ...]) -> list[str]:
    return [str(c) for c in calls]


# Helpers.


def assert_error(response: httpx.Response, status: int) -> str:
    """The response is `status` with the `{error, code}` body; returns the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "code"}, body
    assert isinstance(body["error"], str) and body["error"].strip()
    assert body["code"] and body["code"] == response.headers["x-request-id"]
    message: str = body["error"]
    return message


async def ok(response: Awaitable[httpx.Response]) -> Any:
    done = await response
    assert done.status_code == 200, done.text
    return done.json()


async def seed_org(
    client: httpx.AsyncClient, create_namespace: CreateNamespace, issue: Issue, org: str, i: str
) -> Headers:
    """A namespace with action `hello` and registration c1/reg1; returns the org's headers."""
    await create_namespace(org, i)
    headers = await issue(org=org)
    await ok(client.post(f"/runtime/namespaces/{org}/{i}/actions", json=ACTION, headers=headers))
    await ok(
        client.post(
            f"/runtime/namespaces/{org}/{i}/handleEventRegistration",
            json=registration(),
            headers=headers,
        )
    )
    return headers


async def stored(settings: Settings, org: str, int_id: str) -> dict[str, Any]:
    """The namespace's credentials and every stored column of its registrations (the API
    has no endpoint that reads registrations)."""

    async def work(session: Any) -> dict[str, Any]:
        try:
            namespace = await namespaces.get_by_ids(session, org, int_id)
        except NotFound:
            return {"namespace": None, "registrations": []}
        rows = await session.scalars(
            select(EventRegistrationRow)
            .where(EventRegistrationRow.namespace_id == namespace.id)
            .order_by(EventRegistrationRow.id)
        )
        columns = EventRegistrationRow.__table__.columns
        return {
            "namespace": (namespace.name, namespace.auth),
            "registrations": [{c.name: getattr(row, c.name) for c in columns} for row in rows],
        }

    return await in_transaction(settings, work)


async def snapshot(
    client: httpx.AsyncClient, settings: Settings, headers: Headers, org: str, int_id: str
) -> dict[str, Any]:
    """What an org owns: namespace and registrations as stored, actions as read with
    `headers`."""
    state = await stored(settings, org, int_id)
    base = f"/runtime/namespaces/{org}/{int_id}/actions"
    for key, path in (("actions", base), ("hello", base + "/hello")):
        response = await client.get(path, headers=headers)
        state[key] = (response.status_code, response.json())
    return state


# Credentials: valid and revoked, of each kind.


@dataclass(frozen=True)
class Kit:
    token: str  # an admin token, so that only authentication can fail
    api_key: str
    revoked_token: str
    revoked_api_key: str

    @property
    def valid(self) -> Headers:
        return {"Authorization": f"Bearer {self.token}", "X-Api-Key": self.api_key}


async def new_kit(settings: Settings) -> Kit:
    async def work(session: Any) -> Kit:
        _, token = await credentials.create_token(session, TokenScope.ADMIN)
        _, api_key = await credentials.create_api_key(session)
        dead_token, revoked_token = await credentials.create_token(session, TokenScope.ADMIN)
        dead_key, revoked_api_key = await credentials.create_api_key(session)
        await credentials.revoke_token(session, dead_token.id)
        await credentials.revoke_api_key(session, dead_key.id)
        return Kit(token, api_key, revoked_token, revoked_api_key)

    return await in_transaction(settings, work)


@pytest.fixture
async def kit(client: httpx.AsyncClient, settings: Settings) -> Kit:
    return await new_kit(settings)


def _basic(secret: str) -> str:
    return "Basic " + base64.b64encode(f"{secret}:".encode()).decode()


def _headers(authorization: str | None, api_key: str | None) -> Headers:
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization
    if api_key is not None:
        headers["X-Api-Key"] = api_key
    return headers


# (id, (Authorization, X-Api-Key) from a Kit, None meaning absent; a word the message must hold)
BAD_CREDENTIALS: list[tuple[str, Callable[[Kit], tuple[str | None, str | None]], str]] = [
    ("no-headers", lambda k: (None, None), "bearer"),
    ("no-authorization", lambda k: (None, k.api_key), "bearer"),
    ("basic-scheme", lambda k: (_basic(k.token), k.api_key), "bearer"),
    ("valid-token-basic", lambda k: (f"Basic {k.token}", k.api_key), "bearer"),
    ("token-without-scheme", lambda k: (k.token, k.api_key), "bearer"),
    ("bearer-no-token", lambda k: ("Bearer", k.api_key), "bearer"),
    ("bearer-blank-token", lambda k: ("Bearer    ", k.api_key), "bearer"),
    ("unknown-token", lambda k: ("Bearer hrt_not-a-token", k.api_key), "invalid"),
    ("revoked-token", lambda k: (f"Bearer {k.revoked_token}", k.api_key), "invalid"),
    ("api-key-as-token", lambda k: (f"Bearer {k.api_key}", k.api_key), "invalid"),
    ("no-api-key", lambda k: (f"Bearer {k.token}", None), "x-api-key"),
    ("empty-api-key", lambda k: (f"Bearer {k.token}", ""), "x-api-key"),
    ("unknown-api-key", lambda k: (f"Bearer {k.token}", "hrk_nope"), "invalid"),
    ("revoked-api-key", lambda k: (f"Bearer {k.token}", k.revoked_api_key), "invalid"),
    ("token-as-api-key", lambda k: (f"Bearer {k.token}", k.token), "invalid"),
]


@pytest.fixture
async def acme(
    client: httpx.AsyncClient, create_namespace: CreateNamespace, issue: Issue
) -> Headers:
    """Org `acme` with namespace int1, action `hello` and registration c1/reg1."""
    return await seed_org(client, create_namespace, issue, "acme", "int1")


# The table itself.


def test_the_table_covers_every_seed_endpoint() -> None:
    routes = {(e.method, e.openapi_path) for e in SEED_ENDPOINTS}
    assert routes == {(c.method, c.template) for c in ALL_CALLS}
    assert all(e.authenticated for e in SEED_ENDPOINTS)


@pytest.mark.parametrize("call", ALL_CALLS, ids=ids(ALL_CALLS))
async def test_valid_credentials_reach_every_endpoint(
    client: httpx.AsyncClient, acme: Headers, kit: Kit, call: Call
) -> None:
    response = await call.send(client, kit.valid)
    assert response.status_code == call.status, response.text


# Authentication: 401 on every endpoint.


@pytest.mark.parametrize("call", ALL_CALLS, ids=ids(ALL_CALLS))
async def test_bad_credentials_are_unauthenticated(
    client: httpx.AsyncClient, acme: Headers, kit: Kit, call: Call
) -> None:
    failures: dict[str, str] = {}
    for name, credentials_of, word in BAD_CREDENTIALS:
        response = await call.send(client, _headers(*credentials_of(kit)))
        try:
            message = assert_error(response, 401)
            assert word in message.lower(), message
            assert response.headers["www-authenticate"].lower().startswith("bearer")
        except (AssertionError, KeyError) as exc:
            failures[name] = f"{response.status_code} {response.text}: {exc!r}"
    assert not failures, failures


async def test_rejected_requests_change_nothing(
    client: httpx.AsyncClient, settings: Settings, acme: Headers, kit: Kit
) -> None:
    before = await snapshot(client, settings, kit.valid, "acme", "int1")
    for call in ALL_CALLS:
        for headers in ({}, {"Authorization": f"Bearer {kit.revoked_token}", "X-Api-Key": "x"}):
            assert_error(await call.send(client, headers), 401)
        # A namespace that does not exist yet must not be created either.
        assert_error(await call.send(client, {}, "newco", "int9"), 401)
    assert await snapshot(client, settings, kit.valid, "acme", "int1") == before
    missing = await client.get(Call("GET", ADMIN_NS).path("newco", "int9"), headers=kit.valid)
    assert missing.status_code == 404


@pytest.mark.parametrize("kind", ["token", "api_key"])
async def test_revocation_takes_effect_on_the_next_request(
    client: httpx.AsyncClient, settings: Settings, acme: Headers, kind: str
) -> None:
    async def issue_pair(session: Any) -> tuple[int, int, Headers]:
        token_row, token = await credentials.create_token(session, TokenScope.ORG, "acme")
        key_row, key = await credentials.create_api_key(session)
        return token_row.id, key_row.id, {"Authorization": f"Bearer {token}", "X-Api-Key": key}

    token_id, key_id, headers = await in_transaction(settings, issue_pair)
    listing = "/runtime/namespaces/acme/int1/actions"
    assert (await client.get(listing, headers=headers)).status_code == 200

    async def revoke(session: Any) -> None:
        if kind == "token":
            await credentials.revoke_token(session, token_id)
        else:
            await credentials.revoke_api_key(session, key_id)

    await in_transaction(settings, revoke)
    assert_error(await client.get(listing, headers=headers), 401)
    # The other credentials of the org are untouched.
    assert (await client.get(listing, headers=acme)).status_code == 200


# Request ids.


async def test_error_code_is_the_request_id(client: httpx.AsyncClient) -> None:
    first = await client.get("/runtime/system/actions")
    second = await client.get("/runtime/system/actions")
    assert_error(first, 401)
    assert_error(second, 401)
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize(
    ("path", "authenticated", "status"),
    [
        ("/runtime/namespaces/acme/int1/actions", True, 200),
        ("/runtime/namespaces/acme/int1/actions", False, 401),
        ("/runtime/namespaces/other/int1/actions", True, 403),
        ("/runtime/namespaces/acme/int1/actions/missing", True, 404),
    ],
)
async def test_caller_request_id_is_echoed(
    client: httpx.AsyncClient, acme: Headers, path: str, authenticated: bool, status: int
) -> None:
    headers = {**(acme if authenticated else {}), "X-Request-ID": "trace-42.A_b"}
    response = await client.get(path, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"] == "trace-42.A_b"
    if status != 200:
        assert assert_error(response, status)
        assert response.json()["code"] == "trace-42.A_b"


@pytest.mark.parametrize("unusable", ["has space", "x" * 65, "semi;colon"])
async def test_an_unusable_caller_request_id_is_replaced(
    client: httpx.AsyncClient, unusable: str
) -> None:
    response = await client.get("/runtime/system/actions", headers={"X-Request-ID": unusable})
    assert_error(response, 401)
    assert response.headers["x-request-id"] != unusable


# Authorisation: the cross-org matrix.

ORG_A, INT_A, ORG_B, INT_B = "orga", "inta", "orgb", "intb"


@dataclass(frozen=True)
class TwoOrgs:
    a: Headers
    b: Headers


@pytest.fixture
async def two_orgs(
    client: httpx.AsyncClient, create_namespace: CreateNamespace, issue: Issue
) -> TwoOrgs:
    a = await seed_org(client, create_namespace, issue, ORG_A, INT_A)
    b = await seed_org(client, create_namespace, issue, ORG_B, INT_B)
    return TwoOrgs(a, b)


CROSS_ORG_CALLS = (
    *ORG_CALLS,
    Call("GET", ACTIONS + "/missing"),
    Call("PUT", ACTIONS + "/brand-new", {**ACTION, "name": "brand-new"}),
    Call("POST", NS + "/handleEventStatus/c1/nope/enabled"),
)


@pytest.mark.parametrize("call", CROSS_ORG_CALLS, ids=ids(CROSS_ORG_CALLS))
async def test_org_token_is_forbidden_in_another_org(
    client: httpx.AsyncClient, settings: Settings, two_orgs: TwoOrgs, call: Call
) -> None:
    before = await snapshot(client, settings, two_orgs.b, ORG_B, INT_B)
    # Org A's own namespace works (the token is valid), org B's is out of scope.
    assert (await call.send(client, two_orgs.a, ORG_A, INT_A)).status_code in (call.status, 404)
    message = assert_error(await call.send(client, two_orgs.a, ORG_B, INT_B), 403)
    assert ORG_B in message
    # The other org's integrations, existing or not, are out of scope as well.
    assert_error(await call.send(client, two_orgs.a, ORG_B, INT_A), 403)
    assert_error(await call.send(client, two_orgs.a, ORG_B, "nowhere"), 403)
    assert await snapshot(client, settings, two_orgs.b, ORG_B, INT_B) == before


@pytest.mark.parametrize("call", ADMIN_CALLS, ids=ids(ADMIN_CALLS))
async def test_org_token_is_forbidden_on_admin_endpoints(
    client: httpx.AsyncClient,
    settings: Settings,
    two_orgs: TwoOrgs,
    admin_headers: Headers,
    call: Call,
) -> None:
    before_a = await snapshot(client, settings, admin_headers, ORG_A, INT_A)
    before_b = await snapshot(client, settings, admin_headers, ORG_B, INT_B)
    for org, int_id in ((ORG_A, INT_A), (ORG_B, INT_B), (ORG_A, "int2"), ("orgc", "intc")):
        assert_error(await call.send(client, two_orgs.a, org, int_id), 403)
    assert await snapshot(client, settings, admin_headers, ORG_A, INT_A) == before_a
    assert await snapshot(client, settings, admin_headers, ORG_B, INT_B) == before_b
    for org, int_id in ((ORG_A, "int2"), ("orgc", "intc")):
        missing = await client.get(Call("GET", ADMIN_NS).path(org, int_id), headers=admin_headers)
        assert missing.status_code == 404


async def test_authentication_is_checked_before_scope(
    client: httpx.AsyncClient, two_orgs: TwoOrgs, kit: Kit
) -> None:
    headers = {**two_orgs.a, "X-Api-Key": kit.revoked_api_key}
    assert_error(
        await client.get(f"/runtime/namespaces/{ORG_B}/{INT_B}/actions", headers=headers), 401
    )
    assert_error(
        await client.get(f"/runtime/admin/namespaces/{ORG_A}/{INT_A}", headers=headers), 401
    )


@pytest.mark.parametrize("call", (*ORG_CALLS, *SYSTEM_CALLS), ids=ids((*ORG_CALLS, *SYSTEM_CALLS)))
async def test_org_token_reaches_every_endpoint_of_its_own_org(
    client: httpx.AsyncClient, acme: Headers, call: Call
) -> None:
    response = await call.send(client, acme)
    assert response.status_code == call.status, response.text


async def test_org_token_reaches_every_integration_of_its_org(
    client: httpx.AsyncClient, create_namespace: CreateNamespace, acme: Headers
) -> None:
    await create_namespace("acme", "int2")
    assert await ok(client.get("/runtime/namespaces/acme/int2/actions", headers=acme)) == []
    created = await ok(
        client.post("/runtime/namespaces/acme/int2/actions", json=ACTION, headers=acme)
    )
    assert created["namespace"] == "acme-int2"


async def test_org_scope_is_an_exact_match(
    client: httpx.AsyncClient, create_namespace: CreateNamespace, issue: Issue
) -> None:
    for org in ("acme", "acme2", "Acme"):
        await create_namespace(org, "int1")
    headers = await issue(org="acme")
    for org in ("acme2", "Acme", "acm"):
        path = f"/runtime/namespaces/{org}/int1/actions"
        assert_error(await client.get(path, headers=headers), 403)


async def test_admin_token_reaches_every_org(
    client: httpx.AsyncClient, two_orgs: TwoOrgs, admin_headers: Headers
) -> None:
    base = f"/runtime/namespaces/{ORG_B}/{INT_B}/actions"
    assert await ok(client.get(base, headers=admin_headers)) == await ok(
        client.get(base, headers=two_orgs.b)
    )
    hello = await ok(client.get(base + "/hello", headers=admin_headers))
    assert hello == await ok(client.get(base + "/hello", headers=two_orgs.b))
    assert hello["code"] == ACTION["code"]
    # Writes reach the org too, and the org sees them.
    await ok(client.post(base, json={**ACTION, "name": "by-admin"}, headers=admin_headers))
    names = {a["name"] for a in await ok(client.get(base, headers=two_orgs.b))}
    assert names == {"hello", "by-admin"}


@pytest.mark.parametrize("call", ORG_CALLS, ids=ids(ORG_CALLS))
async def test_org_without_a_namespace(
    client: httpx.AsyncClient, settings: Settings, two_orgs: TwoOrgs, issue: Issue, call: Call
) -> None:
    ghost = await issue(org="ghost")
    assert_error(await call.send(client, ghost, "ghost", "int1"), 404)
    before = await snapshot(client, settings, two_orgs.b, ORG_B, INT_B)
    assert_error(await call.send(client, ghost, ORG_B, INT_B), 403)
    assert await snapshot(client, settings, two_orgs.b, ORG_B, INT_B) == before


@pytest.mark.parametrize("scope", ["admin", "org", "org-without-namespace"])
async def test_system_actions_need_any_valid_token(
    client: httpx.AsyncClient, acme: Headers, issue: Issue, scope: str
) -> None:
    headers = {
        "admin": await issue(admin=True),
        "org": acme,
        "org-without-namespace": await issue(org="ghost"),
    }[scope]
    listed = await ok(client.get("/runtime/system/actions", headers=headers))
    assert listed and all(a["namespace"] == "whisk.system" for a in listed)


# Executing actions, with a running execution engine.


@pytest.fixture
def sandbox_kind() -> str:
    """Authorisation does not depend on the sandbox: the process one suffices here."""
    return "process"


async def activation_count(settings: Settings) -> int:
    async def work(session: Any) -> int:
        return int(await session.scalar(select(func.count()).select_from(ActivationRow)))

    return await in_transaction(settings, work)


async def test_execute_is_authenticated_and_scoped(
    engine: Engine, issue: Issue, settings: Settings
) -> None:
    await engine.create("hello", "function main() { return {ran: true} }")
    kit, own, other = await new_kit(settings), await issue(org="acme"), await issue(org="other")

    async def execute(headers: Headers, blocking: str = "true") -> httpx.Response:
        url = f"{engine.base}/actions/hello"
        return await engine.client.post(
            url, json={}, params={"blocking": blocking}, headers=headers
        )

    for blocking in ("true", "false", "maybe"):  # credentials are checked before the query
        for name, credentials_of, _ in BAD_CREDENTIALS:
            response = await execute(_headers(*credentials_of(kit)), blocking)
            assert response.status_code == 401, (name, response.text)
        assert_error(await execute(other, blocking), 403)
    assert await activation_count(settings) == 0  # nothing ran

    ran = await execute(own)
    assert ran.status_code == 200, ran.text
    assert ran.json()["response"]["result"] == {"ran": True}
    await activation_of(settings, ran.json()["activationId"])  # recorded right after the answer
    assert await activation_count(settings) == 1
