"""Action code by content digest: fetched from Redis once, kept in a bounded LRU."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from invoker.protocol import Keys


class CodeMissing(Exception):
    """The code of a digest is not in Redis (expired, or never stored)."""


class CodeCache:
    def __init__(self, redis: Any, keys: Keys, max_bytes: int = 256 << 20) -> None:
        self._redis = redis
        self._keys = keys
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._bytes = 0

    async def get(self, digest: str) -> str:
        code = self._entries.get(digest)
        if code is not None:
            self._entries.move_to_end(digest)
            return code
        raw = await self._redis.get(self._keys.code(digest))
        if raw is None:
            raise CodeMissing(digest)
        code = raw.decode() if isinstance(raw, bytes) else str(raw)
        self._entries[digest] = code
        self._bytes += len(code)
        while self._bytes > self._max_bytes and len(self._entries) > 1:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted)
        return code
