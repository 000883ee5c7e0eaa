"""Blocking callers waiting for their activation, woken locally or through pub/sub."""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis

from controller.execution.tasks import check_cancelled
from invoker.protocol import Keys, Reply, Result

log = logging.getLogger(__name__)


class Waiters:
    def __init__(self) -> None:
        self._futures: dict[str, asyncio.Future[Result | None]] = {}

    def register(self, activation_id: str) -> asyncio.Future[Result | None]:
        future: asyncio.Future[Result | None] = asyncio.get_running_loop().create_future()
        self._futures[activation_id] = future
        return future

    def resolve(self, activation_id: str, result: Result | None) -> bool:
        """Wake the caller of `activation_id` (with the result, or None: read the record)."""
        future = self._futures.pop(activation_id, None)
        if future is None or future.done():
            return False
        future.set_result(result)
        return True

    def discard(self, activation_id: str) -> None:
        self._futures.pop(activation_id, None)

    def __len__(self) -> int:
        return len(self._futures)

    async def listen(self, redis: Redis, keys: Keys, controller_id: str) -> None:
        """Resolve waiters from `Reply` messages that other controllers publish for us."""
        while True:
            check_cancelled()
            pubsub = redis.pubsub()
            try:
                await pubsub.subscribe(keys.replies(controller_id))
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        reply = Reply.model_validate_json(message["data"])
                    except ValueError:
                        continue
                    self.resolve(reply.activation_id, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reply subscription failed, resubscribing: %s", exc)
                await asyncio.sleep(0.5)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
