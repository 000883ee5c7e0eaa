"""`/api/v1/namespaces/{namespace}/activations[/{id}[/logs|/result]]`."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from controller import messages
from controller.api.endpoint import Endpoint, Param, table
from controller.api.openapi import ref
from controller.api.openwhisk.common import (
    authenticated,
    namespace_of,
    page,
    query_bool,
    require_own,
)
from controller.api.openwhisk.entities import (
    activation_json,
    activation_response,
    activation_summary,
)
from controller.api.openwhisk.schemas import NAMESPACE, PAGING
from controller.errors import InvalidInput, NotFound
from controller.services import activations
from controller.services.activations import Activation, ActivationFilter

PREFIX = "/api/v1/namespaces/{namespace}/activations"
_ID = re.compile(r"^[0-9a-f]{32}$")


def _epoch(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
        if not -(2**63) <= value < 2**63:  # epoch ms are 64-bit, as in OpenWhisk
            raise ValueError(raw)
        return value
    except ValueError:
        raise InvalidInput(
            f"The query parameter '{name}' was malformed:\n"
            f"Parameter is not a valid value for epoch seconds: {raw}"
        ) from None


def _name_filter(request: Request) -> str | None:
    raw = request.query_params.get("name")
    if raw is None or raw == "":
        return None
    if raw.count("/") > 1:
        raise InvalidInput(
            "The query parameter 'name' was malformed:\n"
            f"Parameter may be a 'simple' name or 'package-name/simple' name: {raw}"
        )
    return raw


async def list_activations(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        namespace = namespace_of(request, caller)
        require_own(namespace, caller, namespace)
        p = page(request, "activations")
        docs = query_bool(request, "docs", False)
        if p.count and docs:
            raise InvalidInput("The parameter 'docs' is not permitted with 'count'.")
        f = ActivationFilter(
            _name_filter(request), _epoch(request, "since"), _epoch(request, "upto")
        )
        if p.count:
            count = await activations.count_activations(session, caller.id, f)
            return JSONResponse({"activations": count})
        found = await activations.list_activations(
            session, caller.id, caller.name, f, p.skip, p.limit
        )
    render = activation_json if docs else activation_summary
    return JSONResponse([render(a) for a in found])


async def _one(request: Request) -> Activation:
    activation_id = str(request.path_params["activation_id"])
    async with authenticated(request) as (session, caller):
        if len(activation_id) != 32:
            raise InvalidInput(f"Activation id length is {len(activation_id)} but must be 32.")
        if not _ID.match(activation_id):
            raise InvalidInput("The activation id is not valid.")
        namespace = namespace_of(request, caller)
        require_own(namespace, caller, f"{namespace}/{activation_id}")
        found = await activations.get(session, activation_id)
    if found is None or found.namespace != caller.name:
        raise NotFound(messages.ENTITY_NOT_FOUND)
    return found


async def get_activation(request: Request) -> Response:
    return JSONResponse(activation_json(await _one(request)))


async def get_logs(request: Request) -> Response:
    return JSONResponse({"logs": (await _one(request)).logs})


async def get_result(request: Request) -> Response:
    return JSONResponse(activation_response(await _one(request)))


TAG = "activations"
ID = Param("activation_id", "path", "32 hex digits", {"type": "string", "pattern": _ID.pattern})
_EPOCH = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
FILTERS = (
    Param(
        "docs",
        "query",
        "Full records instead of summaries (not with `count=true`)",
        {"type": "boolean"},
    ),
    Param(
        "name",
        "query",
        "Only the activations of `name` or `package/name`",
        {"type": "string", "pattern": "^[^/]*(?:/[^/]*)?$"},
    ),
    Param("since", "query", "Started at or after, epoch ms", _EPOCH),
    Param("upto", "query", "Started at or before, epoch ms", _EPOCH),
)
_LISTING = {
    "anyOf": [
        {"type": "array", "items": {"anyOf": [ref("ActivationSummary"), ref("Activation")]}},
        {
            "type": "object",
            "required": ["activations"],
            "properties": {"activations": {"type": "integer"}},
        },
    ]
}
_LOGS = {
    "type": "object",
    "required": ["logs"],
    "properties": {"logs": {"type": "array", "items": {"type": "string"}}},
}
ENDPOINTS = (
    Endpoint("GET", PREFIX, list_activations, "List activations, newest first", TAG,
             response=_LISTING, params=(NAMESPACE, *PAGING, *FILTERS), errors=(400, 401, 403)),
    Endpoint("GET", PREFIX + "/{activation_id}", get_activation, "Get an activation", TAG,
             response=ref("Activation"), params=(NAMESPACE, ID), errors=(400, 401, 403, 404)),
    Endpoint("GET", PREFIX + "/{activation_id}/logs", get_logs, "Get an activation's logs",
             TAG, response=_LOGS, params=(NAMESPACE, ID), errors=(400, 401, 403, 404)),
    Endpoint("GET", PREFIX + "/{activation_id}/result", get_result,
             "Get an activation's response", TAG, response=ref("ActivationResponse"),
             params=(NAMESPACE, ID), errors=(400, 401, 403, 404)),
)  # fmt: skip
TABLE = table(ENDPOINTS)
