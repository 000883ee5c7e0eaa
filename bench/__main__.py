"""Homerun benchmarks: `python -m bench [--quick] [--json FILE]` (or `make bench`).

One run starts a private Redis, a controller, an invoker (docker sandbox) and a bare
uvicorn + starlette server as separate processes on loopback (bench/cluster.py), and measures
every figure of issue 8 against a baseline taken in the same run. The ratio is value/baseline.

Load generators. Throughput figures are closed-loop wrk runs (Debian's `wrk`, driven by
bench/wrk.lua: POST bodies, the surface's auth headers, round-robin paths, every status code
counted); no Python generates that load. Latency at c=1 uses a minimal asyncio HTTP client
(bench/rawhttp.py) on both sides, as wrk cannot reach a unix socket. `p99_at_80pct_ms` uses
an open-loop constant-rate asyncio generator (bench/openloop.py; wrk2 is not in Debian) that
measures each latency from the request's intended send time. Every action is warmed before it
is measured, and each load first runs untimed at the same concurrency, in rounds, until a
round starts no container (at most a few rounds). Anything but a 200 is counted; a figure
whose run saw one, or saw a container start while it was measured, carries a `note`.

Figures (value vs baseline):
  warm_p50_ms, warm_p99_ms      blocking noop (limits.concurrency=1, as every noop here but
                                conc100) through the OpenWhisk API
                                (`POST .../actions/noop?blocking=true`, Basic auth), c=1, vs
                                `POST /run` straight into a warm container of that action
                                (over its unix socket), in alternating blocks of 50
  throughput_c32_openwhisk      warm noop req/s at c=32 through the OpenWhisk API, vs the bare
                                starlette endpoint returning a small JSON body (same wrk, c=32)
  throughput_c32_seed           the same through the seed API (bearer token + X-Api-Key)
  throughput_fsync_always       the OpenWhisk noop at c=32 with Redis fsyncing its append-only
                                file before each reply (`appendfsync always`, the standalone's
                                setting), vs `appendfsync everysec`, one after the other
  throughput_100_actions        c=32 round-robin over 100 distinct warm noop actions, vs one
                                action (throughput_c32_openwhisk's value)
  concurrent_action_throughput  a noop with limits.concurrency=100 at c=100, vs the
                                concurrency-1 noop at c=32; `containers` of each. Null with a
                                note when the platform refuses or ignores concurrency > 1
  stem_cell_start_ms            first invocation of a new action of the default kind on an
                                invoker with prewarm on, once its stem cells answer, vs
                                `docker run` of the same image to its first /health answer
                                (medians)
  cold_start_ms                 the same on an invoker with prewarm off (no stem cells)
  p99_at_80pct_ms               p99 of the noop through the OpenWhisk API at a constant 80% of
                                throughput_c32_openwhisk, vs p50 of that same load

Order: the stem-cell phase runs on its own prewarming invoker, which then stops; every other
figure runs on an invoker without prewarm. A full run takes about 5-8 minutes on 2 cores;
`--quick` (about 2 minutes) runs the same code path with fewer samples, shorter loads and 20
actions instead of 100 (each figure records what it used).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import figures, load, report
from bench.api import Api
from bench.cluster import Cluster, free_port
from bench.figures import Plan, Run
from controller.runtimes import load_manifest
from homerun import eventloop
from homerun.standalone import private_redis

UNITS = {
    "stem_cell_start_ms": "ms", "cold_start_ms": "ms", "warm_p50_ms": "ms", "warm_p99_ms": "ms",
    "throughput_c32_openwhisk": "req/s", "throughput_c32_seed": "req/s",
    "throughput_100_actions": "req/s", "concurrent_action_throughput": "req/s",
    "p99_at_80pct_ms": "ms", "throughput_fsync_always": "req/s",
}  # fmt: skip
Step = tuple[Callable[[Run], Awaitable[None]], tuple[str, ...]]
STEM_PHASE: list[Step] = [(figures.stem_cell_start, ("stem_cell_start_ms",))]
MAIN_PHASE: list[Step] = [
    (figures.cold_start, ("cold_start_ms",)),
    (figures.warm_latency, ("warm_p50_ms", "warm_p99_ms")),
    (figures.throughput_c32, ("throughput_c32_openwhisk", "throughput_c32_seed")),
    (figures.fsync_cost, ("throughput_fsync_always",)),
    (figures.throughput_100_actions, ("throughput_100_actions",)),
    (figures.concurrent_action_throughput, ("concurrent_action_throughput",)),
    (figures.p99_at_80pct, ("p99_at_80pct_ms",)),
]


async def _steps(run: Run, steps: list[Step]) -> None:
    """Each step adds its figures; one that fails records them as null with the reason, and
    the run goes on."""
    for measure, names in steps:
        started = time.monotonic()
        print(f"  measuring {', '.join(names)} ...", flush=True)
        try:
            await measure(run)
        except Exception as exc:
            traceback.print_exc()
            for name in names:
                if name not in run.figures:
                    note = f"failed: {type(exc).__name__}: {exc}"
                    run.add(report.Figure(name, None, None, UNITS[name], {"note": note}))
        print(f"    ({time.monotonic() - started:.0f} s)", flush=True)


async def _bench(cluster: Cluster, operator: dict[str, str], plan: Plan) -> list[report.Figure]:
    manifest = load_manifest()
    kind = manifest.default_kind
    runtime = manifest.get(kind)
    assert runtime is not None
    baseline_url = await cluster.start_baseline()
    await cluster.wait_ready()
    api = Api(cluster.base_url, operator)
    try:
        await api.create_namespace()
        run = Run(cluster, api, plan, kind, runtime.image,
                  sum(c.count for c in runtime.stem_cells), baseline_url)  # fmt: skip
        for prewarm, steps in ((True, STEM_PHASE), (False, MAIN_PHASE)):
            cluster.start_invoker(prewarm=prewarm)
            await cluster.wait_for_invoker()
            try:
                await _steps(run, steps)
            finally:
                await cluster.stop_invoker()
    finally:
        await api.aclose()
    return [run.figures[name] for name in UNITS if name in run.figures]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures here")
    parser.add_argument("--quick", action="store_true", help="a ~2 minute smoke of the same path")
    parser.add_argument("--port", type=int, default=0, help="controller port (default: free)")
    args = parser.parse_args()
    load.require_wrk()
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="hrbench", dir="/tmp"))
    workdir.chmod(0o755)
    plan = Plan.of(args.quick)
    print(f"Homerun benchmarks{' (quick)' if args.quick else ''}: logs in {workdir}", flush=True)
    with private_redis(workdir) as redis_url:
        cluster = Cluster(workdir, redis_url, args.port or free_port())
        try:
            operator = cluster.start_controller()
            with asyncio.Runner(loop_factory=eventloop.loop_factory()) as runner:
                found = runner.run(_bench(cluster, operator, plan))
        finally:
            cluster.stop()
    wall_s = time.monotonic() - started
    machine = report.machine(load_before)
    print(report.table(found, machine, wall_s))
    if args.json:
        run_info = {
            "quick": args.quick,
            "wall_s": round(wall_s, 1),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "plan": plan.__dict__,
            "python": sys.version.split()[0],
        }
        report.write_json(args.json, found, machine, run_info)
        print(f"  (figures in {args.json}; logs in {workdir})")


if __name__ == "__main__":
    main()
