"""The State API that `@adobe/aio-lib-state` (v4 and later) and `aio app state` speak, under
`AIO_STATE_ENDPOINT` = `<api host>/state` (invoker.protocol.STATE_API_PATH), which every
action's environment carries:

    PUT    /containers/{ns}/data/{key}?ttl=S   body: the value (any bytes)   200
    GET    /containers/{ns}/data/{key}         200 value, `x-key-expires-ms` | 404
    DELETE /containers/{ns}/data/{key}         200 | 404
    GET    /containers/{ns}/data?match=G&cursor=C   200 {"keys", "cursor"} (0: done) | 404
    GET    /containers/{ns}   (HEAD: any)      200 {"keys", "bytesKeys", "bytesValues"} | 404
    DELETE /containers/{ns}?matchData=G        200 {"keys": deleted} | 404 (all keys without G)

404 means no such key, or no key at all in the container. Callers authenticate with the
namespace's OpenWhisk `uuid:key` (Basic), and reach only their own container (403). Errors
are the controller's `{error, code}`; the library reads their status: 400 bad input, 401, 403
(another namespace, or the container full), 413 a value over 1 MiB, 503 try again.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from controller.api.endpoint import Endpoint, Param, table
from controller.api.errors import error_response
from controller.api.http import read_body
from controller.api.openwhisk.common import authenticated, namespace_of, require_own
from controller.api.state import app_state
from controller.domain import Namespace
from controller.errors import InvalidInput
from controller.services import statestore
from invoker.protocol import STATE_API_PATH

CONTAINER = STATE_API_PATH + "/containers/{namespace}"
DATA = CONTAINER + "/data"
KEY = DATA + "/{key}"
EXPIRES_HEADER = "x-key-expires-ms"
NO_KEYS = "no keys are stored in this container"
NO_SUCH_KEY = "the key does not exist"


def _not_found(request: Request, message: str) -> Response:
    """A 404, which the library reads as 'nothing there'."""
    return error_response(request, 404, message)


def _own(request: Request, caller: Namespace) -> None:
    require_own(namespace_of(request, caller), caller, str(request.path_params["namespace"]))


def _cursor(request: Request) -> int:
    raw = request.query_params.get("cursor") or "0"
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInput(f"cursor must be a cursor this API returned, not '{raw}'")
    return int(raw)


def _count(request: Request) -> int:
    """v4's `countHint` (how many keys a call looks at); later versions send none."""
    raw = request.query_params.get("countHint")
    if raw is None or raw == "":
        return statestore.SCAN_COUNT
    low, high = statestore.MIN_COUNT_HINT, statestore.MAX_COUNT_HINT
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput(f"'countHint' must be in the [{low}, {high}] range")
    return int(raw)


async def put_key(request: Request) -> Response:
    state = app_state(request)
    key = statestore.check_key(str(request.path_params["key"]))
    ttl = statestore.ttl_seconds(request.query_params.get("ttl"))
    value = await read_body(request, statestore.MAX_VALUE_BYTES)
    async with authenticated(request) as (session, caller):
        _own(request, caller)
        expires = await statestore.put(
            session, caller.id, key, value, ttl, state.settings.state.max_bytes
        )
    return Response(status_code=200, headers={EXPIRES_HEADER: str(expires)})


async def get_key(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        _own(request, caller)
        entry = await statestore.get(session, caller.id, str(request.path_params["key"]))
    if entry is None:
        return _not_found(request, NO_SUCH_KEY)
    return Response(
        entry.value,
        media_type="application/octet-stream",
        headers={EXPIRES_HEADER: str(entry.expires)},
    )


async def delete_key(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        _own(request, caller)
        found = await statestore.remove(session, caller.id, str(request.path_params["key"]))
    return Response(status_code=200) if found else _not_found(request, NO_SUCH_KEY)


async def list_keys(request: Request) -> Response:
    pattern = request.query_params.get("match") or None
    cursor, count = _cursor(request), _count(request)
    async with authenticated(request) as (session, caller):
        _own(request, caller)
        if not await statestore.any_key(session, caller.id):
            return _not_found(request, NO_KEYS)
        page = await statestore.scan(session, caller.id, cursor, pattern, count)
    return JSONResponse({"keys": page.keys, "cursor": page.cursor})


async def container_stats(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        _own(request, caller)
        stats = await statestore.stats(session, caller.id)
    if not stats.keys:
        return _not_found(request, NO_KEYS)
    return JSONResponse(
        {"keys": stats.keys, "bytesKeys": stats.bytes_keys, "bytesValues": stats.bytes_values}
    )


async def delete_keys(request: Request) -> Response:
    """`matchData` deletes the keys it matches; without it (v4's `deleteAll()`), every key."""
    pattern = request.query_params.get("matchData")
    if pattern is not None:
        statestore.matcher(pattern)  # 400 before anything is read
    async with authenticated(request) as (session, caller):
        _own(request, caller)
        if not await statestore.any_key(session, caller.id):
            return _not_found(request, NO_KEYS)
        removed = await statestore.remove_matching(session, caller.id, pattern)
    return JSONResponse({"keys": removed})


NAMESPACE = Param("namespace", "path", "The namespace whose container this is")
KEY_PARAM = Param("key", "path", "A key: 1 to 1024 of a-z A-Z 0-9 - _ .")
ERRORS = (400, 401, 403, 503)
ENDPOINTS = (
    Endpoint("PUT", KEY, put_key, "State: store a key's value for its TTL", "state",
             params=(NAMESPACE, KEY_PARAM), errors=(*ERRORS, 413)),
    Endpoint("GET", KEY, get_key, "State: a key's value", "state",
             params=(NAMESPACE, KEY_PARAM), errors=(*ERRORS, 404)),
    Endpoint("DELETE", KEY, delete_key, "State: delete a key", "state",
             params=(NAMESPACE, KEY_PARAM), errors=(*ERRORS, 404)),
    Endpoint("GET", DATA, list_keys, "State: list keys matching a glob, a page at a time",
             "state", params=(NAMESPACE,), errors=(*ERRORS, 404)),
    Endpoint("GET", CONTAINER, container_stats, "State: the container's size (HEAD: any keys?)",
             "state", params=(NAMESPACE,), errors=(*ERRORS, 404)),
    Endpoint("DELETE", CONTAINER, delete_keys, "State: delete the keys matching a glob",
             "state", params=(NAMESPACE,), errors=(*ERRORS, 404)),
)  # fmt: skip
TABLE = table(ENDPOINTS)
