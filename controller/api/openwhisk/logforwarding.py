"""`/runtime/namespaces/{namespace}/logForwarding[/errors]`, which `aio` calls with the
namespace's Basic credentials (and, through AIO_DEPLOY_SERVICE_URL, under `/runtime/runtime`
with a bearer token)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from controller.api.endpoint import Endpoint, table
from controller.api.http import read_json
from controller.api.openwhisk.common import authenticated, namespace_of, require_own
from controller.api.openwhisk.schemas import NAMESPACE
from controller.api.state import app_state
from controller.services import logforwarding

PATHS = ("/runtime/namespaces/{namespace}/logForwarding",)


async def get_settings(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        require_own(namespace_of(request, caller), caller, caller.name)
        return JSONResponse(await logforwarding.get(session, caller))


async def put_settings(request: Request) -> Response:
    state = app_state(request)
    async with authenticated(request) as (session, caller):
        require_own(namespace_of(request, caller), caller, caller.name)
        body = await read_json(request, state.settings.limits.parameters_max_bytes, empty=None)
        return JSONResponse(await logforwarding.put(session, caller, body))


async def get_errors(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        require_own(namespace_of(request, caller), caller, caller.name)
        return JSONResponse(await logforwarding.errors(session, caller))


TAG = "logForwarding"
_OBJECT = {"type": "object"}
# Exactly one known destination, with its settings.
_SETTINGS = {
    "oneOf": [
        {"type": "object", "required": [name], "maxProperties": 1,
         "properties": {name: {"type": "object", "required": list(fields)}}}
        for name, fields in logforwarding.DESTINATIONS.items()
    ]
}  # fmt: skip
ENDPOINTS = (
    Endpoint("GET", PATHS[0], get_settings, "The namespace's log forwarding settings", TAG,
             response=_OBJECT, params=(NAMESPACE,), errors=(400, 401, 403)),
    Endpoint("PUT", PATHS[0], put_settings, "Set the namespace's log forwarding", TAG,
             request=_SETTINGS, response=_OBJECT, params=(NAMESPACE,),
             errors=(400, 401, 403, 413, 415)),
    Endpoint("GET", PATHS[0] + "/errors", get_errors, "Recent log forwarding errors", TAG,
             response=_OBJECT, params=(NAMESPACE,), errors=(400, 401, 403)),
)  # fmt: skip
TABLE = [
    (method, prefix + path, handler)
    for prefix in ("", "/runtime")
    for method, path, handler in table(ENDPOINTS)
]
