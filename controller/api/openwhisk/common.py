"""Authentication, namespace resolution and query parameters of the OpenWhisk API."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from controller import messages
from controller.api.http import read_json
from controller.api.state import app_state
from controller.domain import Namespace
from controller.errors import InvalidInput, NotAuthenticated, NotAuthorized
from controller.execution.entry import EntryPoint
from controller.names import MAX_NAME_LENGTH, check_segment, is_valid_name
from controller.services import credentials, namespaces

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


BEARER_PREFIX = "/runtime/api/v1"


async def authenticate(request: Request, session: AsyncSession) -> Namespace:
    """The caller's namespace: the one whose `uuid:key` the request carries (Basic), or, under
    `/runtime/` (`/runtime/api/v1`, log forwarding), the path's namespace when an operator
    token reaches its organization (Bearer; what `aio app deploy` sends through
    AIO_DEPLOY_SERVICE_URL). 401 otherwise."""
    if not request.headers.get("authorization"):
        raise NotAuthenticated(messages.AUTH_REQUIRED)
    if request.url.path.startswith("/runtime/"):
        return await _bearer_caller(request, session)
    return await _basic_caller(request, session)


@asynccontextmanager
async def authenticated(request: Request) -> AsyncIterator[tuple[AsyncSession, Namespace]]:
    """A transaction of the app's database, and the caller it authenticates (401 first)."""
    async with app_state(request).transaction() as session:
        yield session, await authenticate(request, session)


async def cached_caller(
    request: Request, entry: EntryPoint, *, fresh: bool = False
) -> tuple[Namespace, int]:
    """`authenticate` for the invocation path, through the controller's cache, with the
    entity revision it holds at."""
    key = (
        "caller",
        request.url.path.startswith("/runtime/"),
        request.headers.get("authorization", ""),
        str(request.path_params.get("namespace", "_")),
    )
    return await entry.lookup(key, lambda session: authenticate(request, session), fresh=fresh)


async def _basic_caller(request: Request, session: AsyncSession) -> Namespace:
    pair = basic_credentials(request)
    if pair is None:
        raise NotAuthenticated(messages.AUTH_INVALID)
    namespace = await namespaces.authenticate_basic(session, *pair)
    if namespace is None:
        raise NotAuthenticated(messages.AUTH_INVALID)
    return namespace


async def _bearer_caller(request: Request, session: AsyncSession) -> Namespace:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return await _basic_caller(request, session)
    principal = await credentials.principal_of(session, token.strip())
    name = str(request.path_params.get("namespace", "_"))
    if name == "_":
        raise InvalidInput(messages.EXPLICIT_NAMESPACE)
    namespace = await namespaces.get_by_name(session, name)
    if namespace is None or not principal.reaches(namespace):
        raise NotAuthorized(messages.not_authorized(name))
    return namespace


def namespace_of(request: Request, caller: Namespace) -> str:
    """The `{namespace}` path segment, `_` meaning the caller's own (400 when invalid)."""
    name = str(request.path_params["namespace"])
    if name == "_":
        return caller.name
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"Namespace longer than allowed: {len(name)} > {MAX_NAME_LENGTH}.")
    if not is_valid_name(name):
        raise InvalidInput(messages.ILLEGAL_NAMESPACE)
    return name


def require_own(namespace: str, caller: Namespace, path: str) -> None:
    """403 unless `namespace` is the caller's own (other namespaces are reached only through
    public packages, which the routes that allow it check themselves)."""
    if namespace != caller.name:
        raise NotAuthorized(messages.not_authorized(path))


def own_entity_name(request: Request, caller: Namespace) -> str:
    """The `{name}` of a trigger or rule of the caller's own namespace (these are never in
    packages, so a name with '/' is invalid)."""
    namespace = namespace_of(request, caller)
    name = str(request.path_params["name"])
    require_own(namespace, caller, f"{namespace}/{name}")
    return check_segment(name)


def query_bool(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise InvalidInput(
        f"The query parameter '{name}' was malformed:\n'{raw}' is not a valid Boolean value"
    )


INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class Page:
    skip: int
    limit: int
    count: bool


def _malformed_query(name: str, detail: str) -> InvalidInput:
    return InvalidInput(f"The query parameter '{name}' was malformed:\n{detail}")


def page(request: Request, collection: str) -> Page:
    """`skip`, `limit` (0 = the maximum) and `count`, with OpenWhisk's messages."""
    limits = app_state(request).settings.limits
    values = {"skip": 0, "limit": limits.list_default}
    for name in values:
        raw = request.query_params.get(name)
        if raw is None:
            continue
        try:
            value = int(raw)
            if value > INT_MAX:  # OpenWhisk reads these as 32-bit integers
                raise ValueError(raw)
        except ValueError:
            raise _malformed_query(
                name, f"The value '{raw}' is not an integer for {collection}."
            ) from None
        if value < 0:
            raise _malformed_query(
                name, f"The value '{raw}' is not greater than or equal to 0 for {collection}."
            )
        if name == "limit" and value > limits.list_max:
            raise _malformed_query(
                name, f"The value '{raw}' is not in the range of 0 to {limits.list_max} for "
                f"{collection}.",
            )  # fmt: skip
        values[name] = value
    limit = values["limit"] or limits.list_max
    return Page(values["skip"], limit, query_bool(request, "count", False))


async def json_body(request: Request, limit: int) -> dict[str, Any]:
    """A JSON object body (an empty body is `{}`)."""
    body = await read_json(request, limit, empty={})
    if not isinstance(body, dict):
        raise InvalidInput(messages.malformed("the body must be a JSON object"))
    return body
