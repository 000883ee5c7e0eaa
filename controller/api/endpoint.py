"""An endpoint described once: it becomes a Starlette route and an OpenAPI operation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from controller.api.constraints import Constraints, Schema

Handler = Callable[[Request], Awaitable[Response]]
# A JSON Schema, or how to make one from the configured limits and runtimes.
SchemaSource = Schema | Callable[[Constraints], Schema]
Body = type[BaseModel] | SchemaSource


def _string() -> Schema:
    return {"type": "string"}


@dataclass(frozen=True)
class Param:
    """A path, query or header parameter, for the OpenAPI description. Path parameters are
    always required; a path parameter not declared is any string."""

    name: str
    where: str  # "path", "query" or "header"
    description: str
    schema: SchemaSource = field(default_factory=_string)
    required: bool = False


@dataclass(frozen=True)
class Reply:
    """A response besides the main one and the errors (a 202, a 204, a failed invoke's 502)."""

    status: int
    description: str
    body: Body | None = None
    media_type: str = "application/json"


@dataclass(frozen=True)
class Endpoint:
    """`request` is the body's model or schema; `request_rules`, what the server enforces on
    top of the model (all of both must hold). `response` is the main reply's body; it is a
    list of them when `response_is_list`."""

    method: str
    path: str  # Starlette syntax; `{name:path}` for names that may hold a '/'
    handler: Handler
    summary: str
    tag: str
    request: Body | None = None
    response: Body | None = None
    response_is_list: bool = False
    status: int = 200
    errors: tuple[int, ...] = ()
    params: tuple[Param, ...] = ()
    authenticated: bool = True
    request_rules: SchemaSource | None = None
    replies: tuple[Reply, ...] = ()
    response_media_type: str = "application/json"
    body_optional: bool = False  # an empty body is `{}` (OpenWhisk)

    @property
    def openapi_path(self) -> str:
        return self.path.replace(":path}", "}")


def routes(endpoints: Iterable[Endpoint]) -> list[Route]:
    """One route per path, serving all its methods (so a 405 lists every allowed one)."""
    return grouped_routes(table(endpoints))


def table(endpoints: Iterable[Endpoint]) -> list[tuple[str, str, Handler]]:
    return [(e.method, e.path, e.handler) for e in endpoints]


def grouped_routes(rows: Iterable[tuple[str, str, Handler]]) -> list[Route]:
    """Routes from (method, path, handler) rows, one route per path."""
    by_path: dict[str, dict[str, Handler]] = {}
    for method, path, handler in rows:
        by_path.setdefault(path, {})[method] = handler
    result = []
    for path, handlers in by_path.items():
        if len(handlers) == 1:
            ((method, handler),) = handlers.items()
            result.append(Route(path, handler, methods=[method]))
            continue

        async def dispatch(request: Request, handlers: dict[str, Handler] = handlers) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            return await handlers[method](request)

        result.append(Route(path, dispatch, methods=list(handlers)))
    return result


def resolve(source: SchemaSource, constraints: Constraints) -> Schema:
    return source(constraints) if callable(source) else source


def is_model(body: Any) -> bool:
    return isinstance(body, type) and issubclass(body, BaseModel)
