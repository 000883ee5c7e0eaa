"""`/runtime/namespaces/{namespace}/logForwarding[/errors]`, which `aio` calls with the
namespace's Basic credentials (and, through AIO_DEPLOY_SERVICE_URL, under `/runtime/runtime`
with a bearer token)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from controller.api.http import read_json
from controller.api.openwhisk.common import authenticate, namespace_of, require_own
from controller.api.state import app_state
from controller.services import logforwarding

PATHS = ("/runtime/namespaces/{namespace}/logForwarding",)


async def get_settings(request: Request) -> Response:
    async with app_state(request).transaction() as session:
        caller = await authenticate(request, session)
        require_own(namespace_of(request, caller), caller, caller.name)
        return JSONResponse(await logforwarding.get(session, caller))


async def put_settings(request: Request) -> Response:
    state = app_state(request)
    async with state.transaction() as session:
        caller = await authenticate(request, session)
        require_own(namespace_of(request, caller), caller, caller.name)
        body = await read_json(request, state.settings.limits.parameters_max_bytes, empty=None)
        return JSONResponse(await logforwarding.put(session, caller, body))


async def get_errors(request: Request) -> Response:
    async with app_state(request).transaction() as session:
        caller = await authenticate(request, session)
        require_own(namespace_of(request, caller), caller, caller.name)
        return JSONResponse(await logforwarding.errors(session, caller))


TABLE = [
    (method, prefix + path, handler)
    for prefix in ("", "/runtime")
    for method, path, handler in (
        ("GET", PATHS[0], get_settings),
        ("PUT", PATHS[0], put_settings),
        ("GET", PATHS[0] + "/errors", get_errors),
    )
]
