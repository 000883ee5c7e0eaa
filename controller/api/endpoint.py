"""An endpoint described once: it becomes a Starlette route and an OpenAPI operation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Param:
    """A query or header parameter, for the OpenAPI description."""

    name: str
    where: str  # "query" or "header"
    description: str
    schema_type: str = "string"
    required: bool = False


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # Starlette syntax; `{name:path}` for names that may hold a '/'
    handler: Handler
    summary: str
    tag: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    response_is_list: bool = False
    status: int = 200
    errors: tuple[int, ...] = ()
    params: tuple[Param, ...] = ()
    authenticated: bool = True
    responses: dict[int, str] = field(default_factory=dict)

    @property
    def openapi_path(self) -> str:
        return self.path.replace(":path}", "}")


def routes(endpoints: Iterable[Endpoint]) -> list[Route]:
    """One route per path, serving all its methods (so a 405 lists every allowed one)."""
    return grouped_routes((e.method, e.path, e.handler) for e in endpoints)


def grouped_routes(table: Iterable[tuple[str, str, Handler]]) -> list[Route]:
    """Routes from (method, path, handler) rows, one route per path."""
    by_path: dict[str, dict[str, Handler]] = {}
    for method, path, handler in table:
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
