"""The docker sandbox: each action container is a hardened docker container whose proxy
listens on a unix socket in a directory bind-mounted from the invoker's host.

What an action can write is bounded: the root file system is read-only, /tmp is a tmpfs of
`tmpfs_mb`, and the socket directory, the one host path mounted writable, is sealed (no longer
writable by the container's user) once the proxy made its socket and the invoker holds it,
before any action code runs.

A blackbox action is a user's image serving /init and /run on TCP 8080, as OpenWhisk's
runtime images do, in a network namespace of its own (loopback only, unless egress is
allowed). It is reached through a relay: a second container, of Homerun's node image, that
joins that network namespace and nothing else of it, and pipes each connection made to its unix
socket (in a sealed socket directory like any other) to 127.0.0.1:8080. So no port is
published, no container address is ever used, and the invoker needs neither root nor the
host's PID namespace to reach it (entering the namespace itself would take both).

Containers of our runtime images reach the Homerun API, and only it, through the invoker's
API relay (invoker/apirelay.py), whose socket directory every one of them mounts read-only.
Blackbox containers do not: their images carry no proxy to listen for them."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container as DockerContainer
from docker.types import LogConfig
from docker.utils.socket import STDERR

from invoker.apirelay import API_HOST_IN_CONTAINER, API_PORT_IN_CONTAINER, ApiRelay
from invoker.logs import LogBuffer, LogCollection
from invoker.protocol import image_allowed, platform_env
from invoker.proxyclient import ProxyClient
from invoker.sandbox import ContainerSpec, Exchange, ImageMissing, ImageRefused, ProvisionError

log = logging.getLogger(__name__)

SOCKET_DIR_IN_CONTAINER = "/run/homerun"
SOCKET_NAME = "action.sock"
_SOCKET_IN_CONTAINER = f"{SOCKET_DIR_IN_CONTAINER}/{SOCKET_NAME}"
API_DIR_IN_CONTAINER = "/run/homerun-api"
API_SOCKET_NAME = "api.sock"
LABEL = "homerun.invoker"
# The user of our runtime images and of the relay; never the invoker's, which owns the socket
# directories (an owner could make a sealed directory writable again).
ACTION_UID = 1000
BLACKBOX_KIND = "blackbox"
BLACKBOX_PORT = 8080
RELAY_IMAGE = "homerun/action-nodejs-v18:latest"
RELAY_MEMORY = "64m"
# Pipes each connection to its socket to the blackbox's port, both ways, half-closes included;
# one that the action refuses (it is not listening yet) is closed unanswered.
RELAY = f"""
const fs = require('fs');
const net = require('net');
const socket = process.env.HOMERUN_SOCKET;
fs.rmSync(socket, {{force: true}});
const server = net.createServer({{allowHalfOpen: true}}, (client) => {{
  const action = net.connect({{host: '127.0.0.1', port: {BLACKBOX_PORT}, allowHalfOpen: true}});
  client.on('error', () => action.destroy());
  action.on('error', () => client.destroy());
  client.pipe(action);
  action.pipe(client);
}});
server.on('error', (err) => {{
  process.stderr.write(`homerun relay: ${{err.message}}\\n`);
  process.exit(1);
}});
server.listen(socket, () => fs.chmodSync(socket, 0o666));
process.on('SIGTERM', () => process.exit(0));
"""


class DockerActionContainer:
    def __init__(
        self,
        spec: ContainerSpec,
        container: DockerContainer,
        relay: DockerContainer | None,
        socket_dir: Path,
        logs: LogBuffer,
        output: _Output,
        proxy: ProxyClient,
        api: ApiRelay | None = None,
    ) -> None:
        self.id = container.id or ""
        self._api = api
        self.spec = spec
        self._container = container
        self._relay = relay
        self._socket_dir = socket_dir
        self._logs = logs
        self._output = output
        self._proxy = proxy
        self._destroyed = False

    def alive(self) -> bool:
        # The attach stream ends as soon as the container's process does.
        return not self._destroyed and not self._output.ended

    async def wait_ready(self, timeout_s: float) -> None:
        await self._proxy.wait_ready(timeout_s, alive=self.alive)

    async def init(self, payload: dict[str, Any], timeout_s: float) -> Exchange:
        self._logs.expect_request("/init", payload)
        return await self._proxy.post("/init", payload, timeout_s)

    async def run(self, payload: dict[str, Any], timeout_s: float) -> Exchange:
        if self._api is not None:
            # The action reaches the API through the relay's door in its own loopback.
            self._api.learn(str(payload.get("api_host") or ""))
            payload = {**payload, "api_host": API_HOST_IN_CONTAINER}
        self._logs.expect_request("/run", payload)
        return await self._proxy.post("/run", payload, timeout_s)

    async def collect_logs(
        self, limit_bytes: int, wait_s: float, activation: str | None = None
    ) -> LogCollection:
        if self._output.ended:
            # The container is gone: take what arrived, no sentinels will follow.
            await asyncio.sleep(0.05)
            return self._logs.drain(limit_bytes, activation)
        return await self._logs.collect(limit_bytes, wait_s, activation)

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

    async def pause(self) -> None:
        # The engine freezes the container's cgroup: every process in it, whatever it forked.
        await asyncio.to_thread(self._container.pause)

    async def resume(self) -> None:
        await asyncio.to_thread(self._container.unpause)

    async def destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        await self._proxy.close()
        self._output.close()

        try:
            await asyncio.to_thread(_remove, self._relay, self._container)
        except docker.errors.DockerException as exc:
            log.warning("could not remove container %s: %s", self.id[:12], exc)
        shutil.rmtree(self._socket_dir, ignore_errors=True)


class DockerSandbox:
    """Starts hardened containers: non-root, all capabilities dropped, no-new-privileges,
    read-only root with a small /tmp, a pids limit, memory without swap, no network unless
    `network` is set, and the Homerun API at `api_url` (else the activations' API host)
    through the API relay either way. Blackbox actions may use only the images
    `blackbox_images` allows; they keep their image's user and a writable root bounded to
    `tmpfs_mb` where the engine's storage driver can bound it, else a read-only one
    (`blackbox_writable_root`: unbounded)."""

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
        blackbox_images: tuple[str, ...] = (),
        blackbox_writable_root: bool = False,
        relay_image: str = RELAY_IMAGE,
        api_url: str | None = None,
        client: docker.DockerClient | None = None,
    ) -> None:
        if os.geteuid() == ACTION_UID:
            raise ProvisionError(
                f"the docker sandbox cannot run as uid {ACTION_UID}, its containers' user: "
                "they could make their socket directories writable again"
            )
        self.socket_root = socket_root
        self.invoker_id = invoker_id
        self.network = network
        self.pids_limit = pids_limit
        self.tmpfs_mb = tmpfs_mb
        self.start_timeout_s = start_timeout_s
        self.blackbox_images = blackbox_images
        self.blackbox_writable_root = blackbox_writable_root
        self.relay_image = relay_image
        # Not a container's socket directory: those are named by 12 hex digits.
        self.api = ApiRelay(socket_root / "api" / API_SOCKET_NAME, api_url)
        self._root_quota: bool | None = None  # whether the engine can bound a root; unknown
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
        """Remove containers (and relays) a previous run of this invoker left behind."""
        leftovers = self._client.containers.list(
            all=True, filters={"label": f"{LABEL}={self.invoker_id}"}
        )
        for container in leftovers:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)
        return len(leftovers)

    def _hardened(self, name: str, memory: str, kind: str) -> dict[str, Any]:
        """What every container gets, the relay included."""
        return {
            "name": name,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "pids_limit": self.pids_limit,
            "mem_limit": memory,
            "memswap_limit": memory,
            "labels": {LABEL: self.invoker_id, "homerun.kind": kind},
            "log_config": LogConfig(type="json-file", config={"max-size": "1m", "max-file": "1"}),
            "ulimits": [docker.types.Ulimit(name="nofile", soft=1024, hard=1024)],
        }

    def _unprivileged(self, socket_dir: Path) -> dict[str, Any]:
        """Our own images' containers: read-only, a sized /tmp, the socket directory."""
        return {
            "user": f"{ACTION_UID}:{ACTION_UID}",
            "read_only": True,
            "tmpfs": self._tmp(),
            "volumes": {
                str(socket_dir): {"bind": SOCKET_DIR_IN_CONTAINER, "mode": "rw"},
                str(self.api.path.parent): {"bind": API_DIR_IN_CONTAINER, "mode": "ro"},
            },
        }

    def _create(
        self, spec: ContainerSpec, socket_dir: Path
    ) -> tuple[DockerContainer, Any, DockerContainer | None]:
        """Create and start the container (and a blackbox's relay); it, its attach socket, on
        which its output arrives from the start, and the relay."""
        blackbox = spec.kind == BLACKBOX_KIND
        if blackbox and not image_allowed(spec.image, self.blackbox_images):
            raise ImageRefused(f"image {spec.image} is not allowed for blackbox actions")
        name = f"hr_{_safe(self.invoker_id)}_{_safe(spec.name)}_{uuid.uuid4().hex[:8]}"
        config = {
            **self._hardened(name, f"{spec.memory_mb}m", spec.kind),
            "cpu_shares": max(2, spec.memory_mb * 1024 // 256 // 4),
            "network_mode": "bridge" if self.network else "none",
        }
        if blackbox:  # its own user and root: no socket directory, it listens on TCP
            config["environment"] = dict(spec.env)
        else:
            config |= self._unprivileged(socket_dir)
            config["environment"] = {
                **spec.env,
                "HOMERUN_SOCKET": _SOCKET_IN_CONTAINER,
                **platform_env(API_HOST_IN_CONTAINER),
                "HOMERUN_API_SOCKET": f"{API_DIR_IN_CONTAINER}/{API_SOCKET_NAME}",
                "HOMERUN_API_PORT": str(API_PORT_IN_CONTAINER),
            }
        try:
            if blackbox:
                container = self._create_blackbox(spec.image, config)
            else:
                container = self._client.containers.create(spec.image, **config)
        except docker.errors.ImageNotFound:
            raise ImageMissing(
                f"image {spec.image} is not present (nothing is ever pulled)"
            ) from None
        except docker.errors.DockerException as exc:
            raise ProvisionError(f"could not create a container: {exc}") from None
        params = {"stdout": 1, "stderr": 1, "stream": 1, "logs": 1}
        sock, relay = None, None
        try:
            sock = self._client.api.attach_socket(str(container.id), params=params)
            container.start()
            if blackbox:
                relay = self._client.containers.create(
                    self.relay_image, **self._relay_config(name, container, socket_dir)
                )
                relay.start()
        except docker.errors.DockerException as exc:
            if sock is not None:
                sock.close()
            with contextlib.suppress(docker.errors.DockerException):
                _remove(relay, container)
            raise ProvisionError(f"could not start a container: {exc}") from None
        return container, sock, relay

    def _create_blackbox(self, image: str, config: dict[str, Any]) -> DockerContainer:
        """A blackbox's writable root bounded to `tmpfs_mb` where the storage driver can
        (overlay2 on xfs with project quotas, btrfs, zfs). Elsewhere its root is read-only
        with a sized /tmp, as our own containers run, unless `blackbox_writable_root` lets it
        write to the engine's storage without a bound (images that write to their root)."""
        if self._root_quota is not False:
            size = {"size": f"{self.tmpfs_mb}m"}
            try:
                container = self._client.containers.create(image, storage_opt=size, **config)
            except docker.errors.APIError as exc:
                if "storage-opt" not in str(exc):
                    raise
                log.warning(
                    "the engine cannot bound a container's root file system (%s): %s",
                    exc.explanation,
                    "blackbox containers get an unbounded writable root, as configured"
                    if self.blackbox_writable_root
                    else "blackbox containers get a read-only root and a sized /tmp",
                )  # fmt: skip
                self._root_quota = False
            else:
                self._root_quota = True
                return container
        if not self.blackbox_writable_root:
            config = {**config, "read_only": True, "tmpfs": self._tmp()}
        return self._client.containers.create(image, **config)

    def _tmp(self) -> dict[str, str]:
        return {"/tmp": f"rw,nosuid,nodev,size={self.tmpfs_mb}m,mode=1777"}

    def _relay_config(
        self, name: str, blackbox: DockerContainer, socket_dir: Path
    ) -> dict[str, Any]:
        """The relay shares the blackbox's network namespace only (not its file system or
        processes), as our own containers run, without the blackbox's resources."""
        return {
            **self._hardened(f"{name}_relay", RELAY_MEMORY, "relay"),
            **self._unprivileged(socket_dir),
            "network_mode": f"container:{blackbox.id}",
            "entrypoint": ["/usr/bin/node"],
            "command": ["--max-old-space-size=16", "-e", RELAY],
            "environment": {"HOMERUN_SOCKET": _SOCKET_IN_CONTAINER},
        }

    async def start(self, spec: ContainerSpec) -> DockerActionContainer:
        await self.api.start()
        socket_dir = self.socket_root / uuid.uuid4().hex[:12]
        socket_dir.mkdir(parents=True)
        socket_dir.chmod(0o777)  # for the proxy (or relay) to make its socket in, until sealed
        logs = LogBuffer()
        try:
            container, sock, relay = await asyncio.to_thread(self._create, spec, socket_dir)
        except BaseException:
            shutil.rmtree(socket_dir, ignore_errors=True)
            raise
        try:
            output = await _Output.attach(sock, logs)
        except BaseException:
            await asyncio.to_thread(_remove, relay, container)
            shutil.rmtree(socket_dir, ignore_errors=True)
            raise
        proxy = ProxyClient(socket_dir / SOCKET_NAME, any_answer=spec.kind == BLACKBOX_KIND)
        api = None if spec.kind == BLACKBOX_KIND else self.api
        action = DockerActionContainer(spec, container, relay, socket_dir, logs, output, proxy, api)
        try:
            await action.wait_ready(self.start_timeout_s)
            # Sealed: the socket is made and pinned, no action code has run. The container's
            # user is not the owner: it can create, replace or remove nothing here any more.
            socket_dir.chmod(0o755)
        except BaseException:
            await action.destroy()
            raise
        return action

    async def close(self) -> None:
        await self.api.close()
        await asyncio.to_thread(self._client.close)


class _Output(asyncio.Protocol):
    """A container's output, read on the event loop from the engine's attach stream: frames
    of an 8-byte header (stream, three zero bytes, big-endian length) and the bytes written.
    Each chunk the socket delivers is demultiplexed into the log buffer as it arrives."""

    HEADER = 8

    def __init__(self, logs: LogBuffer) -> None:
        self._logs = logs
        self._pending = bytearray()
        self._decoders = {
            stream: codecs.getincrementaldecoder("utf-8")(errors="replace")
            for stream in ("stdout", "stderr")
        }
        self._transport: asyncio.BaseTransport | None = None
        self.ended = False  # the engine closes the stream when the container's process ends

    @classmethod
    async def attach(cls, sock: Any, logs: LogBuffer) -> _Output:
        """Take over the SDK's attach socket: a file-like wrapper around a connected socket,
        closed here so that the transport alone owns the socket (a socket closes only once
        every wrapper of it has)."""
        raw = getattr(sock, "_sock", sock)
        if raw is not sock:
            sock.close()
        raw.setblocking(False)
        output = cls(logs)
        await asyncio.get_running_loop().connect_accepted_socket(lambda: output, sock=raw)
        return output

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        pending = self._pending
        pending += data
        start = 0
        while len(pending) - start >= self.HEADER:
            length = int.from_bytes(pending[start + 4 : start + 8], "big")
            end = start + self.HEADER + length
            if end > len(pending):
                break
            stream = "stderr" if pending[start] == STDERR else "stdout"
            text = self._decoders[stream].decode(bytes(pending[start + self.HEADER : end]))
            if text:
                self._logs.feed(stream, text)
            start = end
        del pending[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        if exc is not None:
            log.debug("log stream ended: %s", exc)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _remove(*containers: DockerContainer | None) -> None:
    for container in containers:
        if container is not None:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


def _safe(text: str) -> str:
    return "".join(c for c in text if c.isalnum() or c in "_-")[:40] or "x"
