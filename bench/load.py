"""Closed-loop load with wrk (Debian's `wrk` package) and the Lua script beside this module:
no Python on the generating path. Every status code is counted; anything but 200 is a
problem the figure reports."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).with_name("wrk.lua")
RESULT_MARK = "BENCH_RESULT "
INSTALL_HINT = (
    "the benchmarks drive load with wrk, which is not installed. Install it with\n"
    "    sudo apt-get install -y wrk        (Debian, Ubuntu)\n"
    "    brew install wrk                   (macOS)\n"
    "or build it from https://github.com/wg/wrk and put it on PATH."
)


def require_wrk() -> str:
    """The path of wrk; exits telling the user how to install it when it is missing."""
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit(INSTALL_HINT)
    return found


@dataclass(frozen=True)
class Target:
    """What every request of a load asks for: one method, headers and body, and one or more
    paths taken round-robin."""

    base_url: str  # http://127.0.0.1:PORT
    paths: Sequence[str]
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"
    body: str = "{}"

    def request_file(self) -> str:
        lines = [f"method {self.method}", f"body {self.body}"]
        lines += [f"header {name}: {value}" for name, value in self.headers.items()]
        lines += [f"path {path}" for path in self.paths]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class LoadResult:
    """One wrk run: counts, status codes, socket errors and latency (ms)."""

    duration_s: float
    requests: int
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    latency_ms: dict[str, float]

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    def errors(self) -> dict[str, int]:
        """Every response that was not a 200, by status code, and every socket error."""
        bad = {str(code): n for code, n in sorted(self.statuses.items()) if code != 200}
        bad.update({kind: n for kind, n in self.socket_errors.items() if n})
        return bad

    def problem(self) -> str | None:
        bad = self.errors()
        if not bad:
            return None
        listed = ", ".join(f"{n} {kind}" for kind, n in bad.items())
        return f"{sum(bad.values())} of {self.requests + _sockets(bad)} requests failed ({listed})"

    def summary(self) -> dict[str, object]:
        """What a figure carries of its run besides the rate."""
        return {
            "requests": self.requests,
            "duration_s": round(self.duration_s, 2),
            "latency_ms": self.latency_ms,
            "errors": self.errors(),
        }


def _sockets(bad: dict[str, int]) -> int:
    # Timeouts and socket errors are requests without a response: wrk does not count them.
    return sum(n for kind, n in bad.items() if not kind.isdigit())


async def run_wrk(
    target: Target,
    *,
    connections: int,
    seconds: float,
    workdir: Path,
    threads: int = 2,
    timeout_s: float = 30.0,
) -> LoadResult:
    """Run wrk against `target` for `seconds` at `connections` (closed loop)."""
    wrk = require_wrk()
    threads = max(1, min(threads, connections))
    request_file = workdir / "wrk-request.txt"
    request_file.write_text(target.request_file())
    process = await asyncio.create_subprocess_exec(
        wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
        "--timeout", f"{timeout_s:g}s", "-s", str(SCRIPT), target.base_url,
        "--", str(request_file), str(threads),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    for line in out.decode().splitlines():
        if line.startswith(RESULT_MARK):
            return _parse(json.loads(line[len(RESULT_MARK) :]))
    raise RuntimeError(f"wrk printed no result (exit {process.returncode}): {err.decode()[-500:]}")


def _parse(raw: dict[str, object]) -> LoadResult:
    latency = raw["latency_us"]
    assert isinstance(latency, dict)
    statuses = raw["statuses"]
    assert isinstance(statuses, dict)
    sockets = raw["socket_errors"]
    assert isinstance(sockets, dict)
    duration = raw["duration_us"]
    requests = raw["requests"]
    assert isinstance(duration, int) and isinstance(requests, int)
    return LoadResult(
        duration_s=duration / 1e6,
        requests=requests,
        statuses={int(code): int(n) for code, n in statuses.items()},
        socket_errors={str(kind): int(n) for kind, n in sockets.items()},
        latency_ms={str(q): round(float(us) / 1000, 3) for q, us in latency.items()},
    )
