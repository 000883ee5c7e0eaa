"""Resources the app owns for its lifetime, created in `lifespan` and reached via request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request

from controller.errors import HomerunError
from controller.execution.service import Executor
from controller.runtimes import Manifest
from controller.services.actions import WriteContext
from controller.settings import Settings


class EngineUnavailable(HomerunError):
    """Invocations cannot be accepted right now (503)."""


@dataclass
class AppState:
    settings: Settings
    manifest: Manifest
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    executor: Executor | None = None

    def require_executor(self) -> Executor:
        if self.executor is None:
            raise EngineUnavailable(
                "The execution engine is not configured: set HOMERUN_REDIS_URL and run invokers."
            )
        return self.executor

    @property
    def write_context(self) -> WriteContext:
        return WriteContext(manifest=self.manifest, limits=self.settings.limits)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error."""
        async with self.sessions() as session, session.begin():
            yield session


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.homerun
    return state
