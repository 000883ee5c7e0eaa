"""The OpenAPI 3.1 documents, generated from the endpoint tables, the DTO models and what the
server enforces (`controller.api.constraints`).

Two documents, one per surface: `/openapi.json` for the seed API (Bearer token and API key)
and `/api/v1/api-docs` for the OpenWhisk API (Basic `uuid:key`), where OpenWhisk serves its
own and where `GET /api/v1` says it is. The surfaces differ in credentials, error wording and
DTOs, and the seed document stays exactly the seed contract.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from controller.api.constraints import Constraints, Schema
from controller.api.endpoint import Body, Endpoint, Param, is_model, resolve
from controller.api.seed.dto import ErrorDTO

_REF = "#/components/schemas/{model}"
_ERROR_TEXT = {
    400: "Invalid input; the message names the field",
    401: "Missing or invalid credentials",
    403: "Valid credentials that do not reach this resource",
    404: "No such entity",
    409: "The entity exists already",
    413: "A body or one of its fields is too large",
    415: "The body is not JSON",
    429: "Too many requests or activations in flight for the namespace",
    503: "No execution engine or no invoker is available (see Retry-After)",
}
_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


@dataclass(frozen=True)
class Surface:
    """What one document says besides its operations."""

    description: str
    security_schemes: dict[str, Schema]
    security: list[dict[str, list[str]]]
    components: dict[str, Schema] = field(default_factory=dict)  # schemas bodies reference


def ref(name: str) -> Schema:
    return {"$ref": _REF.format(model=name)}


def _body_schema(body: Body, constraints: Constraints) -> Schema:
    if is_model(body):
        assert isinstance(body, type)
        return ref(body.__name__)
    return resolve(body, constraints)  # type: ignore[arg-type]


def _parameter(p: Param, constraints: Constraints) -> Schema:
    return {
        "name": p.name,
        "in": p.where,
        "required": p.required or p.where == "path",
        "description": p.description,
        "schema": resolve(p.schema, constraints),
    }


def _parameters(endpoint: Endpoint, constraints: Constraints) -> list[Schema]:
    declared = {p.name: p for p in endpoint.params if p.where == "path"}
    names = _PATH_PARAM.findall(endpoint.path)
    path = [
        _parameter(declared[name], constraints)
        if name in declared
        else {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in names
    ]
    others = [_parameter(p, constraints) for p in endpoint.params if p.where != "path"]
    return path + others


def _content(body: Body | None, media_type: str, constraints: Constraints) -> Schema:
    if body is None:
        return {}
    return {"content": {media_type: {"schema": _body_schema(body, constraints)}}}


def _responses(endpoint: Endpoint, constraints: Constraints) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "Successful operation"}
    if endpoint.response is not None:
        schema = _body_schema(endpoint.response, constraints)
        if endpoint.response_is_list:
            schema = {"type": "array", "items": schema}
        ok["content"] = {endpoint.response_media_type: {"schema": schema}}
    responses: dict[str, Any] = {str(endpoint.status): ok}
    for reply in endpoint.replies:
        responses[str(reply.status)] = {
            "description": reply.description,
            **_content(reply.body, reply.media_type, constraints),
        }
    error = {"application/json": {"schema": ref(ErrorDTO.__name__)}}
    for status in endpoint.errors:
        responses[str(status)] = {"description": _ERROR_TEXT[status], "content": error}
    return responses


def _operation(endpoint: Endpoint, operation_id: str, constraints: Constraints) -> Schema:
    operation: Schema = {
        "summary": endpoint.summary,
        "operationId": operation_id,
        "tags": [endpoint.tag],
        "parameters": _parameters(endpoint, constraints),
        "responses": _responses(endpoint, constraints),
    }
    if endpoint.request is not None:
        schema = _body_schema(endpoint.request, constraints)
        if endpoint.request_rules is not None:
            schema = {"allOf": [schema, resolve(endpoint.request_rules, constraints)]}
        operation["requestBody"] = {
            "required": not endpoint.body_optional,
            "content": {"application/json": {"schema": schema}},
        }
    if not endpoint.authenticated:
        operation["security"] = []
    return operation


def _models(endpoints: list[Endpoint]) -> list[type[BaseModel]]:
    found: set[type[BaseModel]] = {ErrorDTO}
    for e in endpoints:
        bodies = [e.request, e.response, *(r.body for r in e.replies)]
        found.update(b for b in bodies if is_model(b))  # type: ignore[misc]
    return sorted(found, key=lambda m: m.__name__)


def build(
    surface: Surface,
    endpoints: Iterable[Endpoint],
    version: str,
    constraints: Constraints,
) -> dict[str, Any]:
    endpoints = list(endpoints)
    _, schemas = models_json_schema(
        [(m, "serialization") for m in _models(endpoints)], ref_template=_REF
    )
    paths: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for endpoint in endpoints:
        operation_id = (
            endpoint.handler.__module__.rsplit(".", 1)[-1] + "_" + endpoint.handler.__name__
        )
        if operation_id in seen:  # one handler serving several methods
            operation_id += "_" + endpoint.method.lower()
        seen.add(operation_id)
        paths.setdefault(endpoint.openapi_path, {})[endpoint.method.lower()] = _operation(
            endpoint, operation_id, constraints
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": "Homerun", "version": version, "description": surface.description},
        "paths": paths,
        "components": {
            "schemas": {**schemas.get("$defs", {}), **surface.components},
            "securitySchemes": surface.security_schemes,
        },
        "security": surface.security,
    }


SEED = Surface(
    description="Adobe I/O Runtime seed API, as implemented by Homerun.",
    security_schemes={
        "bearer": {"type": "http", "scheme": "bearer"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
    },
    security=[{"bearer": [], "apiKey": []}],
)
