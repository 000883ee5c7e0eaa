"""The process sandbox: each action container is a child process running the runtime's proxy
on this host, under resource limits. As root it keeps containers apart as Unix users: a uid,
a private directory and a private socket each. It does NOT isolate actions from the host
(network, world-readable files, /proc); it exists for machines without a container engine,
and says so when it starts."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import resource
import shutil
import signal
import sys
import tempfile
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from invoker.logs import LogBuffer, LogCollection
from invoker.proxyclient import ProxyClient
from invoker.runtimes import HOST_RUNTIMES, RUNTIMES_DIR, HostNode, host_node
from invoker.sandbox import ContainerSpec, Exchange, ProvisionError

log = logging.getLogger(__name__)

SOCKET_NAME = "action.sock"
# Each container runs as a uid of its own (when the invoker is root), so that a per-uid process
# limit bounds each container separately and destroying one can kill every process it made.
UID_BASE = 200_000
UID_SPAN = 60_000
PIDS_LIMIT = 256
STOP_SCANS = 32  # of /proc while pausing; an action whose processes outgrow them is not paused
WARNING = (
    "the process sandbox runs actions as local processes: it limits their resources and (as "
    "root) gives each container a uid of its own, but does NOT isolate them from this host. "
    "Use the docker sandbox in production."
)
_OOM_MARKERS = (
    "JavaScript heap out of memory",
    "Array buffer allocation failed",
    "MemoryError",
    "Cannot allocate memory",
)


def command_for(kind: str, memory_mb: int, workdir: Path) -> tuple[list[str], dict[str, str]]:
    """The proxy's command line and the environment it adds. The proxy is copied into
    `workdir` so that an unprivileged child can read it wherever Homerun is installed."""
    family = kind.split(":", 1)[0]
    if family == "nodejs":
        node = _host_node(kind)
        proxy = shutil.copy(RUNTIMES_DIR / "nodejs" / "proxy.js", workdir / "proxy.js")
        heap = max(16, memory_mb - 32)
        env = {"NODE_PATH": str(node.modules)} if node.modules else {}
        return [str(node.node), f"--max-old-space-size={heap}", str(proxy)], env
    if family == "python":
        # The system interpreter: a virtualenv's may live where an unprivileged user cannot go.
        python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
        proxy = shutil.copy(RUNTIMES_DIR / "python" / "proxy.py", workdir / "proxy.py")
        return [python, "-u", str(proxy)], {}
    raise ProvisionError(f"the process sandbox cannot run '{kind}' actions")


_HOST_NODES: dict[str, HostNode] = {}


def _host_node(kind: str) -> HostNode:
    """The node of `kind` on this host, found once (a missing one is looked for again: it
    may be laid out while this invoker runs)."""
    node = _HOST_NODES.get(kind) or host_node(kind)
    if node is None:
        major = kind.partition(":")[2]
        raise ProvisionError(
            f"the process sandbox has no node {major} for {kind} actions: lay it out with "
            f"`deploy/runtimes/build.sh --host {kind}` (under {HOST_RUNTIMES})"
        )
    _HOST_NODES[kind] = node
    return node


def _limits(kind: str, memory_mb: int, uid: int | None) -> Any:
    """preexec_fn: new session, resource limits, and (as root) an unprivileged uid."""

    def apply() -> None:
        os.setsid()
        os.umask(0o077)  # its socket and files are its own
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))
        # Private writable memory (heap, anonymous mappings, buffers). Unlike the address
        # space it leaves V8's large PROT_NONE reservations alone, so it suits node too.
        limit = (memory_mb + 64) << 20
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            resource.setrlimit(resource.RLIMIT_NPROC, (PIDS_LIMIT, PIDS_LIMIT))

    return apply


class ProcessActionContainer:
    def __init__(
        self,
        spec: ContainerSpec,
        process: asyncio.subprocess.Process,
        workdir: Path,
        logs: LogBuffer,
        uid: int | None,
    ) -> None:
        self.uid = uid
        self.id = f"pid-{process.pid}"
        self.spec = spec
        self._process = process
        self._workdir = workdir
        self._logs = logs
        self._stderr_tail: deque[str] = deque(maxlen=64)
        self._proxy = ProxyClient(workdir / SOCKET_NAME, owner=uid)
        self._readers = [
            asyncio.create_task(self._read(process.stdout, "stdout")),
            asyncio.create_task(self._read(process.stderr, "stderr")),
        ]
        self._destroyed = False
        self._stopped: set[int] = set()  # the processes `pause` stopped

    async def _read(self, pipe: asyncio.StreamReader | None, stream: str) -> None:
        if pipe is None:
            return
        while chunk := await pipe.read(65536):
            text = chunk.decode("utf-8", errors="replace")
            if stream == "stderr":
                self._stderr_tail.append(text)
            self._logs.feed(stream, text)
        self._logs.close()

    def alive(self) -> bool:
        return not self._destroyed and self._process.returncode is None and _running(self.pid)

    @property
    def pid(self) -> int:
        return self._process.pid

    async def wait_ready(self, timeout_s: float) -> None:
        try:
            await self._proxy.wait_ready(timeout_s, alive=self.alive)
        except ProvisionError as exc:
            await asyncio.sleep(0.05)  # let the readers take the last words
            tail = "".join(self._stderr_tail).strip()[-500:]
            raise ProvisionError(f"{exc}: {tail}" if tail else str(exc)) from None

    async def init(self, payload: dict[str, Any], timeout_s: float) -> Exchange:
        self._logs.expect_request("/init", payload)
        return await self._proxy.post("/init", payload, timeout_s)

    async def run(self, payload: dict[str, Any], timeout_s: float) -> Exchange:
        self._logs.expect_request("/run", payload)
        return await self._proxy.post("/run", payload, timeout_s)

    async def collect_logs(
        self, limit_bytes: int, wait_s: float, activation: str | None = None
    ) -> LogCollection:
        if not self.alive():
            await asyncio.gather(*self._readers, return_exceptions=True)
            return self._logs.drain(limit_bytes, activation)
        return await self._logs.collect(limit_bytes, wait_s, activation)

    async def was_oom_killed(self) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._process.wait()), 0.5)
        tail = "".join(self._stderr_tail)
        return any(marker in tail for marker in _OOM_MARKERS)

    async def pause(self) -> None:
        # Off the event loop: finding the container's processes reads all of /proc.
        self._stopped = await asyncio.to_thread(_stop_all, self.pid, self.uid)

    async def resume(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)  # the proxy's group first: it takes the request
        for pid in self._stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._stopped = set()

    async def destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        await self._proxy.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        for pid in self._stopped:  # paused: those that left its group too
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()
        if self.uid is not None:
            await _kill_all_of(self.uid)
        await self._process.wait()
        # The readers end at EOF once every holder of the pipes is dead; never wait long.
        _, pending = await asyncio.wait(self._readers, timeout=1.0)
        for reader in pending:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        transport = getattr(self._process, "_transport", None)  # closes the pipes too
        if transport is not None:
            transport.close()
        shutil.rmtree(self._workdir, ignore_errors=True)


def _running(pid: int) -> bool:
    """Whether any thread of process `pid` still runs: a killed node's main thread is a
    zombie while others still serve its socket, and asyncio may not have reaped it yet."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        states = [_state(Path(f"/proc/{pid}/task/{task}/stat")) for task in tasks]
    except OSError:  # gone, or reaped while we looked
        return False
    return any(state not in ("Z", "X", "") for state in states)


def _state(stat: Path) -> str:
    try:
        return stat.read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return ""


def _stop_all(session: int, uid: int | None) -> set[int]:
    """SIGSTOP every process of a container (the proxy leads `session`; `uid` is the
    container's own, if it has one) and return them: scans of /proc stop those not yet
    stopped until one finds none. A stopped process forks no more (the kernel undoes a fork
    that a signal interrupts), so each scan can only find what the previous ones missed."""
    os.killpg(session, signal.SIGSTOP)
    stopped: set[int] = set()
    for _ in range(STOP_SCANS):
        found = _members(session, uid) - stopped
        if not found:
            return stopped
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        stopped |= found
    raise OSError(f"the processes of session {session} kept multiplying while being paused")


def _members(session: int, uid: int | None) -> set[int]:
    """The processes of `session` or of `uid`, and their descendants (a child that made a
    session of its own). Without a uid of its own, a process that left the session and lost
    its parent is not found."""
    parents: dict[int, int] = {}
    members: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            ppid, sid = int(fields[1]), int(fields[3])  # after the state: ppid, pgrp, session
            owner = entry.stat().st_uid if uid is not None else None
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
        pid = int(entry.name)
        parents[pid] = ppid
        if sid == session or (uid is not None and owner == uid):
            members.add(pid)
    while children := {pid for pid, ppid in parents.items() if ppid in members} - members:
        members |= children
    return members


def _become(uid: int) -> None:
    os.setgid(uid)
    os.setuid(uid)


async def _kill_all_of(uid: int) -> None:
    """Kill every process of `uid`, including those that left the process group: a child
    running as that uid sends SIGKILL to -1 (all it may signal), itself last."""
    try:
        killer = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", "kill -9 -1",
            preexec_fn=functools.partial(_become, uid),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await killer.wait()
    except OSError as exc:
        log.warning("could not kill the processes of uid %d: %s", uid, exc)


def _traversable_by_others(path: Path) -> bool:
    """Whether every existing ancestor of `path` lets other users through."""
    for parent in path.resolve().parents:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            return False
    return True


class ProcessSandbox:
    name = "process"
    isolates = False

    def __init__(self, work_root: Path | None = None, *, start_timeout_s: float = 15.0) -> None:
        self.work_root = work_root or Path(tempfile.gettempdir()) / "homerun-process"
        self.start_timeout_s = start_timeout_s
        if os.geteuid() == 0 and not _traversable_by_others(self.work_root):
            fallback = Path(tempfile.gettempdir()) / "homerun-process"
            log.warning(
                "%s is not reachable by unprivileged users (a parent lacks o+x): action "
                "processes run in %s instead", self.work_root, fallback,
            )  # fmt: skip
            self.work_root = fallback
        self._root = os.geteuid() == 0
        self._next_uid = UID_BASE + int.from_bytes(os.urandom(2), "big") % UID_SPAN
        log.warning(WARNING)

    async def start(self, spec: ContainerSpec) -> ProcessActionContainer:
        if not self.work_root.exists():
            self.work_root.mkdir(parents=True)
            self.work_root.chmod(0o711)  # the unprivileged child must reach its directory
        workdir = self.work_root / uuid.uuid4().hex[:12]
        workdir.mkdir(parents=True, mode=0o700)  # private: its HOME, TMPDIR and socket
        uid = self._allocate_uid() if self._root else None
        if uid is not None:
            os.chown(workdir, uid, uid)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "HOMERUN_SOCKET": str(workdir / SOCKET_NAME),
            **spec.env,
        }
        try:
            command, runtime_env = command_for(spec.kind, spec.memory_mb, workdir)
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**runtime_env, **env},
                cwd=workdir,
                preexec_fn=_limits(spec.kind, spec.memory_mb, uid),
            )
        except (OSError, ProvisionError) as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            raise ProvisionError(f"could not start the action process: {exc}") from None
        container = ProcessActionContainer(spec, process, workdir, LogBuffer(), uid)
        try:
            await container.wait_ready(self.start_timeout_s)
        except BaseException:
            await container.destroy()
            raise
        return container

    def _allocate_uid(self) -> int:
        uid = self._next_uid
        self._next_uid = UID_BASE + (uid - UID_BASE + 1) % UID_SPAN
        return uid

    async def close(self) -> None:
        return None
