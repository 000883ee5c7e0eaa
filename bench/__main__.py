"""Homerun benchmarks: `python -m bench` (or `make bench`).

Starts a private Redis, a controller and an invoker (docker sandbox) as separate processes on
loopback, then measures, each against a baseline taken in the same run:

1. warm blocking invoke of a noop action through the controller vs a direct `/run` into the
   same warm container (p50, p99, ratio);
2. cold start of a new action (no stem cells) vs `docker run` of the same image until its
   proxy first answers;
3. warm noop throughput at concurrency 1, 8 and 32 (after an untimed warm-up at the same
   concurrency), vs direct `/run` throughput (c=1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from controller.settings import Settings
from controller.setup import run_in_transaction, upgrade_database
from homerun.standalone import private_redis
from invoker.protocol import Keys

NOOP = "function main(params) { return {}; }"
IMAGE = "homerun/action-nodejs-v18:latest"
HARDENING = [
    "--read-only", "--tmpfs", "/tmp:rw,size=64m", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges", "--pids-limit", "256", "--network", "none",
    "--memory", "256m", "--memory-swap", "256m", "--user", "1000:1000",
]  # fmt: skip


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(n: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def throughput(concurrency: int, seconds: float, call: Callable[[], Awaitable[Any]]) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


class Cluster:
    """A controller and an invoker, as processes, sharing a private Redis."""

    def __init__(self, workdir: Path, redis_url: str, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.invoker_id = f"bench{uuid.uuid4().hex[:6]}"
        self.env = {
            **os.environ,
            "HOMERUN_DATA_DIR": str(workdir / "data"),
            "HOMERUN_REDIS_URL": redis_url,
            "HOMERUN_PORT": str(port),
            "HOMERUN_LOG_LEVEL": "warning",
            "HOMERUN_INVOKER_ID": self.invoker_id,
            "HOMERUN_INVOKER_SANDBOX": "docker",
            "HOMERUN_INVOKER_PREWARM": "false",
            "HOMERUN_INVOKER_SLOTS": "64",
            "HOMERUN_INVOKER_MEMORY_MB": "16384",
            "HOMERUN_INVOKER_WORK_DIR": str(workdir / "invoker"),
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> dict[str, str]:
        settings = Settings(data_dir=self.workdir / "data")
        upgrade_database(settings)
        headers = run_in_transaction(settings, _operator_headers)
        for command in ("controller", "invoker"):
            with open(self.workdir / f"{command}.log", "wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "homerun.cli", command],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            self.processes.append(process)
        return headers

    async def wait_for_invoker(self, timeout_s: float = 60.0) -> None:
        """Until the invoker heartbeats: before that, invocations answer 503."""
        redis = Redis.from_url(self.env["HOMERUN_REDIS_URL"])
        alive = Keys(self.env.get("HOMERUN_KEY_PREFIX", "homerun")).alive(self.invoker_id)
        try:
            deadline = time.monotonic() + timeout_s
            while not await redis.exists(alive):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the invoker did not register within {timeout_s:.0f} s")
                if any(p.poll() is not None for p in self.processes):
                    raise SystemExit(f"a bench process exited; see the logs in {self.workdir}")
                await asyncio.sleep(0.05)
        finally:
            await redis.aclose()

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


async def _operator_headers(session: Any) -> dict[str, str]:
    from controller.domain import TokenScope
    from controller.services import credentials

    _, token = await credentials.create_token(session, TokenScope.ADMIN)
    _, key = await credentials.create_api_key(session)
    return {"Authorization": f"Bearer {token}", "X-Api-Key": key}


def container_socket(invoker_id: str, action: str) -> Path:
    """The socket of the warm container the invoker started for `action`."""
    names = subprocess.run(
        ["docker", "ps", "--filter", f"label=homerun.invoker={invoker_id}",
         "--format", "{{.Names}}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    mine = [n for n in names if f"_{action}_" in n]
    if len(mine) != 1:
        raise SystemExit(f"expected one warm container for {action}, found {mine}")
    mounts = json.loads(
        subprocess.run(
            ["docker", "inspect", "--format", "{{json .Mounts}}", mine[0]],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    return Path(mounts[0]["Source"]) / "action.sock"


async def docker_run_to_first_answer(workdir: Path) -> float:
    sockets = Path(tempfile.mkdtemp(prefix="hrb", dir="/tmp"))
    sockets.chmod(0o777)
    name = f"hrbench_{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--name", name, *HARDENING,
         "-v", f"{sockets}:/run/homerun", IMAGE],
        check=True, capture_output=True,
    )  # fmt: skip
    transport = httpx.AsyncHTTPTransport(uds=str(sockets / "action.sock"))
    async with httpx.AsyncClient(transport=transport, base_url="http://action") as http:
        while True:
            try:
                if (await http.get("/health")).status_code == 200:
                    break
            except httpx.HTTPError:
                await asyncio.sleep(0.002)
    elapsed = (time.perf_counter() - started) * 1000
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    return elapsed


def row(label: str, value: str, baseline: str, ratio: float) -> str:
    return f"  {label:<44} {value:>14} {baseline:>14} {ratio:>8.2f}x"


async def bench(args: argparse.Namespace, cluster: Cluster, headers: dict[str, str]) -> None:
    base = f"http://127.0.0.1:{cluster.port}"
    seed = f"{base}/runtime/admin/namespaces/bench/bench"
    actions = f"{base}/runtime/namespaces/bench/bench/actions"
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(headers=headers, timeout=120, limits=limits) as http:
        for _ in range(200):
            try:
                if (await http.get(f"{base}/readyz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        await cluster.wait_for_invoker()
        (await http.post(seed)).raise_for_status()
        body = {"name": "noop", "code": NOOP, "exec": {"kind": "nodejs:18"}}
        (await http.post(actions, json=body)).raise_for_status()

        async def invoke() -> None:
            response = await http.post(f"{actions}/noop", json={})
            if response.status_code != 200:
                raise SystemExit(f"invoke failed: {response.status_code} {response.text}")

        await timed(20, invoke)  # warm it up
        sock = container_socket(cluster.invoker_id, "noop")
        run_body = {
            "value": {}, "namespace": "bench-bench", "action_name": "/bench-bench/noop",
            "action_version": "0.0.1", "activation_id": uuid.uuid4().hex,
            "transaction_id": "bench", "deadline": str(int(time.time() * 1000) + 60_000),
        }  # fmt: skip
        transport = httpx.AsyncHTTPTransport(uds=str(sock))
        async with httpx.AsyncClient(transport=transport, base_url="http://action") as direct:

            async def run() -> None:
                (await direct.post("/run", json=run_body)).raise_for_status()

            await timed(20, run)
            platform = await timed(args.samples, invoke)
            baseline = await timed(args.samples, run)
            direct_rps = await throughput(1, args.seconds, run)

        print(f"\nHomerun benchmarks ({args.samples} samples, {args.seconds:.0f} s per load step)")
        print(f"  {'':<44} {'homerun':>14} {'baseline':>14} {'ratio':>9}")
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            p, b = percentile(platform, q), percentile(baseline, q)
            print(row(f"warm invoke {name} (ms) vs direct /run", f"{p:.2f}", f"{b:.2f}", p / b))

        cold, docker_cold = [], []
        for i in range(args.cold):
            name = f"cold{i}"
            body = {"name": name, "code": NOOP, "exec": {"kind": "nodejs:18"}}
            (await http.post(actions, json=body)).raise_for_status()
            started = time.perf_counter()
            (await http.post(f"{actions}/{name}", json={})).raise_for_status()
            cold.append((time.perf_counter() - started) * 1000)
            docker_cold.append(await docker_run_to_first_answer(cluster.workdir))
        c, d = statistics.median(cold), statistics.median(docker_cold)
        print(row("cold start p50 (ms) vs docker run to answer", f"{c:.1f}", f"{d:.1f}", c / d))

        for concurrency in (1, 8, 32):
            # Untimed first: concurrency c needs c warm containers (each a cold start).
            await throughput(concurrency, args.seconds, invoke)
            rps = await throughput(concurrency, args.seconds, invoke)
            print(row(f"warm throughput c={concurrency} (req/s) vs direct c=1",
                      f"{rps:.0f}", f"{direct_rps:.0f}", rps / direct_rps))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=500, help="latency samples per side")
    parser.add_argument("--cold", type=int, default=10, help="cold starts per side")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of a load step")
    parser.add_argument("--port", type=int, default=3399)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="hrbench", dir="/tmp"))
    workdir.chmod(0o755)
    with private_redis(workdir) as redis_url:
        cluster = Cluster(workdir, redis_url, args.port)
        headers = cluster.start()
        try:
            asyncio.run(bench(args, cluster, headers))
        finally:
            cluster.stop()
    print(f"  (logs in {workdir})")


if __name__ == "__main__":
    main()
