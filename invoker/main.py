"""Assembling and running an invoker process (`homerun invoker`)."""

from __future__ import annotations

import asyncio
import logging
import signal

from redis.asyncio import Redis

from homerun import redisclient
from invoker.codecache import CodeCache
from invoker.docker_sandbox import DockerSandbox
from invoker.pool import ContainerPool
from invoker.process_sandbox import ProcessSandbox
from invoker.protocol import Keys, platform_env
from invoker.runner import Runner
from invoker.sandbox import Sandbox
from invoker.settings import InvokerSettings
from invoker.worker import Worker

log = logging.getLogger(__name__)


def make_sandbox(settings: InvokerSettings) -> Sandbox:
    use_docker = settings.sandbox == "docker" or (
        settings.sandbox == "auto" and DockerSandbox.available()
    )
    if use_docker:
        return docker_sandbox(settings)
    return ProcessSandbox(settings.work_dir / "processes")


def docker_sandbox(settings: InvokerSettings) -> DockerSandbox:
    """The docker sandbox of this invoker, once the containers an earlier run of the same
    invoker id left are gone (only those: other invokers may share the engine)."""
    sandbox = DockerSandbox(
        settings.work_dir / "sockets",
        settings.id,
        network=settings.network,
        pids_limit=settings.pids_limit,
        blackbox_images=settings.blackbox_images,
        blackbox_writable_root=settings.blackbox_writable_root,
        relay_image=settings.relay_image,
        api_url=settings.api_url,
    )
    removed = sandbox.remove_leftovers()
    if removed:
        log.warning("removed %d containers an earlier run of invoker %s left", removed, settings.id)
    return sandbox


def make_worker(settings: InvokerSettings, redis: Redis, sandbox: Sandbox | None = None) -> Worker:
    keys = Keys(settings.key_prefix)
    pool = ContainerPool(
        sandbox or make_sandbox(settings),
        settings.memory_mb,
        idle_timeout_s=settings.idle_timeout_s,
        pause_grace_s=settings.pause_grace_s,
        # What code run at /init (a client made at load time) reads before any activation.
        stem_cell_env=platform_env(settings.api_url) if settings.api_url else None,
    )
    runner = Runner(pool, CodeCache(redis, keys), settings.id)
    return Worker(
        redis,
        keys,
        settings.id,
        runner,
        pool,
        slots=settings.slots,
        memory_mb=settings.memory_mb,
        heartbeat_s=settings.heartbeat_s,
        alive_ttl_s=settings.alive_ttl_s,
        drain_timeout_s=settings.drain_timeout_s,
        prewarm=settings.prewarm,
    )


async def serve(settings: InvokerSettings, *, burst: bool = False) -> None:
    redis = redisclient.connect(settings.redis_url)
    try:
        worker = make_worker(settings, redis)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        log.info(
            "invoker %s: %s sandbox, %d slots, %d MB",
            settings.id, worker.pool.sandbox.name, settings.slots, settings.memory_mb,
        )  # fmt: skip
        await worker.run(burst=burst)
    finally:
        await redis.aclose()


async def healthy(settings: InvokerSettings) -> bool:
    """Whether the invoker with this id is heartbeating (for container health checks)."""
    redis = redisclient.connect(settings.redis_url)
    try:
        return bool(await redis.exists(Keys(settings.key_prefix).alive(settings.id)))
    finally:
        await redis.aclose()
