"""Database preparation shared by `homerun db upgrade` and `homerun standalone`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from controller.db import migrate, sealing
from controller.db.engine import changed_cached_tables, create_engine, session_factory
from controller.execution.cache import bump_revision
from controller.runtimes import load_manifest
from controller.services import catalog
from controller.services.actions import WriteContext
from controller.settings import Settings
from homerun import redisclient
from invoker.protocol import Keys

T = TypeVar("T")

log = logging.getLogger(__name__)


async def in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one committed transaction on a short-lived engine. A change to what the
    controllers cache (a revoked token, say) reaches them through Redis, when one runs."""
    engine = create_engine(settings.effective_database_url, settings.keyring())
    try:
        async with session_factory(engine)() as session:
            async with session.begin():
                done = await work(session)
            if changed_cached_tables(session):
                await _tell_controllers(settings)
            return done
    finally:
        await engine.dispose()


async def _tell_controllers(settings: Settings) -> None:
    url = settings.redis_url or settings.running_redis_url()
    if url is None:
        return  # no Redis: no controller is running with a cache
    redis = redisclient.connect(url)
    try:
        await bump_revision(redis, Keys(settings.key_prefix))
    except RedisError as exc:
        log.warning("could not tell the controllers through Redis (%s): %s", url, exc)
    finally:
        await redis.aclose()


def run_in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    return asyncio.run(in_transaction(settings, work))


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    """Apply migrations, then bring the system catalog up to date."""
    migrate.upgrade(settings.effective_database_url, revision)
    if revision == "head":
        ctx = WriteContext(load_manifest(settings.runtimes_manifest), settings.limits)
        run_in_transaction(settings, lambda session: _seal_and_sync(session, settings, ctx))


async def _seal_and_sync(session: AsyncSession, settings: Settings, ctx: WriteContext) -> None:
    keyring = settings.keyring()
    await sealing.admit(session, keyring)
    sealed = await sealing.seal_all(session, keyring)
    if sealed:
        log.info("sealed %d stored secrets with the key of %s", sealed, keyring.source)
    await catalog.sync(session, ctx)
