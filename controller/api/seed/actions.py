"""`/runtime/namespaces/{orgId}/{intId}/actions[/{name}]`: action management."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from controller import messages
from controller.api.constraints import ACTION_NAME
from controller.api.endpoint import Endpoint, Param, Reply
from controller.api.errors import request_id
from controller.api.http import json_response, parse_model, query_bool, query_int, read_json
from controller.api.seed.common import ORG_PARAMS, json_object, org_namespace
from controller.api.seed.dto import (
    ActionDTO,
    ActionResultDTO,
    action_create_rules,
    action_dto,
    action_result_dto,
    action_spec,
    action_update_rules,
)
from controller.api.state import app_state
from controller.domain import Namespace
from controller.errors import InvalidInput, NotFound
from controller.execution.entry import Call, Resolved
from controller.execution.service import Pending
from controller.names import ActionName
from controller.services import actions

COLLECTION = "/runtime/namespaces/{orgId}/{intId}/actions"
ENTITY = COLLECTION + "/{name:path}"
LIST_MAX = 10_000
SKIP_MAX = 2**31


async def list_actions(request: Request) -> Response:
    state = app_state(request)
    limit = query_int(request, "limit", None, 0, LIST_MAX)
    skip = query_int(request, "skip", 0, 0, SKIP_MAX)
    async with state.transaction() as session:
        namespace = await org_namespace(request, session)
        found = await actions.list_actions(session, namespace, skip or 0, limit or None)
    return json_response([action_dto(a, state.settings.public_api_host) for a in found])


async def create_action(request: Request) -> Response:
    state = app_state(request)
    async with state.transaction() as session:
        namespace = await org_namespace(request, session)
        dto = parse_model(ActionDTO, await json_object(request))
        if not dto.name:
            raise InvalidInput("name: a non-empty action name is required")
        name = ActionName.parse(dto.name)
        action = await actions.create_action(
            session, namespace, name, action_spec(dto), state.write_context
        )
    return json_response(action_dto(action, state.settings.public_api_host))


async def get_action(request: Request) -> Response:
    state = app_state(request)
    async with state.transaction() as session:
        namespace = await org_namespace(request, session)
        name = ActionName.parse(request.path_params["name"])
        action = await actions.get_action(session, namespace, name)
    return json_response(action_dto(action, state.settings.public_api_host))


async def execute_action(request: Request) -> Response:
    """Invoke the action with the body's parameters (merged over its own). Blocking unless
    `?blocking=false`; 200 on success, 502 for application or developer errors, 500 for
    internal ones, 202 with the activation id when not (yet) finished."""
    state = app_state(request)
    entry = state.require_entry()
    key = (
        "seed",
        request.headers.get("authorization", ""),
        request.headers.get("x-api-key", ""),
        request.path_params["orgId"],
        request.path_params["intId"],
    )

    async def caller(fresh: bool) -> tuple[Namespace, int]:
        return await entry.lookup(key, lambda session: org_namespace(request, session), fresh=fresh)

    await caller(False)  # credentials first
    blocking = query_bool(request, "blocking", True)
    name = ActionName.parse(request.path_params["name"])

    async def resolve(fresh: bool) -> Resolved:
        namespace, known = await caller(fresh)
        try:
            target, revision = await entry.target(namespace, namespace.name, name, fresh=fresh)
        except NotFound:  # in the seed API's words, as for the other action endpoints
            raise NotFound(messages.action_not_found(namespace.name, str(name))) from None
        return Resolved(namespace, target, min(known, revision))

    resolved = await resolve(False)  # 401, 403 and 404 before the body is read
    body = await read_json(request, state.settings.limits.payload_max_bytes, empty={})
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object of parameters.")
    call = Call(body, blocking, state.settings.limits.blocking_wait_ms, request_id(request))
    outcome = await entry.invoke(resolve, call)
    if isinstance(outcome, Pending):
        return json_response({"activationId": outcome.activation_id}, status=202)
    activation = outcome.activation
    status = {0: 200, 1: 502, 2: 502}.get(activation.status_code, 500)
    return json_response(action_result_dto(resolved.target.action, activation), status=status)


async def update_action(request: Request) -> Response:
    state = app_state(request)
    async with state.transaction() as session:
        namespace = await org_namespace(request, session)
        name = ActionName.parse(request.path_params["name"])
        dto = parse_model(ActionDTO, await json_object(request))
        if dto.name is not None and dto.name != str(name):
            raise InvalidInput(f"name: '{dto.name}' {messages.NAME_MISMATCH}")
        action = await actions.update_action(
            session, namespace, name, action_spec(dto), state.write_context, honour_version=False
        )
    return json_response(action_dto(action, state.settings.public_api_host))


async def delete_action(request: Request) -> Response:
    state = app_state(request)
    async with state.transaction() as session:
        namespace = await org_namespace(request, session)
        name = ActionName.parse(request.path_params["name"])
        action = await actions.delete_action(session, namespace, name)
    return json_response(action_dto(action, state.settings.public_api_host))


TAG = "actions"
PAGING = (
    Param(
        "limit",
        "query",
        "At most this many actions (all by default, or when 0)",
        {"type": "integer", "minimum": 0, "maximum": LIST_MAX},
    ),
    Param(
        "skip",
        "query",
        "Skip this many actions first",
        {"type": "integer", "minimum": 0, "maximum": SKIP_MAX},
    ),
)
NAMED = (*ORG_PARAMS, Param("name", "path", "Action name", ACTION_NAME))
ACCEPTED = Reply(
    202,
    "Not finished yet (or `?blocking=false`): the activation id",
    {
        "type": "object",
        "required": ["activationId"],
        "properties": {"activationId": {"type": "string"}},
    },
)
FAILED = Reply(502, "The action failed: an application or developer error", ActionResultDTO)
ENDPOINTS = (
    Endpoint("GET", COLLECTION, list_actions, "List the namespace's actions (without code)",
             TAG, response=ActionDTO, response_is_list=True, params=(*ORG_PARAMS, *PAGING),
             errors=(400, 401, 403, 404)),
    Endpoint("POST", COLLECTION, create_action, "Create an action", TAG, request=ActionDTO,
             request_rules=action_create_rules, response=ActionDTO, params=ORG_PARAMS,
             errors=(400, 401, 403, 404, 409, 413, 415)),
    Endpoint("GET", ENTITY, get_action, "Get an action, with its code", TAG,
             response=ActionDTO, params=NAMED, errors=(400, 401, 403, 404)),
    Endpoint("POST", ENTITY, execute_action,
             "Execute an action: blocking by default (?blocking=false answers 202)", TAG,
             response=ActionResultDTO, params=(*NAMED, Param("blocking", "query",
             "Wait for the result (default true)", {"type": "boolean"})),
             replies=(ACCEPTED, FAILED), errors=(400, 401, 403, 404, 413, 415, 429, 503)),
    Endpoint("PUT", ENTITY, update_action,
             "Update an action: supplied fields replace, annotations merge, version + 1",
             TAG, request=ActionDTO, request_rules=action_update_rules, response=ActionDTO,
             params=NAMED, errors=(400, 401, 403, 404, 409, 413, 415)),
    Endpoint("DELETE", ENTITY, delete_action, "Delete an action", TAG, response=ActionDTO,
             params=NAMED, errors=(400, 401, 403, 404)),
)  # fmt: skip
