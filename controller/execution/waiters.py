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

    def _dispatch(self, data: bytes) -> None:
        """A `Result` from an invoker (the answer itself), or a `Reply` from a controller
        that recorded the activation (read the record)."""
        try:
            result = Result.decode(data)
        except ValueError:
            try:
                self.resolve(Reply.model_validate_json(data).activation_id, None)
            except ValueError:
                log.warning("dropped an undecodable reply")
            return
        self.resolve(result.activation_id, result)

    async def listen(self, redis: Redis, keys: Keys, controller_id: str) -> None:
        """Resolve waiters from what invokers and other controllers publish for us."""
        while True:
            check_cancelled()
            pubsub = redis.pubsub()
            try:
                await pubsub.subscribe(keys.replies(controller_id))
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reply subscription failed, resubscribing: %s", exc)
                await asyncio.sleep(0.5)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
