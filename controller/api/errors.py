"""Domain errors to HTTP, in one table; every error body is `{"error", "code"}`."""

from __future__ import annotations

import logging

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from controller import messages
from controller.db.engine import UNREACHABLE as DATABASE_UNREACHABLE
from controller.db.sealed import SealingError
from controller.errors import (
    Conflict,
    HomerunError,
    InvalidInput,
    NotAuthenticated,
    NotAuthorized,
    NotFound,
    TooLarge,
    UnsupportedMediaType,
)
from controller.execution.dispatch import NoInvokers
from controller.execution.entry import EngineUnavailable
from controller.execution.throttle import Throttled

log = logging.getLogger(__name__)

STATUS_OF: dict[type[HomerunError], int] = {
    InvalidInput: 400,
    NotAuthenticated: 401,
    NotAuthorized: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    UnsupportedMediaType: 415,
    Throttled: 429,
    EngineUnavailable: 503,
    NoInvokers: 503,
}

CLIENT_CLOSED_REQUEST = 499
RETRY_AFTER_S = 5  # what a 503 asks callers to wait

_HTTP_MESSAGES = {404: messages.RESOURCE_NOT_FOUND, 405: messages.METHOD_NOT_ALLOWED}


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def error_response(request: Request, status: int, message: str) -> JSONResponse:
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="OpenWhisk secure realm"'
        if request.url.path.startswith("/runtime/"):
            headers["WWW-Authenticate"] = 'Bearer realm="Homerun"'
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    return JSONResponse(
        {"error": message, "code": request_id(request)}, status_code=status, headers=headers
    )


def status_of(exc: HomerunError) -> int | None:
    """The HTTP status of a domain error: its class's, or its nearest mapped base's."""
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return None


async def homerun_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HomerunError)
    status = status_of(exc)
    if status is None:  # a domain error no row maps yet: a server fault, said once
        log.error(
            "%s on %s %s has no HTTP status: %s",
            type(exc).__name__, request.method, request.url.path, exc.message,
        )  # fmt: skip
        status = 500
    return error_response(request, status, exc.message)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client went away while its body was read: nobody is left to answer, and nothing
    went wrong on our side (499, as nginx counts it; never a 500)."""
    log.debug("client left during %s %s", request.method, request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = _HTTP_MESSAGES.get(exc.status_code, str(exc.detail))
    response = error_response(request, exc.status_code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def redis_unreachable(request: Request, exc: Exception) -> Response:
    """Redis is down or restarting: 503, and the caller tries again later. (An invoke whose
    connection broke after its accept script ran has been accepted all the same: it runs and
    is recorded.)"""
    log.warning("Redis unreachable on %s %s: %s", request.method, request.url.path, exc)
    return error_response(request, 503, messages.REDIS_UNREACHABLE)


async def database_unreachable(request: Request, exc: Exception) -> Response:
    """The database is down or restarting: 503, and the caller tries again later. (A blocking
    invoke accepted before it went down is answered from Redis, or with its activation id.)"""
    log.warning("database unreachable on %s %s: %s", request.method, request.url.path, exc)
    return error_response(request, 503, messages.DATABASE_UNREACHABLE)


async def misconfigured(request: Request, exc: Exception) -> Response:
    """This controller's keys do not open the database's secrets: nothing is served until
    its operator sets the right ones."""
    log.error("refused %s %s: %s", request.method, request.url.path, exc)
    return error_response(request, 503, messages.MISCONFIGURED)


async def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, 500, messages.INTERNAL_ERROR)


EXCEPTION_HANDLERS = {
    HomerunError: homerun_error,
    ClientDisconnect: client_gone,
    HTTPException: http_error,
    RedisConnectionError: redis_unreachable,
    RedisTimeoutError: redis_unreachable,
    **dict.fromkeys(DATABASE_UNREACHABLE, database_unreachable),
    SealingError: misconfigured,
    Exception: internal_error,
}
