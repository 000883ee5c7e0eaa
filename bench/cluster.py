"""The cluster under test: a private Redis, one `homerun controller` and one `homerun invoker`
(docker sandbox) as separate processes on loopback, SQLite in a scratch directory, and the
baseline starlette server as a process of its own.

The invoker is sized so that every warm container of the run fits (slots and memory budget);
the namespace throttles are raised so that a load test measures the platform and not its
rate limit (Adobe raises them for load tests too); `limits.concurrency` may go up to 500."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from bench import containers
from controller.settings import Settings
from controller.setup import run_in_transaction, upgrade_database
from invoker.protocol import Keys

REPO = Path(__file__).resolve().parent.parent
INVOKER_SLOTS = 128  # c=100 of one action with room to spare
INVOKER_MEMORY_MB = 256 * 256  # a budget, not an allocation: 256 containers of 256 MB
STOP_TIMEOUT_S = 120.0  # an invoker removes all its containers as it stops


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Cluster:
    """A controller, at most one invoker at a time, and the baseline server, as processes."""

    def __init__(self, workdir: Path, redis_url: str, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "HOMERUN_DATA_DIR": str(workdir / "data"),
            "HOMERUN_REDIS_URL": redis_url,
            "HOMERUN_PORT": str(port),
            "HOMERUN_LOG_LEVEL": "warning",
            "HOMERUN_LIMITS__INVOCATIONS_PER_MINUTE": str(10**9),
            "HOMERUN_LIMITS__CONCURRENT_INVOCATIONS": str(10**6),
            "HOMERUN_LIMITS__CONCURRENCY_MAX": "500",
        }
        self.key_prefix = self.env.get("HOMERUN_KEY_PREFIX", "homerun")
        self.invoker_id: str | None = None
        self._stuck = 0  # entries of the invoker's queue that never went away
        self._controller: subprocess.Popen[bytes] | None = None
        self._invoker: subprocess.Popen[bytes] | None = None
        self._baseline: subprocess.Popen[bytes] | None = None
        self.baseline_port = 0

    def _spawn(
        self, args: list[str], log_name: str, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        with open(self.workdir / f"{log_name}.log", "ab") as log:
            return subprocess.Popen(
                [sys.executable, *args], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )

    # The controller.

    def start_controller(self) -> dict[str, str]:
        """Migrate the database, start the controller; the operator's seed-API headers."""
        settings = Settings(data_dir=self.workdir / "data")
        upgrade_database(settings)
        headers = run_in_transaction(settings, _operator_headers)
        self._controller = self._spawn(["-m", "homerun.cli", "controller"], "controller", self.env)
        return headers

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                self._check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.base_url}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise SystemExit(f"the controller was not ready within {timeout_s:.0f} s")

    # The invoker: one at a time, prewarming (stem cells) or not.

    def start_invoker(self, *, prewarm: bool) -> str:
        assert self._invoker is None, "one invoker at a time"
        invoker_id = f"bench{uuid.uuid4().hex[:6]}{'s' if prewarm else 'c'}"
        env = {
            **self.env,
            "HOMERUN_INVOKER_ID": invoker_id,
            "HOMERUN_INVOKER_SANDBOX": "docker",
            "HOMERUN_INVOKER_PREWARM": str(prewarm).lower(),
            "HOMERUN_INVOKER_SLOTS": str(INVOKER_SLOTS),
            "HOMERUN_INVOKER_MEMORY_MB": str(INVOKER_MEMORY_MB),
            "HOMERUN_INVOKER_WORK_DIR": str(self.workdir / invoker_id),
        }
        self._invoker = self._spawn(["-m", "homerun.cli", "invoker"], invoker_id, env)
        self.invoker_id = invoker_id
        self._stuck = 0
        return invoker_id

    async def redis_config(self, name: str, value: str) -> None:
        redis = Redis.from_url(self.env["HOMERUN_REDIS_URL"])
        try:
            await redis.config_set(name, value)
        finally:
            await redis.aclose()

    async def wait_for_invoker(self, timeout_s: float = 60.0) -> None:
        """Until the invoker heartbeats: before that, invocations answer 503."""
        assert self.invoker_id is not None
        redis = Redis.from_url(self.env["HOMERUN_REDIS_URL"])
        alive = Keys(self.key_prefix).alive(self.invoker_id)
        try:
            deadline = time.monotonic() + timeout_s
            while not await redis.exists(alive):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the invoker did not register within {timeout_s:.0f} s")
                self._check_alive()
                await asyncio.sleep(0.05)
        finally:
            await redis.aclose()

    async def wait_idle(self, timeout_s: float = 60.0, stuck_s: float = 5.0) -> tuple[float, int]:
        """Until the invoker's queue is empty (nothing queued or running: what a load
        generator abandoned as it stopped has run too), or has not shrunk for `stuck_s`.
        The seconds that took, and how many more entries than before stay in the queue
        (activations that will never finish: entries stuck earlier are not waited for)."""
        assert self.invoker_id is not None
        redis = Redis.from_url(self.env["HOMERUN_REDIS_URL"])
        queue = Keys(self.key_prefix).queue(self.invoker_id)
        started = time.monotonic()
        try:
            left = await redis.xlen(queue)
            shrunk = started
            while left > self._stuck and time.monotonic() - shrunk < stuck_s:
                if time.monotonic() - started > timeout_s:
                    break
                await asyncio.sleep(0.05)
                now_left = await redis.xlen(queue)
                if now_left < left:
                    shrunk = time.monotonic()
                left = now_left
        finally:
            await redis.aclose()
        newly = max(0, left - self._stuck)
        self._stuck = left
        return time.monotonic() - started, newly

    async def stop_invoker(self) -> None:
        """SIGTERM (it drains and removes its containers), then whatever it left behind."""
        process, invoker_id = self._invoker, self.invoker_id
        self._invoker = self.invoker_id = None
        if process is None or invoker_id is None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        containers.remove_all(invoker_id)
        redis = Redis.from_url(self.env["HOMERUN_REDIS_URL"])
        try:  # a killed invoker stays registered until its alive key expires
            while await redis.exists(Keys(self.key_prefix).alive(invoker_id)):
                await asyncio.sleep(0.1)
        finally:
            await redis.aclose()

    # The baseline server.

    async def start_baseline(self, timeout_s: float = 30.0) -> str:
        """Start `bench.baseline` on a free loopback port; its base URL once it answers."""
        self.baseline_port = free_port()
        self._baseline = self._spawn(
            ["-m", "bench.baseline", str(self.baseline_port)], "baseline", dict(os.environ)
        )
        url = f"http://127.0.0.1:{self.baseline_port}"
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.post(url + "/", content=b"{}")).status_code == 200:
                        return url
                await asyncio.sleep(0.1)
        raise SystemExit(f"the baseline server did not answer within {timeout_s:.0f} s")

    def _check_alive(self) -> None:
        for process in (self._controller, self._invoker):
            if process is not None and process.poll() is not None:
                raise SystemExit(f"a bench process exited; see the logs in {self.workdir}")

    def stop(self) -> None:
        """Stop every process this cluster started (the invoker removes its containers)."""
        running = [p for p in (self._invoker, self._baseline, self._controller) if p]
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.invoker_id is not None:
            containers.remove_all(self.invoker_id)


async def _operator_headers(session: Any) -> dict[str, str]:
    from controller.domain import TokenScope
    from controller.services import credentials

    _, token = await credentials.create_token(session, TokenScope.ADMIN)
    _, key = await credentials.create_api_key(session)
    return {"Authorization": f"Bearer {token}", "X-Api-Key": key}
