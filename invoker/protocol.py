"""The controller/invoker contract: message types, their JSON encoding, Redis keys and the
scripts that move an invocation between states. Both sides import this module and nothing
else of each other. It depends on the standard library and pydantic only.

Life of an invocation in Redis
------------------------------
1. The controller stores the action's code under `code(digest)` (if absent) and appends an
   `Invocation` to its chosen invoker's queue stream `queue(invoker)`.
2. The invoker reads it through the consumer group `INVOKER_GROUP`, then runs `CLAIM_SCRIPT`:
   the entry still being in the stream, it is marked in `running(invoker)` and may start. An
   entry the reaper already moved is skipped.
3. When done, the invoker runs `COMPLETE_SCRIPT`: only if the entry is still in its stream, it is
   deleted and the `Result` is appended to `results` -- atomically, so a result and a
   redelivery can never both happen. (Or if Redis lost the entry after the claim, restarted
   without its data: the `epoch` changed, and the result of what ran is appended.)
4. Controllers read `results` through the consumer group `RECORDERS_GROUP`, write exactly one
   activation record per activation id, acknowledge, and wake the blocking caller (through
   `replies(controller)` when the caller waits in another controller).
5. An invoker whose `alive(invoker)` key expired is dead. A controller takes `reaper_lock` and
   runs `MOVE_SCRIPT` for each entry of the dead queue: not started -> appended to a live
   invoker's queue; started -> an internal-error `Result` appended to `results`.
"""

from __future__ import annotations

import enum
import fnmatch
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

SCHEMA_VERSION = 1

INVOKER_GROUP = "invoker"
RECORDERS_GROUP = "recorders"
# Stream entries carry one field holding the JSON message.
FIELD = "m"


@dataclass(frozen=True)
class Keys:
    """Every Redis key Homerun uses, under one prefix (tests use a private one)."""

    prefix: str = "homerun"

    @property
    def invokers(self) -> str:
        """Hash: invoker id -> `InvokerInfo` JSON (registration; liveness is `alive`)."""
        return f"{self.prefix}:invokers"

    @property
    def results(self) -> str:
        """Stream of `Result` messages, consumed by the controllers' recorders."""
        return f"{self.prefix}:results"

    def queue(self, invoker_id: str) -> str:
        """Stream of `Invocation` messages for one invoker."""
        return f"{self.prefix}:invoker:{invoker_id}:queue"

    def running(self, invoker_id: str) -> str:
        """Hash: activation id -> queue entry id, for invocations that have started."""
        return f"{self.prefix}:invoker:{invoker_id}:running"

    @property
    def epoch(self) -> str:
        """A token set once per life of Redis's data: a new one means Redis lost it."""
        return f"{self.prefix}:epoch"

    def alive(self, invoker_id: str) -> str:
        """Key with a TTL, refreshed by the invoker's heartbeat."""
        return f"{self.prefix}:invoker:{invoker_id}:alive"

    def reaper_lock(self, invoker_id: str) -> str:
        return f"{self.prefix}:invoker:{invoker_id}:reaping"

    def code(self, digest: str) -> str:
        """String: action code by sha256 digest."""
        return f"{self.prefix}:code:{digest}"

    def replies(self, controller_id: str) -> str:
        """Pub/sub channel to the controller a blocking caller waits in: the invoker
        publishes the `Result` as soon as it is known (without logs), and a controller that
        recorded it a `Reply`."""
        return f"{self.prefix}:replies:{controller_id}"

    def controller_alive(self, controller_id: str) -> str:
        """Key with a TTL, refreshed by the controller's heartbeat."""
        return f"{self.prefix}:controller:{controller_id}:alive"

    @property
    def sequences(self) -> str:
        """Sorted set: the activation ids of the sequences running, by start time."""
        return f"{self.prefix}:sequences"

    def sequence(self, activation_id: str) -> str:
        """Hash: a running sequence's journal (controller.execution.journal)."""
        return f"{self.prefix}:sequence:{activation_id}"

    def sequence_lock(self, activation_id: str) -> str:
        return f"{self.prefix}:sequence:{activation_id}:taking-over"

    @property
    def runtimes(self) -> str:
        """String: the runtimes manifest JSON, published by the controllers at start-up."""
        return f"{self.prefix}:runtimes"

    def throttle(self, name: str) -> str:
        return f"{self.prefix}:throttle:{name}"

    @property
    def entities_revision(self) -> str:
        """Integer: bumped after every committed change to what invocations look up
        (namespaces, packages, actions, tokens, API keys); controllers' caches are valid at
        one revision, and the accept script refuses an invocation resolved at another."""
        return f"{self.prefix}:entities:revision"


class Outcome(enum.StrEnum):
    """How an activation ended; the value is OpenWhisk's `response.status`."""

    SUCCESS = "success"
    APPLICATION_ERROR = "application error"
    DEVELOPER_ERROR = "action developer error"
    INTERNAL_ERROR = "whisk internal error"

    @property
    def status_code(self) -> int:
        """OpenWhisk's numeric `statusCode` (0..3)."""
        return list(Outcome).index(self)

    @property
    def keeps_container(self) -> bool:
        """Success and application errors leave the container warm; others destroy it."""
        return self in (Outcome.SUCCESS, Outcome.APPLICATION_ERROR)


class Reason(enum.StrEnum):
    """Why an activation failed, when it did (for annotations, metrics and tests)."""

    TIMEOUT = "timeout"
    OOM = "oom"
    INIT_FAILED = "init_failed"
    CRASHED = "crashed"
    BAD_RESULT = "bad_result"
    RESULT_TOO_LARGE = "result_too_large"
    PROVISION_FAILED = "provision_failed"
    ABANDONED = "abandoned"
    INTERNAL = "internal"


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    def encode(self) -> str:
        return self.model_dump_json()


class ActionLimitsMsg(BaseModel):
    model_config = ConfigDict(frozen=True)
    timeout: int
    memory: int
    logs: int
    concurrency: int = 1


class ActionRef(BaseModel):
    """The action as the invoker needs it. `version` and `code_digest` identify it: two
    versions never share a container."""

    model_config = ConfigDict(frozen=True)
    namespace: str
    package: str = ""
    name: str
    version: str
    kind: str
    image: str
    main: str | None = None
    binary: bool = False
    code_digest: str | None = None
    limits: ActionLimitsMsg

    @property
    def path(self) -> str:
        """`namespace/[package/]name`."""
        middle = f"{self.package}/" if self.package else ""
        return f"{self.namespace}/{middle}{self.name}"

    @property
    def fully_qualified(self) -> str:
        """`/namespace/[package/]name`, as `__OW_ACTION_NAME` spells it."""
        return "/" + self.path


class Invocation(_Message):
    """One accepted invocation, from a controller to an invoker."""

    v: int = SCHEMA_VERSION
    activation_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    transaction_id: str
    namespace: str  # the invoking namespace: records and `__OW_NAMESPACE`
    subject: str
    action: ActionRef
    params: dict[str, Any] | list[Any]
    init_env: dict[str, str] = Field(default_factory=dict)
    api_key: str | None = None
    api_host: str
    cause: str | None = None
    binding: str | None = None  # `namespace/binding` when invoked through a package binding
    reply_to: str | None = None
    accepted_at: int  # epoch ms when the controller accepted it (waitTime starts here)
    result_limit: int = 1024 * 1024  # bytes of JSON result the invoker accepts

    @classmethod
    def decode(cls, raw: str | bytes) -> Invocation:
        return cls.model_validate_json(raw)

    @classmethod
    def salvage(cls, raw: str | bytes) -> Invocation | None:
        """What identifies an entry `decode` refused (all of it but its parameters), to
        record its failure; None if not even that reads."""
        try:
            data = json.loads(raw)
            return cls.model_validate({**data, "params": {}, "init_env": {}})
        except (ValueError, TypeError, RecursionError):
            return None


class Result(_Message):
    """The outcome of one invocation, from an invoker (or the reaper) to the recorders."""

    v: int = SCHEMA_VERSION
    activation_id: str
    namespace: str
    subject: str
    action: ActionRef
    cause: str | None = None
    binding: str | None = None
    reply_to: str | None = None
    outcome: Outcome
    reason: Reason | None = None
    result: dict[str, Any] | list[Any]
    start: int
    end: int
    wait_time: int
    init_time: int | None = None
    logs: list[str] = Field(default_factory=list)
    invoker: str = ""

    @property
    def timed_out(self) -> bool:
        return self.reason is Reason.TIMEOUT

    @classmethod
    def decode(cls, raw: str | bytes) -> Result:
        return cls.model_validate_json(raw)

    @classmethod
    def failure(
        cls,
        invocation: Invocation,
        outcome: Outcome,
        reason: Reason,
        message: str,
        *,
        start: int,
        end: int,
        invoker: str,
        logs: list[str] | None = None,
    ) -> Result:
        """A result that carries only an error message, as `{"error": message}`."""
        return cls(
            activation_id=invocation.activation_id,
            namespace=invocation.namespace,
            subject=invocation.subject,
            action=invocation.action,
            cause=invocation.cause,
            binding=invocation.binding,
            reply_to=invocation.reply_to,
            outcome=outcome,
            reason=reason,
            result={"error": message},
            start=start,
            end=end,
            wait_time=max(0, start - invocation.accepted_at),
            logs=logs or [],
            invoker=invoker,
        )


class InvokerInfo(_Message):
    """An invoker's registration and capacity, refreshed with every heartbeat."""

    v: int = SCHEMA_VERSION
    id: str
    slots: int  # concurrent activations it runs at most
    memory_mb: int  # memory budget for containers
    sandbox: str
    started: int
    heartbeat: int

    @classmethod
    def decode(cls, raw: str | bytes) -> InvokerInfo:
        return cls.model_validate_json(raw)


class StemCell(BaseModel):
    """Prewarmed containers to keep for one kind and memory size."""

    kind: str
    image: str
    memory: int
    count: int


def stem_cells_of(manifest: dict[str, Any]) -> list[StemCell]:
    """The stem cells a runtimes manifest (as published under `Keys.runtimes`) asks for."""
    cells = []
    for runtimes in manifest.get("runtimes", {}).values():
        for rt in runtimes:
            for cell in rt.get("stemCells", []):
                cells.append(
                    StemCell(
                        kind=rt["kind"],
                        image=rt["image"],
                        memory=cell["memory"],
                        count=cell["count"],
                    )
                )
    return cells


# Where the controller serves the State API (`@adobe/aio-lib-state`), under its API host.
STATE_API_PATH = "/state"


def platform_env(api_host: str) -> dict[str, str]:
    """What every action's environment holds of the platform from its start: the API host,
    and the State endpoint, which `@adobe/aio-lib-state` reads when it is loaded."""
    host = api_host.rstrip("/")
    return {"__OW_API_HOST": host, "AIO_STATE_ENDPOINT": host + STATE_API_PATH}


# The images blackbox actions may use: one operator setting that the controller checks when
# an action is written and each invoker checks again before it starts a container.
BLACKBOX_IMAGES_VARIABLE = "HOMERUN_BLACKBOX_IMAGES"


def _split_patterns(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


ImagePatterns = Annotated[tuple[str, ...], BeforeValidator(_split_patterns)]
"""Shell-style patterns (`fnmatch`), comma-separated in the environment; none: no image."""


def image_allowed(image: str, patterns: Iterable[str]) -> bool:
    """Whether a blackbox action may use `image`, as its action names it. A `*` also matches
    `/`: `registry.example/team/*` allows every image under that path, any tag."""
    return any(fnmatch.fnmatchcase(image, pattern) for pattern in patterns)


class Reply(_Message):
    """Published on `replies(controller)` once an activation is recorded."""

    activation_id: str


def decode_json(raw: str | bytes) -> Any:
    return json.loads(raw)


# Scripts. KEYS and ARGV are documented on each; they return 0 when there is nothing to do.

CLAIM_SCRIPT = """
-- KEYS[1] queue stream, KEYS[2] running hash, KEYS[3] epoch; ARGV[1] entry id, ARGV[2]
-- activation id, ARGV[3] a new epoch, should Redis have none. Returns 0 if the entry is gone,
-- else the epoch: it changes only when Redis restarts without its data.
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[3], epoch)
end
return epoch
"""

COMPLETE_SCRIPT = """
-- KEYS[1] queue stream, KEYS[2] running hash, KEYS[3] results stream, KEYS[4] epoch
-- ARGV[1] entry id, ARGV[2] activation id, ARGV[3] result JSON, ARGV[4] group, ARGV[5] field,
-- ARGV[6] the epoch its claim returned ('' if it was not claimed in this life). An entry that
-- is gone was completed already (a retry) or moved by the reaper, unless Redis restarted
-- without its data since the claim (the epoch changed): then it ran here, and its result is
-- recorded all the same.
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then
  if ARGV[6] == '' or redis.call('GET', KEYS[4]) == ARGV[6] then return 0 end
end
redis.call('XACK', KEYS[1], ARGV[4], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('XADD', KEYS[3], '*', ARGV[5], ARGV[3])
return 1
"""

MOVE_SCRIPT = """
-- KEYS[1] dead queue stream, KEYS[2] target stream (a live queue, or results)
-- ARGV[1] entry id, ARGV[2] message JSON, ARGV[3] field
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', ARGV[3], ARGV[2])
return 1
"""


# Operations on the shared state, used by both sides. `redis` is a `redis.asyncio.Redis`
# (typed loosely: this module does not import the client).


def is_nogroup(exc: Exception) -> bool:
    """A stream's consumer group is gone: Redis restarted without its data."""
    return str(exc).startswith("NOGROUP")


async def live_invokers(redis: Any, keys: Keys) -> list[InvokerInfo]:
    """Registered invokers whose heartbeat has not expired, ordered by id."""
    registered = await redis.hgetall(keys.invokers)
    infos = sorted(
        (InvokerInfo.decode(raw) for raw in registered.values()), key=lambda info: info.id
    )
    if not infos:
        return []
    flags = await redis.exists(*[keys.alive(info.id) for info in infos])
    if flags == len(infos):
        return infos
    alive = []
    for info in infos:
        if await redis.exists(keys.alive(info.id)):
            alive.append(info)
    return alive


async def dead_invokers(redis: Any, keys: Keys) -> list[str]:
    registered = await redis.hkeys(keys.invokers)
    dead = []
    for raw in registered:
        invoker_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        if not await redis.exists(keys.alive(invoker_id)):
            dead.append(invoker_id)
    return sorted(dead)


async def reap_queue(
    redis: Any,
    keys: Keys,
    dead_id: str,
    live_ids: list[str],
    now_ms: int,
    message: str = "The action did not produce a valid response and exited unexpectedly.",
) -> tuple[int, int]:
    """Empty the queue of a dead (or departing) invoker: entries that never started go to the
    live invoker with the shortest queue; entries that started become internal-error results.
    Returns (redelivered, failed). Unstarted entries stay put when no live invoker exists;
    undecodable ones are dropped."""
    queue = keys.queue(dead_id)
    running = await redis.hgetall(keys.running(dead_id))
    started = {(v.decode() if isinstance(v, bytes) else str(v)) for v in running.values()}
    move = redis.register_script(MOVE_SCRIPT)
    redelivered = failed = 0
    entries = await redis.xrange(queue, "-", "+")
    for raw_id, fields in entries:
        entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        raw = fields.get(FIELD.encode(), fields.get(FIELD))
        try:
            invocation = Invocation.decode(raw or b"")
        except ValueError:  # undecodable: nothing can run or record it; drop it
            await redis.xdel(queue, entry_id)
            continue
        if entry_id in started:
            result = Result.failure(
                invocation, Outcome.INTERNAL_ERROR, Reason.ABANDONED, message,
                start=now_ms, end=now_ms, invoker=dead_id,
            )  # fmt: skip
            failed += await move(
                keys=[queue, keys.results], args=[entry_id, result.encode(), FIELD]
            )
            continue
        if not live_ids:
            continue
        lengths = [await redis.xlen(keys.queue(i)) for i in live_ids]
        target = live_ids[lengths.index(min(lengths))]
        redelivered += await move(
            keys=[queue, keys.queue(target)], args=[entry_id, invocation.encode(), FIELD]
        )
    return redelivered, failed


async def forget_invoker(redis: Any, keys: Keys, invoker_id: str) -> bool:
    """Remove a dead invoker's registration once its queue is empty."""
    if await redis.xlen(keys.queue(invoker_id)):
        return False
    await redis.delete(keys.queue(invoker_id), keys.running(invoker_id))
    await redis.hdel(keys.invokers, invoker_id)
    return True
