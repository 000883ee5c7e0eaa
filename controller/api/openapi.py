"""The OpenAPI 3.1 document, generated from the endpoint tables and the DTO models."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from controller.api.endpoint import Endpoint
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
    503: "No execution engine or no invoker is available",
}
_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


def _schema_ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(endpoint.path)
    ]
    parameters += [
        {
            "name": p.name,
            "in": p.where,
            "required": p.required,
            "description": p.description,
            "schema": {"type": p.schema_type},
        }
        for p in endpoint.params
    ]
    responses: dict[str, Any] = {}
    ok: dict[str, Any] = {"description": "Successful operation"}
    if endpoint.response is not None:
        schema: dict[str, Any] = _schema_ref(endpoint.response)
        if endpoint.response_is_list:
            schema = {"type": "array", "items": schema}
        ok["content"] = {"application/json": {"schema": schema}}
    responses[str(endpoint.status)] = ok
    error_content = {"application/json": {"schema": _schema_ref(ErrorDTO)}}
    for status in endpoint.errors:
        responses[str(status)] = {"description": _ERROR_TEXT[status], "content": error_content}
    operation: dict[str, Any] = {
        "summary": endpoint.summary,
        "operationId": endpoint.handler.__module__.rsplit(".", 1)[-1]
        + "_"
        + endpoint.handler.__name__,
        "tags": [endpoint.tag],
        "parameters": parameters,
        "responses": responses,
    }
    if endpoint.request is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema_ref(endpoint.request)}},
        }
    if not endpoint.authenticated:
        operation["security"] = []
    return operation


def build(endpoints: Iterable[Endpoint], version: str) -> dict[str, Any]:
    endpoints = list(endpoints)
    models: set[type[BaseModel]] = {ErrorDTO}
    for e in endpoints:
        models.update(m for m in (e.request, e.response) if m is not None)
    _, schemas = models_json_schema(
        [(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template=_REF,
    )
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.openapi_path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Homerun",
            "version": version,
            "description": "Adobe I/O Runtime seed API, as implemented by Homerun.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            },
        },
        "security": [{"bearer": [], "apiKey": []}],
    }
