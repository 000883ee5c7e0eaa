"""The app factory: `create_app(settings)` wires route tables, middleware and resources."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

import homerun
from controller.api import openapi, ops, statestore
from controller.api.constraints import Constraints
from controller.api.endpoint import Endpoint, grouped_routes
from controller.api.endpoint import routes as endpoint_routes
from controller.api.errors import EXCEPTION_HANDLERS
from controller.api.http import RequestIdMiddleware
from controller.api.openwhisk import actions as ow_actions
from controller.api.openwhisk import activations as ow_activations
from controller.api.openwhisk import adobeauth as ow_adobeauth
from controller.api.openwhisk import info as ow_info
from controller.api.openwhisk import logforwarding as ow_logforwarding
from controller.api.openwhisk import packages as ow_packages
from controller.api.openwhisk import rules as ow_rules
from controller.api.openwhisk import schemas as ow_schemas
from controller.api.openwhisk import triggers as ow_triggers
from controller.api.openwhisk import web as ow_web
from controller.api.openwhisk.common import BEARER_PREFIX
from controller.api.openwhisk.cors import CorsMiddleware
from controller.api.seed import actions, events, namespaces, system
from controller.api.state import AppState
from controller.db.engine import UNREACHABLE as DATABASE_UNREACHABLE
from controller.db.engine import create_engine, session_factory
from controller.execution.cache import EntityCache
from controller.execution.entry import EntryPoint
from controller.execution.service import Executor
from controller.execution.tasks import cancel_all
from controller.maintenance import purge_forever
from controller.runtimes import load_manifest
from controller.services import codestore
from controller.settings import Settings
from homerun import redisclient
from invoker.protocol import Keys

log = logging.getLogger(__name__)

SEED_ENDPOINTS: tuple[Endpoint, ...] = (
    *namespaces.ENDPOINTS,
    *actions.ENDPOINTS,
    *system.ENDPOINTS,
    *events.ENDPOINTS,
)
ENDPOINTS: tuple[Endpoint, ...] = (*SEED_ENDPOINTS, *ops.ENDPOINTS)
OPENWHISK_ENDPOINTS: tuple[Endpoint, ...] = (
    *ow_info.ENDPOINTS,
    *ow_actions.ENDPOINTS,
    *ow_activations.ENDPOINTS,
    *ow_packages.ENDPOINTS,
    *ow_triggers.ENDPOINTS,
    *ow_rules.ENDPOINTS,
    *ow_logforwarding.ENDPOINTS,
    *ow_web.ENDPOINTS,
    *ow_adobeauth.ENDPOINTS,
)


async def _load_code(state: AppState, digest: str) -> str | None:
    async with state.transaction() as session:
        return await codestore.get(session, digest)


async def _admit(state: AppState) -> None:
    """Refuse to start with keys that do not open the database's secrets; if the database
    does not answer yet, its first transaction checks them."""
    try:
        async with state.transaction():
            pass
    except DATABASE_UNREACHABLE as exc:
        log.warning("the database is unreachable (%s): its keys are checked when it answers", exc)


def create_app(settings: Settings) -> Starlette:
    manifest = load_manifest(settings.runtimes_manifest)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        keyring = settings.keyring()
        engine = create_engine(settings.effective_database_url, keyring)
        state = AppState(
            settings=settings,
            manifest=manifest,
            engine=engine,
            sessions=session_factory(engine),
            keyring=keyring,
        )
        app.state.homerun = state
        try:
            await _admit(state)
        except BaseException:
            await engine.dispose()
            raise
        redis = redisclient.connect(settings.redis_url) if settings.redis_url else None
        retention = asyncio.create_task(
            purge_forever(state.transaction, settings.limits.activation_retention_days)
        )
        executor = None
        try:
            if redis is not None:
                keys = Keys(settings.key_prefix)
                executor = Executor(
                    redis,
                    keys,
                    manifest,
                    state.transaction,
                    lambda digest: _load_code(state, digest),
                    api_host=settings.public_api_host,
                    limits=settings.limits,
                )
                await executor.start()
            cache = EntityCache(redis, Keys(settings.key_prefix), state.transaction)
            state.entry = EntryPoint(executor, cache)
            yield
        finally:
            await cancel_all([retention])
            if executor is not None:
                await executor.stop()
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    routes = endpoint_routes(ENDPOINTS)
    openwhisk = [
        *ow_info.TABLE,
        *ow_actions.TABLE,
        *ow_activations.TABLE,
        *ow_packages.TABLE,
        *ow_triggers.TABLE,
        *ow_rules.TABLE,
    ]
    routes += grouped_routes(openwhisk)
    routes += grouped_routes(ow_logforwarding.TABLE)
    # The same API under /runtime/api/v1, with operator bearer tokens (`aio app deploy`).
    routes += grouped_routes(
        (method, BEARER_PREFIX + path[len("/api/v1") :], handler)
        for method, path, handler in openwhisk
        if path.startswith("/api/v1/")
    )
    routes += grouped_routes(ow_web.TABLE)  # anonymous: not under /runtime/api/v1
    routes += grouped_routes(ow_adobeauth.TABLE)  # Basic only: what the validators send
    routes += grouped_routes(statestore.TABLE)  # Basic only: what `@adobe/aio-lib-state` sends
    routes.append(Route("/openapi.json", ops.openapi, methods=["GET"]))
    routes.append(Route("/api/v1/api-docs", ops.openwhisk_openapi, methods=["GET"]))
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestIdMiddleware), Middleware(CorsMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    constraints = Constraints(settings.limits, manifest)
    version = homerun.__version__
    app.state.openapi = openapi.build(openapi.SEED, ENDPOINTS, version, constraints)
    app.state.openwhisk_openapi = openapi.build(
        ow_schemas.SURFACE, OPENWHISK_ENDPOINTS, version, constraints
    )
    return app
