"""What Docker shows of the invoker's containers, and the `docker run` baseline of a start.

The invoker labels each container `homerun.invoker=<id>` and names it
`hr_<invoker>_<action or stem_<kind>>_<8 hex>` (invoker/docker_sandbox.py)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from bench.rawhttp import Connection, Endpoint, format_request

LABEL = "homerun.invoker"
# The hardening the docker sandbox applies, so that the baseline starts the same container.
HARDENING = [
    "--read-only", "--tmpfs", "/tmp:rw,size=64m", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges", "--pids-limit", "256", "--network", "none",
    "--memory", "256m", "--memory-swap", "256m", "--user", "1000:1000",
]  # fmt: skip
HEALTH = format_request(Endpoint(uds=Path("/")), "GET", "/health", {}, b"")


def _safe(text: str) -> str:
    # As the docker sandbox shortens names into container names.
    return "".join(c for c in text if c.isalnum() or c in "_-")[:40] or "x"


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def names(invoker_id: str) -> list[str]:
    """Every container of this invoker (`docker ps --filter label=homerun.invoker=<id>`)."""
    return _docker(
        "ps", "--filter", f"label={LABEL}={invoker_id}", "--format", "{{.Names}}"
    ).split()


def of_action(invoker_id: str, action: str, listed: list[str] | None = None) -> list[str]:
    """The containers the invoker started for `action` (a stem cell keeps its own name)."""
    pattern = re.compile(
        rf"hr_{re.escape(_safe(invoker_id))}_{re.escape(_safe(action))}_[0-9a-f]{{8}}"
    )
    return [n for n in (names(invoker_id) if listed is None else listed) if pattern.fullmatch(n)]


def stem_cells(invoker_id: str, kind: str) -> list[str]:
    """Containers started as stem cells of `kind`, used since or not."""
    return of_action(invoker_id, f"stem_{kind}")


def socket_of(name: str) -> Path:
    """The proxy socket of a container, in the directory the invoker bind-mounts."""
    mounts = json.loads(_docker("inspect", "--format", "{{json .Mounts}}", name))
    return Path(mounts[0]["Source"]) / "action.sock"


async def healthy(sock: Path) -> bool:
    """Whether the proxy behind `sock` answers `GET /health` with 200."""
    try:
        connection = await Connection.open(Endpoint(uds=sock))
    except OSError:
        return False
    try:
        status, _ = await asyncio.wait_for(connection.exchange(HEALTH), 1.0)
        return status == 200
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
        return False
    finally:
        connection.close()


def remove_all(invoker_id: str) -> int:
    """Remove what an invoker of this run left behind (only containers with its label)."""
    left = _docker("ps", "-aq", "--filter", f"label={LABEL}={invoker_id}").split()
    if left:
        subprocess.run(["docker", "rm", "-f", *left], capture_output=True, check=False)
    return len(left)


async def docker_run_to_first_answer(image: str, timeout_s: float = 60.0) -> float:
    """Milliseconds from `docker run` of `image` (hardened as the sandbox does) until its
    proxy first answers `GET /health`."""
    sockets = Path(tempfile.mkdtemp(prefix="hrb", dir="/tmp"))  # short: a socket path
    sockets.chmod(0o777)
    name = f"hrbench_{uuid.uuid4().hex[:8]}"
    sock = sockets / "action.sock"
    try:
        started = time.perf_counter()
        await asyncio.to_thread(
            _docker, "run", "-d", "--rm", "--name", name, *HARDENING,
            "-v", f"{sockets}:/run/homerun", image,
        )  # fmt: skip
        while not await healthy(sock):
            if time.perf_counter() - started > timeout_s:
                raise RuntimeError(f"{image} did not answer within {timeout_s:.0f} s")
            await asyncio.sleep(0.002)
        return (time.perf_counter() - started) * 1000
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        shutil.rmtree(sockets, ignore_errors=True)
