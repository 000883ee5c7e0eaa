"""Operational endpoints: liveness, readiness, the OpenAPI document."""

from __future__ import annotations

import logging

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from controller.api.endpoint import Endpoint
from controller.api.state import app_state

log = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    checks: dict[str, str] = {}
    try:
        async with app_state(request).engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; say which
        log.warning("readiness: database unreachable: %s", exc)
        checks["database"] = f"unreachable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


async def openapi(request: Request) -> Response:
    """The seed API's document."""
    return JSONResponse(request.app.state.openapi)


async def openwhisk_openapi(request: Request) -> Response:
    """The OpenWhisk API's document, where `GET /api/v1` says it is."""
    return JSONResponse(request.app.state.openwhisk_openapi)


ENDPOINTS = (
    Endpoint("GET", "/healthz", healthz, "Liveness: the process is up", "operations",
             authenticated=False),
    Endpoint("GET", "/readyz", readyz, "Readiness: the database is reachable", "operations",
             authenticated=False),
)  # fmt: skip
