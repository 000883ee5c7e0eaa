"""The error table (controller/api/errors.py): every domain error gets a status, an unmapped one
a 500 with its own message, and a client that leaves mid-body is no server error."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controller.api.errors import CLIENT_CLOSED_REQUEST, EXCEPTION_HANDLERS, STATUS_OF, status_of
from controller.api.http import RequestIdMiddleware, read_json
from controller.errors import HomerunError, NotFound, TooLarge
from controller.execution.throttle import Throttled


class Unmapped(HomerunError):
    """A domain error that no row of the table names."""


class MissingThing(NotFound):
    """A subclass of a mapped error."""


async def _raise(request: Request) -> Response:
    raise {"unmapped": Unmapped, "subclass": MissingThing}[request.path_params["kind"]]("why")


async def _echo(request: Request) -> Response:
    return JSONResponse(await read_json(request, 1000))


def make_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/raise/{kind}", _raise),
            Route("/echo", _echo, methods=["POST"]),
        ],
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
    )


@pytest.fixture
async def http() -> Any:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.mark.parametrize("cls", list(STATUS_OF))
def test_every_mapped_error_has_its_status(cls: type[HomerunError]) -> None:
    assert status_of(cls("x")) == STATUS_OF[cls]


def test_a_subclass_takes_its_nearest_mapped_base() -> None:
    assert status_of(MissingThing("x")) == 404

    class Bigger(TooLarge):
        pass

    assert status_of(Bigger("x")) == 413
    assert status_of(Throttled("x")) == 429
    assert status_of(Unmapped("x")) is None


async def test_an_unmapped_domain_error_is_a_500_with_its_message_logged_once(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="controller"):
        response = await http.get("/raise/unmapped")
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "why"
    assert body["code"] == response.headers["x-request-id"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "Unmapped" in errors[0].getMessage() and errors[0].exc_info is None


async def test_a_subclass_of_a_mapped_error_answers_its_status(http: httpx.AsyncClient) -> None:
    response = await http.get("/raise/subclass")
    assert (response.status_code, response.json()["error"]) == (404, "why")


async def test_a_client_leaving_while_its_body_is_read_is_no_server_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app()
    incoming = [
        {"type": "http.request", "body": b'{"a":', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/echo", "raw_path": b"/echo", "query_string": b"",
        "root_path": "", "server": ("test", 80), "client": ("127.0.0.1", 1),
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
    }  # fmt: skip
    with caplog.at_level(logging.DEBUG):
        await app(scope, receive, send)
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == CLIENT_CLOSED_REQUEST
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
