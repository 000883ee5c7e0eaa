"""Resources the app owns for its lifetime, created in `lifespan` and reached via request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request

from controller.db import sealing
from controller.db.engine import changed_cached_tables
from controller.db.sealed import Keyring
from controller.execution.entry import EntryPoint
from controller.runtimes import Manifest
from controller.services.actions import WriteContext
from controller.settings import Settings


@dataclass
class AppState:
    settings: Settings
    manifest: Manifest
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    keyring: Keyring | None = None  # the operator's keys, for sealed columns
    entry: EntryPoint | None = None  # set by the lifespan
    admitted: bool = False  # whether the keyring was checked against the database

    def require_entry(self) -> EntryPoint:
        """Where every invocation goes in."""
        assert self.entry is not None, "the app's lifespan has not started"
        return self.entry

    @property
    def write_context(self) -> WriteContext:
        return WriteContext(
            manifest=self.manifest,
            limits=self.settings.limits,
            blackbox_images=self.settings.blackbox_images,
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error; a commit
        that changed what invocations look up tells every controller's cache."""
        async with self.sessions() as session:
            async with session.begin():
                if not self.admitted and self.keyring is not None:
                    # Once, before anything is read or written (at start, unless the database
                    # was unreachable then).
                    await sealing.admit(session, self.keyring)
                    self.admitted = True
                yield session
            if self.entry is not None and changed_cached_tables(session):
                await self.entry.cache.changed()


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.homerun
    return state
