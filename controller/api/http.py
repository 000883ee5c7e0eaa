"""Request plumbing shared by every surface: request ids, bounded JSON bodies, query params."""

from __future__ import annotations

import re
import secrets
import string
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller import messages
from controller.errors import InvalidInput, TooLarge, UnsupportedMediaType
from invoker import wirejson

M = TypeVar("M", bound=BaseModel)

_ID_ALPHABET = string.ascii_letters + string.digits
_VALID_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def new_request_id() -> str:
    """32 letters and digits, as OpenWhisk's transaction ids."""
    raw = secrets.token_bytes(32)
    return "".join(_ID_ALPHABET[byte % len(_ID_ALPHABET)] for byte in raw)


class RequestIdMiddleware:
    """Gives every request an id (the caller's `X-Request-ID` when usable) and echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), ""
        )
        if _VALID_INCOMING_ID.match(incoming) and not incoming.startswith("sid_"):
            rid = incoming
        else:
            rid = new_request_id()
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing (413) as soon as it exceeds `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidInput("Content-Length is not a number") from None
        if size > limit:
            raise TooLarge(messages.request_too_large(size, limit))
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise TooLarge(messages.request_too_large(received, limit))
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int, *, empty: Any = None) -> Any:
    """Parse a JSON body of at most `limit` bytes; an empty body yields `empty`."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request, limit)
    if not body.strip():
        return empty
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType(messages.JSON_CONTENT_TYPE)
    return parse_json(body)


def parse_json(body: bytes) -> Any:
    """A request body's JSON, refused (400) unless it is valid, has no NaN or Infinity, and
    fits what the messages to the invokers carry (`invoker.wirejson`)."""
    try:
        return wirejson.loads(body, parse_constant=_reject_constant)
    except ValueError as exc:
        raise InvalidInput(messages.malformed(str(exc))) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the field: `limits.memory: ...`."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {message}" if loc else message)
    return "; ".join(lines)


def parse_model(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from None


def query_int(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"The query parameter '{name}' must be an integer: '{raw}'") from None
    if not low <= value <= high:
        raise InvalidInput(f"The query parameter '{name}' must lie within {low} and {high}")
    return value


def json_response(content: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status)


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def query_bool(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise InvalidInput(f"The query parameter '{name}' must be true or false: '{raw}'")
