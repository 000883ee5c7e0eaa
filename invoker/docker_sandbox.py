"""The docker sandbox: each action container is a hardened docker container whose proxy
listens on a unix socket in a directory bind-mounted from the invoker's host."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container as DockerContainer
from docker.types import LogConfig
from docker.utils.socket import STDERR, frames_iter

from invoker.logs import LogBuffer, LogCollection
from invoker.proxyclient import ProxyClient
from invoker.sandbox import ContainerSpec, Exchange, ImageMissing, ProvisionError

log = logging.getLogger(__name__)

SOCKET_DIR_IN_CONTAINER = "/run/homerun"
SOCKET_NAME = "action.sock"
LABEL = "homerun.invoker"
ACTION_UID = "1000:1000"
BLACKBOX_KIND = "blackbox"


class DockerActionContainer:
    def __init__(
        self,
        spec: ContainerSpec,
        container: DockerContainer,
        socket_dir: Path,
        logs: LogBuffer,
        reader: threading.Thread,
        proxy: ProxyClient,
    ) -> None:
        self.id = container.id or ""
        self.spec = spec
        self._container = container
        self._socket_dir = socket_dir
        self._logs = logs
        self._reader = reader
        self._proxy = proxy
        self._destroyed = False

    def alive(self) -> bool:
        # The attach stream ends as soon as the container's process does.
        return not self._destroyed and self._reader.is_alive()

    async def wait_ready(self, timeout_s: float) -> None:
        await self._proxy.wait_ready(timeout_s, alive=self.alive)

    async def init(self, payload: dict[str, Any], timeout_s: float) -> Exchange:
        return await self._proxy.post("/init", payload, timeout_s)

    async def run(self, payload: dict[str, Any], timeout_s: float) -> Exchange:
        return await self._proxy.post("/run", payload, timeout_s)

    async def collect_logs(self, limit_bytes: int, wait_s: float) -> LogCollection:
        if not self._reader.is_alive():
            # The container is gone: take what arrived, no sentinels will follow.
            await asyncio.sleep(0.05)
            return self._logs.drain(limit_bytes)
        return await self._logs.collect(limit_bytes, wait_s)

    async def was_oom_killed(self) -> bool:
        """Ask the engine, once it has noticed the exit (the dropped connection can come
        first); a container still running after a short wait was not OOM-killed."""

        def inspect() -> dict[str, Any]:
            with contextlib.suppress(docker.errors.DockerException):
                self._container.reload()
                state: dict[str, Any] = self._container.attrs.get("State", {})
                return state
            return {}

        for _ in range(40):
            state = await asyncio.to_thread(inspect)
            if state.get("OOMKilled"):
                return True
            if not state.get("Running", False):
                return False
            await asyncio.sleep(0.05)
        return False

    async def destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        await self._proxy.close()

        def remove() -> None:
            with contextlib.suppress(docker.errors.NotFound):
                self._container.remove(force=True)

        try:
            await asyncio.to_thread(remove)
        except docker.errors.DockerException as exc:
            log.warning("could not remove container %s: %s", self.id[:12], exc)
        shutil.rmtree(self._socket_dir, ignore_errors=True)


class DockerSandbox:
    """Starts hardened containers: non-root, all capabilities dropped, no-new-privileges,
    read-only root with a small /tmp, a pids limit, memory without swap, no network unless
    `network` is set."""

    name = "docker"
    isolates = True

    def __init__(
        self,
        socket_root: Path,
        invoker_id: str,
        *,
        network: bool = False,
        pids_limit: int = 256,
        tmpfs_mb: int = 64,
        start_timeout_s: float = 30.0,
        client: docker.DockerClient | None = None,
    ) -> None:
        self.socket_root = socket_root
        self.invoker_id = invoker_id
        self.network = network
        self.pids_limit = pids_limit
        self.tmpfs_mb = tmpfs_mb
        self.start_timeout_s = start_timeout_s
        self._client = client or docker.from_env(timeout=60)

    @staticmethod
    def available() -> bool:
        try:
            client = docker.from_env(timeout=5)
            client.ping()
            client.close()
            return True
        except docker.errors.DockerException:
            return False

    def image_exists(self, image: str) -> bool:
        try:
            self._client.images.get(image)
            return True
        except docker.errors.ImageNotFound:
            return False

    def remove_leftovers(self) -> int:
        """Remove containers a previous run of this invoker left behind."""
        leftovers = self._client.containers.list(
            all=True, filters={"label": f"{LABEL}={self.invoker_id}"}
        )
        for container in leftovers:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)
        return len(leftovers)

    def _create(
        self, spec: ContainerSpec, socket_dir: Path, logs: LogBuffer
    ) -> tuple[DockerContainer, threading.Thread]:
        memory = f"{spec.memory_mb}m"
        common: dict[str, Any] = {
            "name": f"hr_{_safe(self.invoker_id)}_{_safe(spec.name)}_{uuid.uuid4().hex[:8]}",
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "pids_limit": self.pids_limit,
            "mem_limit": memory,
            "memswap_limit": memory,
            "cpu_shares": max(2, spec.memory_mb * 1024 // 256 // 4),
            "labels": {LABEL: self.invoker_id, "homerun.kind": spec.kind},
            "log_config": LogConfig(type="json-file", config={"max-size": "1m", "max-file": "1"}),
            "ulimits": [docker.types.Ulimit(name="nofile", soft=1024, hard=1024)],
        }
        if spec.kind == BLACKBOX_KIND:
            # A user's image serving /init and /run on TCP 8080, as OpenWhisk's runtime images
            # do: it keeps its own user and a writable root; reached through a port published
            # on the host's loopback only.
            specific: dict[str, Any] = {
                "network_mode": "bridge",
                "ports": {"8080/tcp": ("127.0.0.1", None)},
                "environment": dict(spec.env),
            }
        else:
            specific = {
                "user": ACTION_UID,
                "read_only": True,
                "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={self.tmpfs_mb}m,mode=1777"},
                "network_mode": "bridge" if self.network else "none",
                "volumes": {str(socket_dir): {"bind": SOCKET_DIR_IN_CONTAINER, "mode": "rw"}},
                "environment": {
                    **spec.env,
                    "HOMERUN_SOCKET": f"{SOCKET_DIR_IN_CONTAINER}/{SOCKET_NAME}",
                },
            }
        try:
            container = self._client.containers.create(spec.image, **common, **specific)
        except docker.errors.ImageNotFound:
            raise ImageMissing(
                f"image {spec.image} is not present (nothing is ever pulled)"
            ) from None
        except docker.errors.DockerException as exc:
            raise ProvisionError(f"could not create a container: {exc}") from None
        params = {"stdout": 1, "stderr": 1, "stream": 1, "logs": 1}
        sock = self._client.api.attach_socket(str(container.id), params=params)
        reader = threading.Thread(target=_pump, args=(sock, logs), daemon=True)
        reader.start()
        try:
            container.start()
        except docker.errors.DockerException as exc:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)
            raise ProvisionError(f"could not start a container: {exc}") from None
        return container, reader

    async def start(self, spec: ContainerSpec) -> DockerActionContainer:
        socket_dir = self.socket_root / uuid.uuid4().hex[:12]
        socket_dir.mkdir(parents=True)
        socket_dir.chmod(0o777)
        logs = LogBuffer()
        try:
            container, reader = await asyncio.to_thread(self._create, spec, socket_dir, logs)
        except BaseException:
            shutil.rmtree(socket_dir, ignore_errors=True)
            raise
        if spec.kind == BLACKBOX_KIND:
            proxy = ProxyClient(tcp=("127.0.0.1", await asyncio.to_thread(_host_port, container)))
        else:
            proxy = ProxyClient(socket_dir / SOCKET_NAME)
        action = DockerActionContainer(spec, container, socket_dir, logs, reader, proxy)
        try:
            await action.wait_ready(self.start_timeout_s)
        except BaseException:
            await action.destroy()
            raise
        return action

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)


def _pump(sock: Any, logs: LogBuffer) -> None:
    """Thread: move the container's multiplexed output into the log buffer until it ends,
    then close the attach socket (the SDK's stream wrappers leave it open at EOF)."""
    try:
        for stream_id, data in frames_iter(sock, tty=False):  # type: ignore[no-untyped-call]
            stream = "stderr" if stream_id == STDERR else "stdout"
            logs.feed_threadsafe(stream, data.decode("utf-8", errors="replace"))
    except Exception as exc:  # the stream breaks when the container is removed
        log.debug("log stream ended: %s", exc)
    finally:
        for closable in (sock, getattr(sock, "_sock", None)):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()


def _host_port(container: DockerContainer) -> int:
    """The loopback port the engine published for the container's 8080."""
    for _ in range(50):
        container.reload()
        bindings = container.attrs.get("NetworkSettings", {}).get("Ports", {}).get("8080/tcp")
        if bindings:
            return int(bindings[0]["HostPort"])
        time.sleep(0.02)
    raise ProvisionError("the engine published no port for the container's 8080")


def _safe(text: str) -> str:
    return "".join(c for c in text if c.isalnum() or c in "_-")[:40] or "x"
