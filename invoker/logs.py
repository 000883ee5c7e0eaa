"""Activation logs: line format, sentinel framing, the size limit and its truncation line."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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
WINDOW_MAX_CHARS = 16 << 20  # buffered for one activation (log limits go to 10 MB)
LINE_MAX_CHARS = 64 << 10  # a longer line is cut into lines of this length


@dataclass
class _Window:
    """The output buffered for one activation, up to WINDOW_MAX_CHARS (and one line past it,
    so that its collection says it was truncated); sentinels always pass."""

    queue: asyncio.Queue[LogLine] = field(default_factory=asyncio.Queue)
    size: int = 0

    def put(self, line: LogLine) -> None:
        if line.text != SENTINEL:
            if self.size > WINDOW_MAX_CHARS:
                return
            self.size += len(line.text) + 1
        self.queue.put_nowait(line)


class LogBuffer:
    """Receives lines from a container's stdout/stderr (on the event loop) and hands out one
    activation's worth, framed by the sentinels. Output is kept only while an activation
    expects it (`expect_request`, from the request sent to the proxy, until its collection):
    what the container writes between activations is dropped. Lines a proxy tagged with an
    activation id (activations sharing a container) go to that activation's window; lines
    tagged with any other id are dropped."""

    def __init__(self) -> None:
        self._untagged: _Window | None = None  # open from an /init or unshared /run
        self._tagged: dict[str, _Window] = {}
        self._concurrent = False  # its proxy tags each activation's lines
        self._partial = dict.fromkeys(STREAMS, "")

    def expect_request(self, path: str, payload: dict[str, Any]) -> None:
        """`payload` is about to be posted to the proxy's `path`: the output it causes is
        expected (an /init's untagged, a /run's tagged with its activation id when the
        action runs activations concurrently)."""
        if path == "/init":
            env = payload.get("value", {}).get("env", {})
            self._concurrent = env.get("__OW_ALLOW_CONCURRENT") == "true"
        if path == "/run" and self._concurrent and payload.get("activation_id"):
            self._tagged.setdefault(str(payload["activation_id"]), _Window())
        elif self._untagged is None:
            self._untagged = _Window()
            self._partial = dict.fromkeys(STREAMS, "")  # written before: nobody's

    def feed(self, stream: str, chunk: str, time_: str | None = None) -> None:
        """Add raw output of one stream; complete lines are queued with a timestamp."""
        data = self._partial[stream] + chunk
        *complete, partial = data.split("\n")
        while len(partial) > LINE_MAX_CHARS:
            complete.append(partial[:LINE_MAX_CHARS])
            partial = partial[LINE_MAX_CHARS:]
        self._partial[stream] = partial
        stamp = time_ or timestamp()
        for text in complete:
            window = self._untagged
            if text.startswith(TAG_START) and TAG_END in text:
                activation, text = text[1:].split(TAG_END, 1)
                window = self._tagged.get(activation)
            if window is not None:
                window.put(LogLine(stamp, stream, text))

    def close(self) -> None:
        for stream in STREAMS:
            if self._partial[stream]:
                self.feed(stream, "\n")

    async def collect(
        self, limit_bytes: int, wait_s: float, activation: str | None = None
    ) -> LogCollection:
        """Lines until a sentinel arrived on both streams (or `wait_s` passed): the untagged
        ones, or those tagged with `activation`. Its window closes: later output is dropped
        until the next request."""
        window = self._untagged if activation is None else self._tagged.get(activation)
        if window is None:
            return LogCollection(complete=False)
        try:
            return await _collect(window.queue, limit_bytes, wait_s)
        finally:
            self._close(activation, window)

    def drain(self, limit_bytes: int, activation: str | None = None) -> LogCollection:
        """Everything buffered now, without waiting (after a crash: no sentinels will come)."""
        window = self._take(activation)
        collection = LogCollection(complete=False)
        while window is not None and not window.queue.empty():
            line = window.queue.get_nowait()
            if line.text != SENTINEL:
                collection.add(line, limit_bytes)
        return collection

    def _take(self, activation: str | None) -> _Window | None:
        window = self._untagged if activation is None else self._tagged.get(activation)
        if window is not None:
            self._close(activation, window)
        return window

    def _close(self, activation: str | None, window: _Window) -> None:
        """No more output for `window` (of `activation`, None: the untagged one)."""
        if activation is not None and self._tagged.get(activation) is window:
            del self._tagged[activation]
        elif activation is None and self._untagged is window:
            self._untagged = None


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
