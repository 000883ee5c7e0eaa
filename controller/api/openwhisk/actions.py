"""`/api/v1/namespaces/{namespace}/actions[/{package}/][/{name}]`: actions and invocation."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from controller import messages
from controller.api.constraints import ACTION_NAME, SEGMENT, Constraints, Schema
from controller.api.endpoint import Endpoint, Param, Reply, table
from controller.api.errors import request_id
from controller.api.openapi import ref
from controller.api.openwhisk.common import (
    authenticated,
    cached_caller,
    json_body,
    namespace_of,
    page,
    query_bool,
    require_own,
)
from controller.api.openwhisk.entities import (
    ActionPut,
    action_json,
    action_put,
    action_summary,
    activation_json,
)
from controller.api.openwhisk.schemas import (
    NAMESPACE,
    OVERWRITE,
    PACKAGED,
    PAGING,
    listing,
    put_rules,
)
from controller.api.state import app_state
from controller.domain import Namespace
from controller.errors import Conflict, InvalidInput, NotAuthorized, NotFound
from controller.execution.entry import Call, Resolved
from controller.execution.service import Pending
from controller.names import ActionName
from controller.services import actions, namespaces, packages, resolver

PREFIX = "/api/v1/namespaces/{namespace}/actions"
ACTIVATION_HEADER = "x-openwhisk-activation-id"


async def _owner(session: AsyncSession, caller: Namespace, name: str, path: str) -> Namespace:
    """The namespace `name`; 403 naming `path` when it does not exist (never 404 elsewhere)."""
    if name == caller.name:
        return caller
    owner = await namespaces.get_by_name(session, name)
    if owner is None:
        raise NotAuthorized(messages.not_authorized(path))
    return owner


async def list_actions(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        namespace = namespace_of(request, caller)
        require_own(namespace, caller, namespace)
        p = page(request, "actions")
        if p.count:
            return JSONResponse({"actions": await actions.count_actions(session, caller)})
        found = await actions.list_actions(session, caller, p.skip, p.limit)
    return JSONResponse([action_summary(a) for a in found])


async def _package_listing(request: Request, caller: Namespace, session: AsyncSession) -> Response:
    namespace = namespace_of(request, caller)
    package = str(request.path_params["name"]).rstrip("/")
    bound = await packages.resolve_binding(session, caller, namespace, package)
    if bound is not None:
        namespace, package = bound[0].name, bound[1]
    owner = await _owner(session, caller, namespace, f"{namespace}/{package}")
    if owner.id != caller.id and not await actions.package_is_public(session, owner, package):
        raise NotAuthorized(messages.not_authorized(f"{namespace}/{package}"))
    p = page(request, "actions")
    found = await actions.list_package_actions(session, owner, package, p.skip, p.limit)
    return JSONResponse([action_summary(a) for a in found])


async def get_action(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        if str(request.path_params["name"]).endswith("/"):
            return await _package_listing(request, caller, session)
        namespace = namespace_of(request, caller)
        name = ActionName.parse(request.path_params["name"])
        target = await resolver.resolve(session, caller, namespace, name)
        with_code = query_bool(request, "code", True)
        found = target.action
        action = await actions.get_action(
            session, target.owner, ActionName(found.package, found.name), with_code=with_code
        )
    return JSONResponse(action_json(action, with_code=with_code))


async def put_action(request: Request) -> Response:
    state = app_state(request)
    async with authenticated(request) as (session, caller):
        namespace = namespace_of(request, caller)
        name = ActionName.parse(request.path_params["name"])
        require_own(namespace, caller, f"{namespace}/{name}")
        overwrite = query_bool(request, "overwrite", False)
        body = await json_body(request, state.settings.limits.request_body_max_bytes)
        spec, deleted = action_put(body)
        ctx = state.write_context
        try:
            await actions.get_action(session, caller, name, with_code=False)
            exists = True
        except NotFound:
            exists = False
        if exists and not overwrite:
            raise Conflict(messages.RESOURCE_EXISTS)
        if exists:
            action = await actions.update_action(
                session, caller, name, spec, ctx, delete_annotations=deleted
            )
        else:
            action = await actions.create_action(
                session, caller, name, spec, ctx, create_package=False
            )
    return JSONResponse(action_json(action))


async def delete_action(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        namespace = namespace_of(request, caller)
        name = ActionName.parse(request.path_params["name"])
        require_own(namespace, caller, f"{namespace}/{name}")
        try:
            action = await actions.delete_action(session, caller, name)
        except NotFound:
            raise NotFound(messages.ENTITY_NOT_FOUND) from None
    return JSONResponse(action_json(action))


def _wait_ms(request: Request, default: int) -> int:
    raw = request.query_params.get("timeout")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= default:
        raise InvalidInput(f"Timeout must be number of milliseconds up to {default}.")
    return value


async def invoke_action(request: Request) -> Response:
    state = app_state(request)
    limits = state.settings.limits
    entry = state.require_entry()
    caller, _ = await cached_caller(request, entry)
    namespace = namespace_of(request, caller)
    name = ActionName.parse(request.path_params["name"])
    params = await json_body(request, limits.payload_max_bytes)  # 413 before the lookup
    blocking = query_bool(request, "blocking", False)
    result_only = query_bool(request, "result", False)
    wait_ms = _wait_ms(request, limits.blocking_wait_ms)

    async def resolve(fresh: bool) -> Resolved:
        caller, known = await cached_caller(request, entry, fresh=fresh)
        target, revision = await entry.target(caller, namespace, name, fresh=fresh)
        return Resolved(caller, target, min(known, revision))

    call = Call(params, blocking, wait_ms, request_id(request))
    outcome = await entry.invoke(resolve, call)
    if isinstance(outcome, Pending):
        headers = {ACTIVATION_HEADER: outcome.activation_id}
        return JSONResponse({"activationId": outcome.activation_id}, 202, headers=headers)
    activation = outcome.activation
    status = {0: 200, 1: 502, 2: 502}.get(activation.status_code, 500)
    result = activation.response["result"]
    body: Any = result if result_only or isinstance(result, list) else activation_json(activation)
    return JSONResponse(body, status, headers={ACTIVATION_HEADER: activation.activation_id})


def _limits_rules(c: Constraints) -> Schema:
    names = ("timeout", "memory", "logs", "concurrency")
    limits = {"type": "object", "properties": {n: c.action_limit(n) for n in names}}
    return put_rules(limits={"anyOf": [{"type": "null"}, limits]})


TAG = "actions"
_LISTED = {**ACTION_NAME, "pattern": f"{ACTION_NAME['pattern']}|^{SEGMENT}/$"}
_RESULT: Schema = {"anyOf": [ref("Activation"), {"type": "object"}, {"type": "array"}]}
_BOOL: Schema = {"type": "boolean"}
INVOKE = (
    Param("blocking", "query", "Wait for the result (default false)", _BOOL),
    Param("result", "query", "Answer only the result (blocking only)", _BOOL),
    Param("timeout", "query", "How long a blocking call waits, in ms", lambda c: c.wait_ms()),
)
ENDPOINTS = (
    Endpoint("GET", PREFIX, list_actions, "List the namespace's actions", TAG,
             response=lambda c: listing("ActionSummary", "actions"),
             params=(NAMESPACE, *PAGING), errors=(400, 401, 403)),
    Endpoint("GET", PREFIX + "/{name:path}", get_action,
             "Get an action; `package/` (with the slash) lists a package's actions", TAG,
             response=lambda c: {"anyOf": [ref("Action"), listing("ActionSummary", "actions")]},
             params=(NAMESPACE, Param("name", "path", "`name`, `package/name` or `package/`",
                                      _LISTED),
                     Param("code", "query", "Include the code (default true)", _BOOL), *PAGING),
             errors=(400, 401, 403, 404)),
    Endpoint("PUT", PREFIX + "/{name:path}", put_action,
             "Create an action (`exec` required), or update it with `overwrite=true`", TAG,
             body_optional=True, request=ActionPut, request_rules=_limits_rules,
             response=ref("Action"),
             params=(NAMESPACE, PACKAGED, OVERWRITE),
             errors=(400, 401, 403, 404, 409, 413, 415)),
    Endpoint("DELETE", PREFIX + "/{name:path}", delete_action, "Delete an action", TAG,
             response=ref("Action"), params=(NAMESPACE, PACKAGED),
             errors=(400, 401, 403, 404)),
    Endpoint("POST", PREFIX + "/{name:path}", invoke_action,
             "Invoke an action with the body's parameters", TAG,
             body_optional=True, request={"type": "object"}, response=_RESULT,
             params=(NAMESPACE, PACKAGED, *INVOKE),
             replies=(Reply(202, "Accepted, or not finished in time", ref("ActivationId")),
                      Reply(502, "An application or developer error", _RESULT),
                      Reply(500, "A whisk internal error of the activation", _RESULT)),
             errors=(400, 401, 403, 404, 413, 415, 429, 503)),
)  # fmt: skip
TABLE = table(ENDPOINTS)
