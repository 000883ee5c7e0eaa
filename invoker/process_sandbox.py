"""The process sandbox: each action container is a child process running the runtime's proxy
on this host, under resource limits. It does NOT isolate actions from the host or from each
other; it exists for machines without a container engine, and says so when it starts."""

from __future__ import annotations

import asyncio
import contextlib
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
from invoker.sandbox import ContainerSpec, Exchange, ProvisionError

log = logging.getLogger(__name__)

RUNTIMES_DIR = Path(__file__).resolve().parent / "runtimes"
SOCKET_NAME = "action.sock"
NOBODY = 65534
WARNING = (
    "the process sandbox runs actions as local processes: it limits their resources but does "
    "NOT isolate them from this host or from each other. Use the docker sandbox in production."
)
_OOM_MARKERS = ("JavaScript heap out of memory", "MemoryError", "Cannot allocate memory")


def command_for(kind: str, memory_mb: int, workdir: Path) -> list[str]:
    """The proxy's command line. The proxy is copied into `workdir` so that an unprivileged
    child can read it wherever Homerun is installed."""
    family = kind.split(":", 1)[0]
    if family == "nodejs":
        node = shutil.which("node") or shutil.which("nodejs")
        if node is None:
            raise ProvisionError("the process sandbox needs `node` on PATH for nodejs actions")
        proxy = shutil.copy(RUNTIMES_DIR / "nodejs" / "proxy.js", workdir / "proxy.js")
        heap = max(16, memory_mb - 32)
        return [node, f"--max-old-space-size={heap}", str(proxy)]
    if family == "python":
        # The system interpreter: a virtualenv's may live where an unprivileged user cannot go.
        python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
        proxy = shutil.copy(RUNTIMES_DIR / "python" / "proxy.py", workdir / "proxy.py")
        return [python, "-u", str(proxy)]
    raise ProvisionError(f"the process sandbox cannot run '{kind}' actions")


def _limits(kind: str, memory_mb: int, drop_to_nobody: bool) -> Any:
    """preexec_fn: new session, resource limits, and (as root) an unprivileged user."""

    def apply() -> None:
        os.setsid()
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))
        if kind.startswith("python"):
            # Address space is a fair proxy of memory for CPython (not for V8, which reserves
            # large virtual ranges; node gets --max-old-space-size instead).
            limit = (memory_mb + 64) << 20
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if drop_to_nobody:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            resource.setrlimit(resource.RLIMIT_NPROC, (256, 256))

    return apply


class ProcessActionContainer:
    def __init__(
        self,
        spec: ContainerSpec,
        process: asyncio.subprocess.Process,
        workdir: Path,
        logs: LogBuffer,
    ) -> None:
        self.id = f"pid-{process.pid}"
        self.spec = spec
        self._process = process
        self._workdir = workdir
        self._logs = logs
        self._stderr_tail: deque[str] = deque(maxlen=64)
        self._proxy = ProxyClient(workdir / SOCKET_NAME)
        self._readers = [
            asyncio.create_task(self._read(process.stdout, "stdout")),
            asyncio.create_task(self._read(process.stderr, "stderr")),
        ]
        self._destroyed = False

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
        return self._process.returncode is None

    async def wait_ready(self, timeout_s: float) -> None:
        await self._proxy.wait_ready(timeout_s, alive=self.alive)

    async def init(self, payload: dict[str, Any], timeout_s: float) -> Exchange:
        return await self._proxy.post("/init", payload, timeout_s)

    async def run(self, payload: dict[str, Any], timeout_s: float) -> Exchange:
        return await self._proxy.post("/run", payload, timeout_s)

    async def collect_logs(self, limit_bytes: int, wait_s: float) -> LogCollection:
        if not self.alive():
            await asyncio.gather(*self._readers, return_exceptions=True)
            return self._logs.drain(limit_bytes)
        return await self._logs.collect(limit_bytes, wait_s)

    async def was_oom_killed(self) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._process.wait()), 0.5)
        tail = "".join(self._stderr_tail)
        return any(marker in tail for marker in _OOM_MARKERS)

    async def destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        await self._proxy.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()
        await self._process.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        shutil.rmtree(self._workdir, ignore_errors=True)


class ProcessSandbox:
    name = "process"
    isolates = False

    def __init__(self, work_root: Path | None = None, *, start_timeout_s: float = 15.0) -> None:
        self.work_root = work_root or Path(tempfile.gettempdir()) / "homerun-process"
        self.start_timeout_s = start_timeout_s
        self.drop_to_nobody = os.geteuid() == 0
        log.warning(WARNING)

    async def start(self, spec: ContainerSpec) -> ProcessActionContainer:
        workdir = self.work_root / uuid.uuid4().hex[:12]
        workdir.mkdir(parents=True)
        workdir.chmod(0o777)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "HOMERUN_SOCKET": str(workdir / SOCKET_NAME),
            **spec.env,
        }
        try:
            process = await asyncio.create_subprocess_exec(
                *command_for(spec.kind, spec.memory_mb, workdir),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=workdir,
                preexec_fn=_limits(spec.kind, spec.memory_mb, self.drop_to_nobody),
            )
        except (OSError, ProvisionError) as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            raise ProvisionError(f"could not start the action process: {exc}") from None
        container = ProcessActionContainer(spec, process, workdir, LogBuffer())
        try:
            await container.wait_ready(self.start_timeout_s)
        except BaseException:
            await container.destroy()
            raise
        return container

    async def close(self) -> None:
        return None
