"""Activation logs: line format, sentinel framing, the size limit and its truncation line."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
STREAMS = ("stdout", "stderr")
DEVELOPER_ERROR_LINE = (
    "The action did not initialize or run as expected. Log data might be missing."
)
COLLECTION_FAILED_LINE = "There was an issue while collecting your logs. Data might be missing."


def truncation_line(limit_bytes: int) -> str:
    return (
        "Logs were truncated because the total bytes size exceeds the limit of "
        f"{limit_bytes} bytes."
    )


def timestamp(epoch_ns: int | None = None) -> str:
    """RFC 3339 with nanoseconds, as docker prints it: 2016-02-11T16:46:56.842065025Z."""
    ns = time.time_ns() if epoch_ns is None else epoch_ns
    seconds, rest = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{rest:09d}Z"


def format_line(time_: str, stream: str, text: str) -> str:
    return f"{time_:<30} {stream}: {text}"


@dataclass(frozen=True)
class LogLine:
    time: str
    stream: str
    text: str


@dataclass
class LogCollection:
    """Lines of one activation. `complete` is False when the sentinels never arrived."""

    lines: list[str] = field(default_factory=list)
    truncated: bool = False
    complete: bool = True
    size: int = 0

    def add(self, line: LogLine, limit_bytes: int) -> None:
        """Append a line unless the limit is reached; past it, one truncation line."""
        if self.truncated:
            return
        self.size += len(line.text.encode()) + 1
        if self.size > limit_bytes:
            self.truncated = True
            self.lines.append(format_line(timestamp(), "stderr", truncation_line(limit_bytes)))
            return
        self.lines.append(format_line(line.time, line.stream, line.text))


TAG_START, TAG_END = "\x1e", "\x1f"  # a line of one concurrent activation: \x1e<id>\x1fline
FINISHED_KEPT = 4096  # ids of collected activations whose late lines are dropped


class LogBuffer:
    """Receives lines from a container's stdout/stderr (on the event loop) and hands out one
    activation's worth, framed by the sentinels. Lines a proxy tagged with an activation id
    (activations sharing a container) are kept apart, per activation."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[LogLine] = asyncio.Queue()
        self._tagged: dict[str, asyncio.Queue[LogLine]] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._partial = dict.fromkeys(STREAMS, "")

    def feed(self, stream: str, chunk: str, time_: str | None = None) -> None:
        """Add raw output of one stream; complete lines are queued with a timestamp."""
        data = self._partial[stream] + chunk
        *complete, self._partial[stream] = data.split("\n")
        stamp = time_ or timestamp()
        for text in complete:
            queue = self._queue
            if text.startswith(TAG_START) and TAG_END in text:
                activation, text = text[1:].split(TAG_END, 1)
                if activation in self._finished:
                    continue  # written after its activation ended: nobody's any more
                queue = self._tagged.setdefault(activation, asyncio.Queue())
            queue.put_nowait(LogLine(stamp, stream, text))

    def close(self) -> None:
        for stream in STREAMS:
            if self._partial[stream]:
                self.feed(stream, "\n")

    async def collect(
        self, limit_bytes: int, wait_s: float, activation: str | None = None
    ) -> LogCollection:
        """Lines until a sentinel arrived on both streams (or `wait_s` passed): the untagged
        ones, or those tagged with `activation`."""
        if activation is None:
            return await _collect(self._queue, limit_bytes, wait_s)
        queue = self._tagged.setdefault(activation, asyncio.Queue())
        try:
            return await _collect(queue, limit_bytes, wait_s)
        finally:
            self._finish(activation)

    def drain(self, limit_bytes: int, activation: str | None = None) -> LogCollection:
        """Everything buffered now, without waiting (after a crash: no sentinels will come)."""
        queue = self._queue if activation is None else self._tagged.get(activation)
        if activation is not None:
            self._finish(activation)
        collection = LogCollection(complete=False)
        while queue is not None and not queue.empty():
            line = queue.get_nowait()
            if line.text != SENTINEL:
                collection.add(line, limit_bytes)
        return collection

    def _finish(self, activation: str) -> None:
        self._tagged.pop(activation, None)
        self._finished[activation] = None
        if len(self._finished) > FINISHED_KEPT:
            self._finished.popitem(last=False)


async def _collect(queue: asyncio.Queue[LogLine], limit_bytes: int, wait_s: float) -> LogCollection:
    collection = LogCollection()
    seen: set[str] = set()
    deadline = time.monotonic() + wait_s
    while len(seen) < len(STREAMS):
        if queue.empty():
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                line = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                collection.complete = False
                break
        else:
            line = queue.get_nowait()
        if line.text == SENTINEL:
            seen.add(line.stream)
        else:
            collection.add(line, limit_bytes)
    return collection
