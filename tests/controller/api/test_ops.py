"""Operational endpoints (liveness, readiness, the OpenAPI document) and the error shape of
requests no route serves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from controller.api.app import SEED_ENDPOINTS, create_app
from controller.settings import Settings

Headers = dict[str, str]

UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:1/nope"

# Every path and method of the reference (shared/spec/adobe-io-runtime-api-reference.txt).
REFERENCE_PATHS = {
    "/runtime/admin/namespaces/{orgId}/{intId}": {"get", "post", "delete"},
    "/runtime/namespaces/{orgId}/{intId}/actions": {"get", "post"},
    "/runtime/namespaces/{orgId}/{intId}/actions/{name}": {"get", "post", "put", "delete"},
    "/runtime/system/actions": {"get"},
    "/runtime/namespaces/{orgId}/{intId}/handleEventRegistration": {"post"},
    "/runtime/namespaces/{orgId}/{intId}/handleEventDeletion/{clientId}/{registrationId}": {
        "delete"
    },
    "/runtime/namespaces/{orgId}/{intId}/handleEventUpdate/{clientId}/{registrationId}": {"put"},
    "/runtime/namespaces/{orgId}/{intId}/handleEventStatus/{clientId}/{registrationId}/{status}": {
        "post"
    },
}

# The reference's DTO models and their field names; True when the model's fields are exactly
# these, False when Homerun may add extensions (ExecDTO has `main`).
REFERENCE_SCHEMAS = {
    "ActionDTO": (
        {"name", "code", "namespace", "version", "params", "annotations", "limits", "exec", "url"},
        True,
    ),
    "EventDTO": (
        {
            "id",
            "name",
            "description",
            "client_id",
            "type",
            "integration_status",
            "delivery_type",
            "webhook_url",
            "events_of_interest",
            "runtime_action",
            "registration_id",
        },
        True,
    ),
    "EventsOfInterestDTO": ({"event_code", "provider"}, True),
    "NamespaceDTO": ({"name", "auth"}, True),
    "KeyValuePairDTO": ({"key", "value"}, False),  # `init` is an extension
    "LimitsDTO": ({"timeout", "memory", "logs"}, True),
    "ExecDTO": ({"kind", "binary", "components"}, False),
}


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture
async def bare_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An app over an unmigrated SQLite file, for what does not touch the database."""
    async with serve(Settings(data_dir=tmp_path)) as http:
        yield http


@pytest.fixture
async def document(bare_client: httpx.AsyncClient) -> dict[str, Any]:
    response = await bare_client.get("/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


def conforms(document: dict[str, Any], schema_name: str, instance: Any) -> list[str]:
    """The problems of `instance` against a component schema of `document`."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    validator = OAS31Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


# Liveness and readiness.


async def test_healthz(bare_client: httpx.AsyncClient) -> None:
    response = await bare_client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_healthz_needs_no_database(tmp_path: Path) -> None:
    async with serve(Settings(data_dir=tmp_path, database_url=UNREACHABLE_DATABASE)) as http:
        response = await http.get("/healthz")

    assert response.status_code == 200


async def test_readyz_with_a_reachable_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_readyz_with_an_unreachable_database(tmp_path: Path) -> None:
    async with serve(Settings(data_dir=tmp_path, database_url=UNREACHABLE_DATABASE)) as http:
        response = await http.get("/readyz")

    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"].startswith("unreachable")
    assert "nope" not in response.text and "postgres@" not in response.text, "no URL leaks"


# The OpenAPI document.


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


async def test_openwhisk_document_is_valid_openapi_3_1(bare_client: httpx.AsyncClient) -> None:
    response = await bare_client.get("/api/v1/api-docs")

    assert response.status_code == 200, response.text
    document = response.json()
    validate(document)
    assert "/api/v1/namespaces/{namespace}/actions/{name}" in document["paths"]
    assert document["components"]["securitySchemes"] == {
        "basic": {"type": "http", "scheme": "basic"}
    }


def test_every_seed_route_uses_a_reference_path(document: dict[str, Any]) -> None:
    for endpoint in SEED_ENDPOINTS:
        method = endpoint.method.lower()
        assert method in REFERENCE_PATHS.get(endpoint.openapi_path, set()), (
            f"{endpoint.method} {endpoint.openapi_path} is not in the reference"
        )


def test_document_lists_every_seed_route(document: dict[str, Any]) -> None:
    documented = {
        (path, method)
        for path, operations in document["paths"].items()
        for method in operations
        if path in REFERENCE_PATHS
    }
    routed = {(e.openapi_path, e.method.lower()) for e in SEED_ENDPOINTS}

    assert documented == routed


def test_path_parameters_match_the_reference(document: dict[str, Any]) -> None:
    for endpoint in SEED_ENDPOINTS:
        operation = document["paths"][endpoint.openapi_path][endpoint.method.lower()]
        in_path = [p["name"] for p in operation["parameters"] if p["in"] == "path"]
        expected = [part[1:-1] for part in endpoint.openapi_path.split("/") if part.startswith("{")]
        assert in_path == expected, endpoint.openapi_path


def test_event_operations_document_the_ams_headers(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        if "/handleEvent" not in path:
            continue
        for operation in operations.values():
            headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
            assert {"X-Ams-Consumer-Id", "X-Ams-Application-Id"} <= headers, path


def test_operations_are_uniquely_identified(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]

    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", sorted(REFERENCE_SCHEMAS))
def test_dto_schemas_use_the_reference_field_names(document: dict[str, Any], name: str) -> None:
    fields, exact = REFERENCE_SCHEMAS[name]

    properties = set(document["components"]["schemas"][name]["properties"])

    assert fields <= properties
    if exact:
        assert properties == fields


@pytest.mark.parametrize(
    ("path", "method", "schema"),
    [
        ("/runtime/system/actions", "get", {"type": "array", "items": "ActionDTO"}),
        ("/runtime/namespaces/{orgId}/{intId}/actions", "post", "ActionDTO"),
        ("/runtime/admin/namespaces/{orgId}/{intId}", "post", "NamespaceDTO"),
        ("/runtime/namespaces/{orgId}/{intId}/handleEventRegistration", "post", "EventDTO"),
    ],
)
def test_operations_reference_the_dtos(
    document: dict[str, Any], path: str, method: str, schema: Any
) -> None:
    operation = document["paths"][path][method]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]

    if isinstance(schema, dict):
        assert ok == {"type": "array", "items": {"$ref": f"#/components/schemas/{schema['items']}"}}
    else:
        assert ok == {"$ref": f"#/components/schemas/{schema}"}
    if method == "post" and path != "/runtime/admin/namespaces/{orgId}/{intId}":
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        model, rules = body["allOf"]  # the DTO, and what the server enforces beyond it
        assert model == ok
        assert rules["required"]


async def test_responses_conform_to_the_documented_schemas(
    client: httpx.AsyncClient,
    bare_client: httpx.AsyncClient,
    issue: Callable[..., Awaitable[Headers]],
    create_namespace: Callable[[str, str], Awaitable[dict[str, Any]]],
) -> None:
    document = (await bare_client.get("/openapi.json")).json()
    namespace = await create_namespace("acme", "int1")
    headers = await issue(org="acme")
    action = await client.post(
        "/runtime/namespaces/acme/int1/actions",
        json={
            "name": "handler",
            "code": "function main(){return {}}",
            "exec": {"kind": "nodejs:18"},
        },
        headers=headers,
    )
    registration = await client.post(
        "/runtime/namespaces/acme/int1/handleEventRegistration",
        json={
            "name": "n",
            "client_id": "c",
            "events_of_interest": [{"event_code": "e", "provider": "p"}],
            "runtime_action": "handler",
        },
        headers=headers,
    )
    system = await client.get("/runtime/system/actions", headers=headers)
    error = await client.get("/runtime/system/actions")

    assert conforms(document, "NamespaceDTO", namespace) == []
    assert conforms(document, "ActionDTO", action.json()) == []
    assert conforms(document, "EventDTO", registration.json()) == []
    for listed in system.json():
        assert conforms(document, "ActionDTO", listed) == []
    assert conforms(document, "ErrorDTO", error.json()) == []


# Requests no route serves.


@pytest.mark.parametrize(
    "path", ["/nope", "/runtime/nope", "/runtime/namespaces/acme", "/api/v1/unknown"]
)
async def test_unknown_route_is_a_json_404(bare_client: httpx.AsyncClient, path: str) -> None:
    response = await bare_client.get(path)

    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"error", "code"}
    assert body["error"]
    assert body["code"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/healthz", {"GET"}),
        ("DELETE", "/readyz", {"GET"}),
        ("PUT", "/openapi.json", {"GET"}),
        ("POST", "/runtime/system/actions", {"GET"}),
        ("PATCH", "/runtime/admin/namespaces/acme/int1", {"GET", "POST", "DELETE"}),
        ("GET", "/runtime/namespaces/acme/int1/handleEventRegistration", {"POST"}),
    ],
)
async def test_wrong_method_is_a_json_405(
    bare_client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await bare_client.request(method, path)

    assert response.status_code == 405
    body = response.json()
    assert set(body) == {"error", "code"}
    assert body["error"]
    assert {m.strip() for m in response.headers["allow"].split(",")} >= allowed


async def test_request_id_is_echoed(bare_client: httpx.AsyncClient) -> None:
    response = await bare_client.get("/nope", headers={"X-Request-ID": "trace-123"})

    assert response.headers["x-request-id"] == "trace-123"
    assert response.json()["code"] == "trace-123"
