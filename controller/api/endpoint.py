"""An endpoint described once: it becomes a Starlette route and an OpenAPI operation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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

    def route(self) -> Route:
        return Route(self.path, self.handler, methods=[self.method])
