"""`/api/v1/web/{namespace}/{package|default}/{action}[.ext][/rest]`: web actions, invoked
without credentials as their owner, answering with whatever HTTP the result describes
(shared/spec/openwhisk.md §8). The rules live in `webcodec`; this module does the I/O."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from controller import messages
from controller.api.endpoint import Endpoint, Param, Reply, table
from controller.api.errors import error_response, homerun_error, request_id
from controller.api.http import read_body
from controller.api.openwhisk.actions import ACTIVATION_HEADER
from controller.api.openwhisk.common import basic_credentials
from controller.api.openwhisk.webcodec import (
    WebAnnotations,
    WebRequest,
    WebResponse,
    WebTarget,
    action_arguments,
    cors_headers,
    parse_target,
    response_value,
    transcode,
)
from controller.api.state import AppState, app_state
from controller.domain import Namespace
from controller.errors import HomerunError, NotAuthenticated, NotAuthorized, NotFound
from controller.execution.entry import Call, Resolved
from controller.execution.service import Pending
from controller.names import ActionName
from controller.services import namespaces, resolver
from controller.services.resolver import Target

PATH = "/api/v1/web/{namespace}/{package}/{action_and_rest:path}"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class WebAction:
    """A web action found from its URL, with what running it needs. The URL's namespace is
    the caller: the activation runs and is billed as it."""

    caller: Namespace
    target: Target
    annotations: WebAnnotations


async def find_web_action(session: AsyncSession, target: WebTarget) -> WebAction:
    """The exported action the URL names, as its namespace may invoke it (directly or through
    one of its bindings); anything else is NotFound, so that nothing about other actions
    leaks."""
    owner = await namespaces.get_by_name(session, target.namespace)
    if owner is None:
        raise NotFound(messages.ENTITY_NOT_FOUND)
    name = ActionName(target.package, target.name)
    try:
        found = await resolver.resolve(session, owner, owner.name, name)
    except (NotFound, NotAuthorized):
        raise NotFound(messages.ENTITY_NOT_FOUND) from None
    annotations = WebAnnotations.of(found.action.annotations)
    if not annotations.exported:
        raise NotFound(messages.ENTITY_NOT_FOUND)
    return WebAction(owner, found, annotations)


async def _web_user(request: Request, session: AsyncSession) -> str | None:
    """The namespace whose valid Basic credentials the request carries; invalid ones are
    as good as none."""
    credentials = basic_credentials(request)
    if credentials is None:
        return None
    caller = await namespaces.authenticate_basic(session, *credentials)
    return None if caller is None else caller.name


def _web_request(request: Request, target: WebTarget, body: bytes) -> WebRequest:
    return WebRequest(
        method=request.method,
        headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw),
        path=target.path,
        query=request.url.query,
        body=body,
    )


def _render(web: WebResponse) -> Response:
    response = Response(web.body, web.status)
    if web.content_type is not None:
        response.headers["content-type"] = web.content_type
    for name, value in web.headers:
        response.headers.append(name, value)
    return response


async def _invoke(
    request: Request,
    state: AppState,
    find: Callable[[bool], Awaitable[tuple[WebAction, int]]],
    target: WebTarget,
    body: bytes,
) -> Response:
    entry = state.require_entry()
    credentials = ("web-user", request.headers.get("authorization", ""))

    async def resolve(fresh: bool) -> Resolved:
        """The action, who calls it and with what, all checked at one revision."""
        found, revision = await find(fresh)
        load = functools.partial(_web_user, request)
        user, known = await entry.lookup(credentials, load, fresh=fresh)
        if request.method != "OPTIONS" and not found.annotations.allows(
            authenticated=user is not None, secret=request.headers.get("x-require-whisk-auth")
        ):
            raise NotAuthenticated(messages.WEB_AUTH_FAILED)
        args = action_arguments(
            _web_request(request, target, body), raw=found.annotations.raw, user=user
        )
        return Resolved(found.caller, found.target, min(revision, known), params=args)

    call = Call({}, True, state.settings.limits.blocking_wait_ms, request_id(request))
    outcome = await entry.invoke(resolve, call)
    response: Response
    if isinstance(outcome, Pending):
        response = error_response(request, 202, messages.WEB_RESPONSE_NOT_READY)
        response.headers[ACTIVATION_HEADER] = outcome.activation_id
        return response
    activation = outcome.activation
    try:
        value = response_value(activation.outcome, activation.response["result"])
        response = _render(transcode(target.extension, value))
    except HomerunError as exc:
        response = await homerun_error(request, exc)
    response.headers[ACTIVATION_HEADER] = activation.activation_id
    return response


async def web_action(request: Request) -> Response:
    state = app_state(request)
    params = request.path_params
    target = parse_target(params["namespace"], params["package"], params["action_and_rest"])
    body = await read_body(request, state.settings.limits.payload_max_bytes)
    entry = state.require_entry()
    address = ("web", target.namespace, target.package, target.name)

    async def find(fresh: bool) -> tuple[WebAction, int]:
        load = functools.partial(find_web_action, target=target)
        return await entry.lookup(address, load, fresh=fresh)

    found, _ = await find(False)
    custom_options = found.annotations.custom_options
    response: Response
    try:
        if request.method == "OPTIONS" and not custom_options:
            response = Response(status_code=200)
        else:
            response = await _invoke(request, state, find, target, body)
    except HomerunError as exc:
        response = await homerun_error(request, exc)
    if response.status_code == 401:
        del response.headers["www-authenticate"]  # no browser login prompt for a web page
    if not custom_options:
        for name, value in cors_headers(request.headers.get("access-control-request-headers")):
            if name not in response.headers:
                response.headers.append(name, value)
    return response


PARAMS = (
    Param("namespace", "path", "The action's namespace (never `_`)"),
    Param("package", "path", "Its package, or `default`"),
    Param(
        "action_and_rest",
        "path",
        "The action's name, an extension (.http .json .html .svg .text), and any path",
    ),
)
ENDPOINTS = tuple(
    Endpoint(method, PATH, web_action, "Run a web action; it answers what its result says",
             "web", response={}, response_media_type="*/*", params=PARAMS,
             authenticated=False, errors=(400, 401, 404, 413, 503),
             replies=(Reply(202, "Not finished in time: `{error, code}` and the activation id "
                                 "in x-openwhisk-activation-id"),))
    for method in METHODS
)  # fmt: skip
TABLE = table(ENDPOINTS)
