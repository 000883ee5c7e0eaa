"""Database preparation shared by `homerun db upgrade` and `homerun standalone`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from controller.db import migrate
from controller.db.engine import create_engine, session_factory
from controller.runtimes import load_manifest
from controller.services import catalog
from controller.services.actions import WriteContext
from controller.settings import Settings

T = TypeVar("T")


async def in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one committed transaction on a short-lived engine."""
    engine = create_engine(settings.effective_database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            return await work(session)
    finally:
        await engine.dispose()


def run_in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    return asyncio.run(in_transaction(settings, work))


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    """Apply migrations, then bring the system catalog up to date."""
    migrate.upgrade(settings.effective_database_url, revision)
    if revision == "head":
        ctx = WriteContext(load_manifest(settings.runtimes_manifest), settings.limits)
        run_in_transaction(settings, lambda session: catalog.sync(session, ctx))
