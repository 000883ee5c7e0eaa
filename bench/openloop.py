"""An open-loop constant-rate generator (what wrk2 does; wrk2 is not in Debian).

Request k is due at `start + k / rate` whatever happened to earlier ones: it takes an idle
keep-alive connection or opens a new one (up to `max_connections`, beyond which it waits), and
its latency runs from the time it was due, not from when it was sent, so a stalled server
cannot hide its queue (no coordinated omission). The generator's own lateness (started minus
due) is reported beside the figures so that a generator that falls behind shows itself.

Connections idle for longer than `IDLE_S` are closed rather than reused (uvicorn closes them
after 5 s), and a request whose reused connection turns out closed before any answer is sent
again on a new one, as HTTP clients do.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

from bench.rawhttp import Connection, Endpoint

IDLE_S = 2.0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class OpenLoopResult:
    rate: float  # asked for, req/s
    achieved: float  # 200 responses per second of the run
    latencies_ms: list[float]  # of the 200 responses, from the time each request was due
    lag_ms: list[float]  # started minus due: the generator's own lateness
    statuses: dict[int, int]
    failures: dict[str, int]  # requests without a response, by exception
    connections: int  # opened during the run

    def errors(self) -> dict[str, int]:
        bad = {str(code): n for code, n in sorted(self.statuses.items()) if code != 200}
        return {**bad, **self.failures}


class _Generator:
    """The state of one open-loop run."""

    def __init__(self, endpoint: Endpoint, request: bytes, max_connections: int, timeout_s: float):
        self.endpoint = endpoint
        self.request = request
        self.timeout_s = timeout_s
        self.loop = asyncio.get_running_loop()
        self.idle: list[tuple[float, Connection]] = []  # (since, connection), the latest last
        self.allowed = asyncio.Semaphore(max_connections)
        self.latencies: list[float] = []
        self.lag: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.failures: Counter[str] = Counter()
        self.opened = 0

    async def _connection(self) -> tuple[Connection, bool]:
        """An idle connection (True: reused) or a new one."""
        while self.idle:
            since, reused = self.idle.pop()
            if self.loop.time() - since < IDLE_S:
                return reused, True
            reused.close()
        self.opened += 1
        return await Connection.open(self.endpoint), False

    async def _send(self) -> tuple[int, Connection]:
        conn, reused = await self._connection()
        try:
            status, _ = await asyncio.wait_for(conn.exchange(self.request), self.timeout_s)
            return status, conn
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            conn.close()
            answered = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
            if not reused or answered:
                raise
        conn, _ = await self._connection()  # the server had closed the reused one: once more
        status, _ = await asyncio.wait_for(conn.exchange(self.request), self.timeout_s)
        return status, conn

    async def one(self, due: float) -> None:
        self.lag.append((self.loop.time() - due) * 1000)
        async with self.allowed:
            try:
                status, conn = await self._send()
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                self.failures[type(exc).__name__] += 1
                return
            self.statuses[status] += 1
            if status == 200:
                self.latencies.append((self.loop.time() - due) * 1000)
            if conn.reusable:
                self.idle.append((self.loop.time(), conn))
            else:
                conn.close()

    def close(self) -> None:
        for _, conn in self.idle:
            conn.close()


async def open_loop(
    endpoint: Endpoint,
    request: bytes,
    *,
    rate: float,
    seconds: float,
    max_connections: int = 1024,
    timeout_s: float = 60.0,
) -> OpenLoopResult:
    gen = _Generator(endpoint, request, max_connections, timeout_s)
    loop = gen.loop
    start = loop.time() + 0.05
    tasks: set[asyncio.Task[None]] = set()
    for k in range(max(1, int(rate * seconds))):
        due = start + k / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(gen.one(due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks)
    elapsed = loop.time() - start
    gen.close()
    return OpenLoopResult(
        rate=rate,
        achieved=gen.statuses.get(200, 0) / elapsed,
        latencies_ms=gen.latencies,
        lag_ms=gen.lag,
        statuses=dict(gen.statuses),
        failures=dict(gen.failures),
        connections=gen.opened,
    )
