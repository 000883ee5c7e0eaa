"""Domain errors to HTTP, in one table; every error body is `{"error", "code"}`."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from controller import messages
from controller.api.state import EngineUnavailable
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

_HTTP_MESSAGES = {404: messages.RESOURCE_NOT_FOUND, 405: messages.METHOD_NOT_ALLOWED}


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def error_response(request: Request, status: int, message: str) -> JSONResponse:
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="OpenWhisk secure realm"'
        if request.url.path.startswith("/runtime/"):
            headers["WWW-Authenticate"] = 'Bearer realm="Homerun"'
    return JSONResponse(
        {"error": message, "code": request_id(request)}, status_code=status, headers=headers
    )


async def homerun_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HomerunError)
    status = next(code for cls, code in STATUS_OF.items() if isinstance(exc, cls))
    return error_response(request, status, exc.message)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = _HTTP_MESSAGES.get(exc.status_code, str(exc.detail))
    response = error_response(request, exc.status_code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, 500, messages.INTERNAL_ERROR)


EXCEPTION_HANDLERS = {
    HomerunError: homerun_error,
    HTTPException: http_error,
    Exception: internal_error,
}
