"""Async engine construction for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session

from controller.db.sealed import Keyring, bind_keyring

# What the database being down, restarting or overloaded raises (not a bug: try later).
# asyncpg's refused connection comes through as the builtin ConnectionRefusedError.
UNREACHABLE: tuple[type[Exception], ...] = (
    OperationalError, InterfaceError, PoolTimeout, ConnectionError,
)  # fmt: skip

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def async_url(url: str) -> str:
    """Give a database URL its async driver: `postgresql://` -> `postgresql+asyncpg://`."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"'{url}' is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ValueError(f"unsupported database '{backend}': use sqlite or postgresql")
    return parsed.set(drivername=_ASYNC_DRIVERS[backend]).render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def dialect_insert(session: AsyncSession) -> Any:
    """The `insert` of the session's database, which has `on_conflict_do_*` (SQLite's and
    PostgreSQL's take the same arguments)."""
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def create_engine(url: str, keyring: Keyring | None = None) -> AsyncEngine:
    """Create the async engine; for SQLite, create the file's directory and set pragmas.
    Without `keyring`, the engine can neither read nor write a sealed column."""
    full = async_url(url)
    parsed = make_url(full)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(full)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(full, pool_pre_ping=True, pool_size=10, max_overflow=20)
    bind_keyring(engine, keyring)
    return engine


# The tables whose rows invocations look up, and controllers cache (controller.execution.cache).
CACHED_TABLES = frozenset({"namespaces", "packages", "actions", "operator_tokens", "api_keys"})
_CHANGED = "homerun.cached_tables_changed"


class TrackedSession(Session):
    """A session that notes whether it wrote to a cached table (rows through the unit of work,
    or bulk UPDATE and DELETE statements)."""


@event.listens_for(TrackedSession, "before_flush")
def _note_flush(session: Session, _context: Any, _instances: Any) -> None:
    for row in (*session.new, *session.dirty, *session.deleted):
        if getattr(row, "__tablename__", None) in CACHED_TABLES:
            session.info[_CHANGED] = True
            return


@event.listens_for(TrackedSession, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    if state.is_update or state.is_delete or state.is_insert:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in CACHED_TABLES:
            state.session.info[_CHANGED] = True


def changed_cached_tables(session: AsyncSession) -> bool:
    """Whether the session's transaction wrote to a table that controllers cache."""
    return bool(session.sync_session.info.get(_CHANGED))


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=TrackedSession)
