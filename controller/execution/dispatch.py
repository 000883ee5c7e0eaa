"""Choosing an invoker and enqueuing an invocation; making action code available to it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from controller.errors import HomerunError
from controller.execution.throttle import Throttled, concurrency_message, rate_message
from invoker.protocol import FIELD, Invocation, InvokerInfo, Keys, live_invokers

CODE_TTL_S = 7 * 24 * 3600
_KNOWN_CODE_S = 30.0  # bounds how long code lost with a Redis restart stays missing
_INVOKERS_CACHE_S = 1.0


class NoInvokers(HomerunError):
    """No invoker is alive to take the invocation (503)."""


class Stale(HomerunError):
    """The invocation was resolved from cached entities that changed since (never shown: it
    is resolved afresh and accepted again)."""

    def __init__(self, revision: int) -> None:
        super().__init__(f"the entities changed (revision {revision})")
        self.revision = revision


class CodeMissing(HomerunError):
    """The action's code is not in Redis although this controller put it there (Redis
    restarted empty): put it again, and accept again."""

    def __init__(self, digest: str) -> None:
        super().__init__(f"the code of digest {digest} is not in Redis")
        self.digest = digest


@dataclass(frozen=True)
class Admission:
    """What an invocation must pass in the round trip that enqueues it. The defaults check
    nothing: no revision, no rate, no concurrency bound."""

    namespace: str
    revision: int | None = None  # the entity revision it was resolved at
    rate_allowed: int = 0  # invocations per minute of the namespace; 0: not counted
    inflight_allowed: int = 2**31  # concurrent activations of the namespace
    now_ms: int = 0
    inflight_expiry_ms: int = 0  # when its in-flight mark lapses if never released


# KEYS: [1] entity revision, [2] the namespace's minute counter, [3] its in-flight sorted set
#       (member: activation id, score: expiry ms), [4] the action's code, [5..] the
#       candidates' queues, home first.
# ARGV: [1] expected revision ('' not checked), [2] per-minute allowance (0 not counted),
#       [3] now ms, [4] in-flight allowance, [5] activation id, [6] in-flight expiry ms,
#       [7] the invocation, [8] '1' if the code must be there, [9..] each candidate's slots.
# Returns {verdict, detail}: {'stale', current revision}, {'code', ''} (Redis lost it: it
# restarted empty), {'rate', count}, {'concurrency', count} or {'ok', index of the candidate
# that took it (1-based)}. Only an accepted invocation counts against the minute: one refused
# (by either bound) uses none of it.
_ACCEPT = """
if ARGV[1] ~= '' then
  local current = redis.call('GET', KEYS[1]) or '0'
  if current ~= ARGV[1] then return {'stale', current} end
end
if ARGV[8] == '1' and redis.call('EXISTS', KEYS[4]) == 0 then return {'code', ''} end
local counted = tonumber(ARGV[2]) > 0
if counted then
  local count = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
  if count > tonumber(ARGV[2]) then return {'rate', tostring(count)} end
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[3])
local inflight = redis.call('ZCARD', KEYS[3])
if inflight >= tonumber(ARGV[4]) then return {'concurrency', tostring(inflight)} end
if counted and redis.call('INCR', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], 120000) end
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[5])
redis.call('PEXPIRE', KEYS[3], 86400000)
local chosen = 1
for i = 5, #KEYS do
  if redis.call('XLEN', KEYS[i]) < tonumber(ARGV[i + 4]) then
    chosen = i - 4
    break
  end
end
redis.call('XADD', KEYS[chosen + 4], '*', '__FIELD__', ARGV[7])
return {'ok', tostring(chosen)}
""".replace("__FIELD__", FIELD)


class Dispatcher:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._accept = redis.register_script(_ACCEPT)
        self._invokers: list[InvokerInfo] = []
        self._invokers_at = 0.0
        self._known_code: dict[str, float] = {}

    async def invokers(self) -> list[InvokerInfo]:
        now = time.monotonic()
        if now - self._invokers_at > _INVOKERS_CACHE_S or not self._invokers:
            self._invokers = await live_invokers(self.redis, self.keys)
            self._invokers_at = now
        return self._invokers

    async def candidates(self, home_key: str) -> list[InvokerInfo]:
        """The live invokers in the order an action tries them: its home one (a hash of the
        key over the live ones), then the next ones in turn."""
        infos = await self.invokers()
        if not infos:
            raise NoInvokers("No invokers are available to run the action; try again later.")
        home = int.from_bytes(hashlib.sha256(home_key.encode()).digest()[:8], "big") % len(infos)
        return infos[home:] + infos[:home]

    async def enqueue(self, invocation: Invocation, admission: Admission | None = None) -> str:
        """Admit and enqueue the invocation in one round trip; the invoker it went to: the
        first candidate whose queue holds fewer entries than its slots, else the home one
        (work queues there, oldest first). Stale, CodeMissing, Throttled or NoInvokers
        otherwise."""
        infos = await self.candidates(f"{invocation.namespace}/{invocation.action.path}")
        digest = invocation.action.code_digest
        a = admission or Admission(invocation.namespace)
        rate_key = self.keys.throttle(f"invoke:{a.namespace}:{a.now_ms // 60_000}")
        verdict, detail = await self._accept(
            keys=[
                self.keys.entities_revision,
                rate_key,
                self.keys.throttle(f"inflight:{a.namespace}"),
                self.keys.code(digest or ""),
                *(self.keys.queue(info.id) for info in infos),
            ],
            args=[
                "" if a.revision is None else a.revision, a.rate_allowed, a.now_ms,
                a.inflight_allowed, invocation.activation_id, a.inflight_expiry_ms,
                invocation.encode(), "1" if digest else "0", *(info.slots for info in infos),
            ],
        )  # fmt: skip
        verdict, detail = verdict.decode(), detail.decode()
        if verdict == "stale":
            raise Stale(int(detail))
        if verdict == "code":
            assert digest is not None
            self._known_code.pop(digest, None)
            raise CodeMissing(digest)
        if verdict == "rate":
            raise Throttled(rate_message(int(detail), a.rate_allowed))
        if verdict == "concurrency":
            raise Throttled(concurrency_message(int(detail), a.inflight_allowed))
        return infos[int(detail) - 1].id

    async def ensure_code(self, digest: str, load: Callable[[], Awaitable[str | None]]) -> None:
        """Put the code of `digest` in Redis unless it is known to be there."""
        now = time.monotonic()
        if self._known_code.get(digest, 0.0) > now:
            return
        key = self.keys.code(digest)
        if await self.redis.expire(key, CODE_TTL_S):
            self._known_code[digest] = now + _KNOWN_CODE_S
            return
        code = await load()
        if code is None:
            raise HomerunError(f"the code of digest {digest} is missing from the database")
        await self.redis.set(key, code, ex=CODE_TTL_S)
        self._known_code[digest] = now + _KNOWN_CODE_S
