"""The sandbox interface: where action containers come from. `docker` and `process` implement
it; one behaviour suite (tests/invoker/test_sandboxes.py) runs against both."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from invoker.logs import LogCollection


@dataclass(frozen=True)
class ContainerSpec:
    """What to start: an image (or runtime kind) with a memory limit."""

    kind: str
    image: str
    memory_mb: int
    name: str  # a readable hint; implementations make it unique
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Exchange:
    """One HTTP exchange with the proxy. `status` is None when the connection dropped;
    `delivered` is False when no connection could be made, so the action never saw it."""

    status: int | None
    body: bytes
    elapsed_ms: int
    timed_out: bool = False
    delivered: bool = True


class ProvisionError(Exception):
    """A container could not be started."""


class ImageMissing(ProvisionError):
    """The image is not present on this host (nothing is ever pulled)."""


class ImageRefused(ProvisionError):
    """The operator does not allow blackbox actions to use the image."""


class Container(Protocol):
    """A started action container, reached through its proxy's HTTP protocol."""

    id: str
    spec: ContainerSpec

    def alive(self) -> bool:
        """Whether the container still runs (False once it exited or was killed)."""

    async def init(self, payload: dict[str, Any], timeout_s: float) -> Exchange:
        """POST /init."""

    async def run(self, payload: dict[str, Any], timeout_s: float) -> Exchange:
        """POST /run."""

    async def collect_logs(
        self, limit_bytes: int, wait_s: float, activation: str | None = None
    ) -> LogCollection:
        """The log lines written since the last collection, up to the sentinels; with
        `activation`, the lines its proxy tagged as that activation's (it shares the
        container with others)."""

    async def was_oom_killed(self) -> bool:
        """Whether the container was killed for exceeding its memory limit."""

    async def pause(self) -> None:
        """Freeze every process of the container, so that nothing an action left behind
        (timers, children it forked) runs while it is idle; raises when it cannot. Its proxy
        answers nothing until `resume`."""

    async def resume(self) -> None:
        """Let a paused container's processes go on where they stopped (its action stays
        initialised); raises when it cannot."""

    async def destroy(self) -> None:
        """Stop and remove the container, paused or not; safe to call twice."""


class Sandbox(Protocol):
    """A factory of containers."""

    name: str
    isolates: bool  # False for the process sandbox: it does not isolate actions

    async def start(self, spec: ContainerSpec) -> Container:
        """Start a container and wait until its proxy answers; ProvisionError otherwise."""

    async def close(self) -> None:
        """Release the sandbox's own resources (containers are destroyed by the pool)."""
