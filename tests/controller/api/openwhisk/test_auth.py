"""Basic authentication, the error body, request ids and CORS on `/api/v1`
(shared/spec/openwhisk.md §1)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.controller.api.openwhisk.support import (
    API,
    REQUEST_ID,
    Caller,
    assert_error,
    node_action,
)

AUTH_REQUIRED = "The resource requires authentication, which was not supplied with the request"
AUTH_INVALID = "The supplied authentication is invalid"
ACTIVATION = "0123456789abcdef0123456789abcdef"

# Every authenticated route of the API core, with a body where one is expected.
ROUTES = [
    ("GET", f"{API}/namespaces", None),
    ("GET", f"{API}/namespaces/_/limits", None),
    ("GET", f"{API}/namespaces/_/actions", None),
    ("GET", f"{API}/namespaces/_/actions/hello", None),
    ("GET", f"{API}/namespaces/_/actions/tools/", None),
    ("PUT", f"{API}/namespaces/_/actions/hello", node_action()),
    ("DELETE", f"{API}/namespaces/_/actions/hello", None),
    ("POST", f"{API}/namespaces/_/actions/hello", {}),
    ("GET", f"{API}/namespaces/whisk.system/actions/utils/echo", None),
    ("GET", f"{API}/namespaces/_/activations", None),
    ("GET", f"{API}/namespaces/_/activations/{ACTIVATION}", None),
    ("GET", f"{API}/namespaces/_/activations/{ACTIVATION}/logs", None),
    ("GET", f"{API}/namespaces/_/activations/{ACTIVATION}/result", None),
]
CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-headers": (
        "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent"
    ),
    "access-control-allow-methods": "GET, DELETE, POST, PUT, HEAD",
}


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def assert_cors(response: httpx.Response) -> None:
    where = (response.request.method, response.request.url.path, response.status_code)
    for header, value in CORS.items():
        assert response.headers.get(header) == value, (header, where)


async def test_missing_credentials_are_401_with_the_basic_challenge(
    client: httpx.AsyncClient,
) -> None:
    for method, path, body in ROUTES:
        response = await client.request(method, path, json=body)
        assert_error(response, 401, AUTH_REQUIRED)
        challenge = response.headers["www-authenticate"]
        assert challenge == 'Basic realm="OpenWhisk secure realm"', (method, path)


async def test_authentication_comes_before_activation_id_validation(
    client: httpx.AsyncClient,
) -> None:
    # OpenWhisk authenticates every /api/v1/namespaces route before looking at its path.
    response = await client.get(f"{API}/namespaces/_/activations/abcde")
    assert_error(response, 401, AUTH_REQUIRED)


def _with_key(auth: str, key: str) -> str:
    return "Basic " + encoded(f"{auth.partition(':')[0]}:{key}")


# How to spoil the valid `uuid:key` of a namespace into credentials that match nothing.
BAD_CREDENTIALS: dict[str, Callable[[str], str]] = {
    "wrong-key": lambda auth: _with_key(auth, "x" * 64),
    "key-prefix": lambda auth: _with_key(auth, auth.partition(":")[2][:-1]),
    "unknown-uuid": lambda auth: "Basic " + encoded(f"{uuid.uuid4()}:{auth.partition(':')[2]}"),
    "malformed-base64": lambda auth: "Basic !!!not-base64!!!",
    "no-colon": lambda auth: "Basic " + encoded(auth.replace(":", "")),
    "not-utf8": lambda auth: "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    "bearer": lambda auth: "Bearer " + auth,
    "other-scheme": lambda auth: "Digest " + encoded(auth),
}


@pytest.mark.parametrize("case", BAD_CREDENTIALS)
async def test_invalid_credentials_are_401(
    client: httpx.AsyncClient, acme: Caller, case: str
) -> None:
    authorization = BAD_CREDENTIALS[case](acme.auth)
    for method, path, body in ROUTES:
        response = await client.request(
            method, path, json=body, headers={"Authorization": authorization}
        )
        assert_error(response, 401, AUTH_INVALID)
        assert response.headers["www-authenticate"] == 'Basic realm="OpenWhisk secure realm"'


async def test_valid_credentials_pass(client: httpx.AsyncClient, acme: Caller) -> None:
    response = await client.get(f"{API}/namespaces", headers=acme.headers)
    assert response.status_code == 200, response.text


# Errors of every kind the API core produces, each with its status.
ERRORS = [
    pytest.param("GET", f"{API}/namespaces/_/actions/missing", None, 404, id="not-found"),
    pytest.param("GET", f"{API}/nothing/here", None, 404, id="unknown-route"),
    pytest.param("PATCH", f"{API}/namespaces/_/actions/hello", None, 405, id="wrong-method"),
    pytest.param("GET", f"{API}/namespaces/_/actions?limit=x", None, 400, id="bad-query"),
    pytest.param("GET", f"{API}/namespaces/globex-int2/actions", None, 403, id="forbidden"),
    pytest.param("PUT", f"{API}/namespaces/_/actions/x", {}, 400, id="bad-body"),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), ERRORS)
async def test_error_bodies_are_error_and_code(
    client: httpx.AsyncClient,
    acme: Caller,
    globex: Caller,
    method: str,
    path: str,
    body: object,
    status: int,
) -> None:
    response = await client.request(method, path, json=body, headers=acme.headers)
    assert_error(response, status)
    assert REQUEST_ID.fullmatch(response.headers["x-request-id"])
    assert_cors(response)


async def test_unknown_route_uses_openwhisks_words(client: httpx.AsyncClient, acme: Caller) -> None:
    response = await client.get(f"{API}/nothing/here", headers=acme.headers)
    assert_error(response, 404, "The requested resource could not be found.")


async def test_every_request_gets_a_fresh_request_id(client: httpx.AsyncClient) -> None:
    ids = {(await client.get(f"{API}/namespaces")).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(REQUEST_ID.fullmatch(i) for i in ids)


@pytest.mark.parametrize("incoming", ["my-trace-123", "Xk3b9QmZ0pL8r2TfWvY6nA1sD4gH7jK5"])
async def test_an_incoming_request_id_is_adopted(
    client: httpx.AsyncClient, acme: Caller, incoming: str
) -> None:
    failed = await client.get(f"{API}/namespaces", headers={"X-Request-ID": incoming})
    assert_error(failed, 401)
    assert failed.json()["code"] == incoming
    assert failed.headers["x-request-id"] == incoming
    succeeded = await client.get(
        f"{API}/namespaces", headers={**acme.headers, "X-Request-ID": incoming}
    )
    assert succeeded.status_code == 200
    assert succeeded.headers["x-request-id"] == incoming


async def test_an_incoming_sid_request_id_is_not_adopted(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/namespaces", headers={"X-Request-ID": "sid_12345"})
    assert_error(response, 401)
    code = response.json()["code"]
    assert code != "sid_12345"
    assert REQUEST_ID.fullmatch(code)


# Successes and failures, with and without credentials.
CORS_SAMPLES = [
    ("GET", API, False),
    ("GET", f"{API}/namespaces", True),
    ("GET", f"{API}/namespaces", False),
    ("GET", f"{API}/namespaces/_/limits", True),
    ("PUT", f"{API}/namespaces/_/actions/hello", True),
    ("GET", f"{API}/namespaces/_/actions", True),
    ("DELETE", f"{API}/namespaces/_/actions/hello", True),
    ("GET", f"{API}/namespaces/_/actions/hello", True),
    ("GET", f"{API}/namespaces/_/activations", True),
    ("GET", f"{API}/namespaces/_/activations/abcde", True),
]
OPTIONS_PATHS = [
    API,
    f"{API}/",
    f"{API}/namespaces",
    f"{API}/namespaces/_/limits",
    f"{API}/namespaces/_/actions/hello",
    f"{API}/namespaces/_/actions/tools/hello",
    f"{API}/namespaces/someone-else/activations",
    f"{API}/namespaces/_/activations/{ACTIVATION}/logs",
    f"{API}/no/such/route",
]


async def test_every_api_response_carries_cors_headers(
    client: httpx.AsyncClient, acme: Caller
) -> None:
    for method, path, authenticated in CORS_SAMPLES:
        headers = acme.headers if authenticated else {}
        body = node_action() if method == "PUT" else None
        response = await client.request(method, path, json=body, headers=headers)
        assert_cors(response)


async def test_options_is_200_with_cors_headers_without_auth(client: httpx.AsyncClient) -> None:
    for path in OPTIONS_PATHS:
        response = await client.options(path, headers={"Origin": "https://example.com"})
        assert response.status_code == 200, (path, response.text)
        assert_cors(response)
