"""A namespace's State container: the keys `@adobe/aio-lib-state` (v4 and later) puts, gets,
lists and deletes, with Adobe's limits. Keys are `[a-zA-Z0-9-_.]{1,1024}`; values are at most
1 MiB; each key lives for its TTL (24 h unless given, at most 365 days) and is invisible once
expired, then swept (`sweep`). A container holds at most `max_bytes`, counted as Adobe counts
it: twice the size of its keys plus the size of its values.

Glob patterns (`match`) know one wildcard, `*`. They are matched here, not by the database, so
that they mean the same on SQLite and PostgreSQL (whose LIKE and GLOB differ in case and
escapes)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.clock import now_ms
from controller.db.engine import dialect_insert
from controller.db.models import StateKeyRow
from controller.errors import InvalidInput, NotAuthorized, TooLarge

MAX_KEY_LENGTH = 1024
MAX_VALUE_BYTES = 1024 * 1024
DEFAULT_TTL_S = 24 * 3600
MAX_TTL_S = 365 * 24 * 3600
SCAN_COUNT = 1000  # keys looked at per list call, as Adobe's service does (a page may be short)
MIN_COUNT_HINT, MAX_COUNT_HINT = 100, 1000  # v4's `countHint`

_KEY = re.compile(rf"[a-zA-Z0-9_.-]{{1,{MAX_KEY_LENGTH}}}")
_PATTERN = re.compile(rf"[a-zA-Z0-9_.*-]{{1,{MAX_KEY_LENGTH}}}")


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise InvalidInput(
            f"invalid key: keys are 1 to {MAX_KEY_LENGTH} characters of a-z, A-Z, 0-9, "
            "'-', '_' and '.'"
        )
    return key


def matcher(pattern: str) -> re.Pattern[str]:
    """The keys a glob pattern (`*` = any run of characters) matches."""
    if not _PATTERN.fullmatch(pattern):
        raise InvalidInput(
            f"invalid match pattern: 1 to {MAX_KEY_LENGTH} characters of a-z, A-Z, 0-9, "
            "'-', '_', '.' and '*'"
        )
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def ttl_seconds(raw: str | None) -> int:
    """The `ttl` query parameter: seconds; absent or 0 means the default."""
    if raw is None or raw == "":
        return DEFAULT_TTL_S
    try:
        ttl = int(raw)
    except ValueError:
        raise InvalidInput(f"ttl must be an integer number of seconds, not '{raw}'") from None
    if ttl < 0 or ttl > MAX_TTL_S:
        raise InvalidInput(
            f"ttl must be <= 365 days ({MAX_TTL_S}s). Infinite TTLs (< 0) are not supported."
        )
    return ttl or DEFAULT_TTL_S


@dataclass(frozen=True)
class Entry:
    value: bytes
    expires: int  # epoch ms


@dataclass(frozen=True)
class Stats:
    keys: int
    bytes_keys: int
    bytes_values: int

    @property
    def stored(self) -> int:
        """What counts against the container's limit."""
        return 2 * self.bytes_keys + self.bytes_values


@dataclass(frozen=True)
class Page:
    keys: list[str]
    cursor: int  # where the next call starts; 0 when the scan is complete


def _live(namespace_id: int, now: int) -> ColumnElement[bool]:
    """The namespace's keys that have not expired by `now`."""
    return and_(StateKeyRow.namespace_id == namespace_id, StateKeyRow.expires > now)


async def stats(session: AsyncSession, namespace_id: int) -> Stats:
    row = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(func.length(StateKeyRow.key)), 0),
                func.coalesce(func.sum(func.length(StateKeyRow.value)), 0),
            ).where(_live(namespace_id, now_ms()))
        )
    ).one()
    return Stats(int(row[0]), int(row[1]), int(row[2]))


async def put(
    session: AsyncSession, namespace_id: int, key: str, value: bytes, ttl_s: int, max_bytes: int
) -> int:
    """Create or replace `key`; return when it expires (epoch ms). 413 past the value limit,
    403 when the container would exceed `max_bytes`."""
    check_key(key)
    if len(value) > MAX_VALUE_BYTES:
        raise TooLarge(f"value larger than allowed: {len(value)} > {MAX_VALUE_BYTES} bytes")
    now = now_ms()
    usage = await stats(session, namespace_id)
    replaced = await session.scalar(
        select(func.length(StateKeyRow.value)).where(
            _live(namespace_id, now), StateKeyRow.key == key
        )
    )
    after = usage.stored + len(value) + (2 * len(key) if replaced is None else -int(replaced))
    if after > max_bytes:
        raise NotAuthorized(
            f"the State container is full: storing this key would use {after} of its "
            f"{max_bytes} bytes (twice the keys' size plus the values')"
        )
    expires = now + ttl_s * 1000
    insert = dialect_insert(session)(StateKeyRow).values(
        namespace_id=namespace_id, key=key, value=value, expires=expires
    )
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=[StateKeyRow.namespace_id, StateKeyRow.key],
            set_={"value": insert.excluded.value, "expires": insert.excluded.expires},
        )
    )
    return expires


async def get(session: AsyncSession, namespace_id: int, key: str) -> Entry | None:
    check_key(key)
    row = (
        await session.execute(
            select(StateKeyRow.value, StateKeyRow.expires).where(
                _live(namespace_id, now_ms()), StateKeyRow.key == key
            )
        )
    ).one_or_none()
    return None if row is None else Entry(bytes(row[0]), int(row[1]))


async def remove(session: AsyncSession, namespace_id: int, key: str) -> bool:
    """Delete `key`; whether it existed (unexpired)."""
    check_key(key)
    found = await get(session, namespace_id, key)
    await session.execute(
        delete(StateKeyRow).where(StateKeyRow.namespace_id == namespace_id, StateKeyRow.key == key)
    )
    return found is not None


async def any_key(session: AsyncSession, namespace_id: int) -> bool:
    found = await session.scalar(
        select(StateKeyRow.id).where(_live(namespace_id, now_ms())).limit(1)
    )
    return found is not None


async def scan(
    session: AsyncSession,
    namespace_id: int,
    cursor: int,
    pattern: str | None = None,
    count: int = SCAN_COUNT,
) -> Page:
    """The keys among the next `count` of the container after `cursor` that match `pattern`.
    Keys put or deleted while a scan runs may or may not be seen; the others are seen once."""
    match = matcher(pattern) if pattern is not None else None
    rows = (
        await session.execute(
            select(StateKeyRow.id, StateKeyRow.key)
            .where(_live(namespace_id, now_ms()), StateKeyRow.id > cursor)
            .order_by(StateKeyRow.id)
            .limit(count + 1)
        )
    ).all()
    seen, more = rows[:count], len(rows) > count
    keys = [key for _, key in seen if match is None or match.fullmatch(key)]
    return Page(keys, int(seen[-1][0]) if more else 0)


async def remove_matching(session: AsyncSession, namespace_id: int, pattern: str | None) -> int:
    """Delete every key that matches `pattern` (all of them when None); how many were live."""
    if pattern is None:
        everything = await session.execute(delete(StateKeyRow).where(_live(namespace_id, now_ms())))
        return int(everything.rowcount)  # type: ignore[attr-defined]
    cursor, removed = 0, 0
    while True:
        page = await scan(session, namespace_id, cursor, pattern)
        if page.keys:
            result = await session.execute(
                delete(StateKeyRow).where(
                    _live(namespace_id, now_ms()), StateKeyRow.key.in_(page.keys)
                )
            )
            removed += int(result.rowcount)  # type: ignore[attr-defined]
        if not page.cursor:
            return removed
        cursor = page.cursor


async def sweep(session: AsyncSession, now: int | None = None) -> int:
    """Remove expired keys of every namespace; how many."""
    result = await session.execute(
        delete(StateKeyRow).where(StateKeyRow.expires <= (now_ms() if now is None else now))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
