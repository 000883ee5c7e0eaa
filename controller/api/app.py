"""The app factory: `create_app(settings)` wires route tables, middleware and resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

import homerun
from controller.api import openapi, ops
from controller.api.endpoint import Endpoint
from controller.api.errors import EXCEPTION_HANDLERS
from controller.api.http import RequestIdMiddleware
from controller.api.seed import actions, events, namespaces, system
from controller.api.state import AppState
from controller.db.engine import create_engine, session_factory
from controller.runtimes import load_manifest
from controller.settings import Settings

SEED_ENDPOINTS: tuple[Endpoint, ...] = (
    *namespaces.ENDPOINTS,
    *actions.ENDPOINTS,
    *system.ENDPOINTS,
    *events.ENDPOINTS,
)
ENDPOINTS: tuple[Endpoint, ...] = (*SEED_ENDPOINTS, *ops.ENDPOINTS)


def create_app(settings: Settings) -> Starlette:
    manifest = load_manifest(settings.runtimes_manifest)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(settings.effective_database_url)
        app.state.homerun = AppState(
            settings=settings, manifest=manifest, engine=engine, sessions=session_factory(engine)
        )
        try:
            yield
        finally:
            await engine.dispose()

    routes = [e.route() for e in ENDPOINTS]
    routes.append(Route("/openapi.json", ops.openapi, methods=["GET"]))
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.openapi = openapi.build(ENDPOINTS, homerun.__version__)
    return app
