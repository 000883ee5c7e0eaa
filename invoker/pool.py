"""The container pool: warm reuse per (invoking namespace, action version), prewarmed stem
cells per (kind, memory), a memory budget with LRU eviction of idle containers, and idle
expiry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from invoker.sandbox import Container, ContainerSpec, ProvisionError, Sandbox

log = logging.getLogger(__name__)

K = TypeVar("K")


@dataclass(frozen=True)
class WarmKey:
    """Containers are shared only by invocations with an equal key: same invoking namespace,
    same action, same version and code."""

    namespace: str
    action: str
    version: str
    code_digest: str | None
    kind: str
    memory_mb: int


@dataclass(frozen=True)
class StemCellSpec:
    kind: str
    image: str
    memory_mb: int
    count: int


@dataclass(eq=False)
class Slot:
    """A live container and what the pool knows of it."""

    container: Container
    memory_mb: int
    key: WarmKey | None = None  # None while it is an uninitialised stem cell
    last_used: float = field(default_factory=time.monotonic)
    uses: int = 0


@dataclass(frozen=True)
class PoolStats:
    idle: int
    busy: int
    stem_cells: int
    memory_used_mb: int


class ContainerPool:
    def __init__(
        self,
        sandbox: Sandbox,
        memory_budget_mb: int,
        *,
        idle_timeout_s: float = 600.0,
        stem_cells: tuple[StemCellSpec, ...] = (),
        stem_cell_env: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sandbox = sandbox
        self.memory_budget_mb = memory_budget_mb
        self.idle_timeout_s = idle_timeout_s
        self.stem_cells = stem_cells
        self.stem_cell_env = stem_cell_env or {}
        self._clock = clock
        self._idle: dict[WarmKey, list[Slot]] = {}
        self._stems: dict[tuple[str, int], list[Slot]] = {}
        self._busy: set[Slot] = set()
        self._used_mb = 0
        self._changed = asyncio.Condition()
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    # Acquiring and returning containers.

    async def acquire(
        self, key: WarmKey, spec: ContainerSpec, *, reuse: bool = True
    ) -> tuple[Slot, bool]:
        """A container for `key`: (slot, True) if warm (already initialised), else a stem cell
        or a new container, (slot, False), which the caller must /init. A container that died
        (killed from outside) is never handed out: it is dropped and the next one tried.
        `reuse=False` always starts a new container."""
        if self._closed:
            raise ProvisionError("the invoker is shutting down")
        if reuse:
            slot = self._take_live(self._idle, key)
            if slot is not None:
                return self._lend(slot), True
            slot = self._take_live(self._stems, (key.kind, key.memory_mb))
            if slot is not None:
                slot.key = key
                self._replenish(key.kind, key.memory_mb)
                return self._lend(slot), False
        await self._reserve(spec.memory_mb)
        try:
            container = await self.sandbox.start(spec)
        except BaseException:
            await self._unreserve(spec.memory_mb)
            raise
        return self._lend(Slot(container, spec.memory_mb, key)), False

    def _take_live(self, slots_of: dict[Any, list[Slot]], key: Any) -> Slot | None:
        """The most recently returned live container under `key`; dead ones are removed."""
        slots = slots_of.get(key)
        found = None
        while slots and found is None:
            slot = slots.pop()
            if slot.container.alive():
                found = slot
            else:
                log.warning("container %s died while idle: replacing it", slot.container.id)
                self._spawn(self._remove(slot))
        if not slots:
            slots_of.pop(key, None)
        return found

    async def _remove(self, slot: Slot) -> None:
        """Destroy a container the pool no longer holds and give its memory back."""
        await self._destroy_quietly(slot)
        await self._unreserve(slot.memory_mb)

    def _lend(self, slot: Slot) -> Slot:
        slot.uses += 1
        self._busy.add(slot)
        return slot

    async def release(self, slot: Slot) -> None:
        """Return a healthy container for reuse by the same key."""
        self._busy.discard(slot)
        if self._closed or slot.key is None:
            await self.discard(slot)
            return
        slot.last_used = self._clock()
        self._idle.setdefault(slot.key, []).append(slot)
        async with self._changed:
            self._changed.notify_all()

    async def discard(self, slot: Slot) -> None:
        """Destroy a container (after a developer or internal error, or on eviction)."""
        self._busy.discard(slot)
        try:
            await slot.container.destroy()
        finally:
            await self._unreserve(slot.memory_mb)

    # Memory budget.

    async def _reserve(self, memory_mb: int) -> None:
        if memory_mb > self.memory_budget_mb:
            raise ProvisionError(
                f"{memory_mb} MB exceeds this invoker's memory budget of {self.memory_budget_mb} MB"
            )
        async with self._changed:
            while self._used_mb + memory_mb > self.memory_budget_mb:
                victim = self._take_eviction_victim()
                if victim is None:
                    await self._changed.wait()
                    continue
                self._used_mb -= victim.memory_mb
                self._spawn(self._destroy_quietly(victim))
            self._used_mb += memory_mb

    async def _unreserve(self, memory_mb: int) -> None:
        async with self._changed:
            self._used_mb -= memory_mb
            self._changed.notify_all()

    def _take_eviction_victim(self) -> Slot | None:
        """The least recently used idle warm container; a stem cell only if none is idle."""
        candidates = [(s.last_used, k, s) for k, slots in self._idle.items() for s in slots]
        if candidates:
            _, key, slot = min(candidates, key=lambda c: c[0])
            self._idle[key].remove(slot)
            if not self._idle[key]:
                del self._idle[key]
            return slot
        for stem_key, slots in self._stems.items():
            if slots:
                slot = slots.pop(0)
                if not slots:
                    del self._stems[stem_key]
                return slot
        return None

    async def _destroy_quietly(self, slot: Slot) -> None:
        try:
            await slot.container.destroy()
        except Exception as exc:
            log.warning("could not destroy container %s: %s", slot.container.id, exc)

    # Stem cells and expiry.

    async def prewarm(self) -> None:
        """Start the configured stem cells (as far as the memory budget allows)."""
        await asyncio.gather(
            *(self._add_stem_cell(cell) for cell in self.stem_cells for _ in range(cell.count)),
            return_exceptions=True,
        )

    def _replenish(self, kind: str, memory_mb: int) -> None:
        for cell in self.stem_cells:
            if cell.kind == kind and cell.memory_mb == memory_mb:
                self._spawn(self._add_stem_cell(cell))
                return

    async def _add_stem_cell(self, cell: StemCellSpec) -> None:
        if self._closed or self._used_mb + cell.memory_mb > self.memory_budget_mb:
            return
        async with self._changed:
            self._used_mb += cell.memory_mb
        spec = ContainerSpec(
            cell.kind, cell.image, cell.memory_mb, name=f"stem_{cell.kind}", env=self.stem_cell_env
        )
        try:
            container = await self.sandbox.start(spec)
        except Exception as exc:
            log.warning("could not start a %s stem cell: %s", cell.kind, exc)
            await self._unreserve(cell.memory_mb)
            return
        if self._closed:
            await self._destroy_quietly(Slot(container, cell.memory_mb))
            await self._unreserve(cell.memory_mb)
            return
        self._stems.setdefault((cell.kind, cell.memory_mb), []).append(
            Slot(container, cell.memory_mb)
        )
        async with self._changed:
            self._changed.notify_all()

    async def evict_idle(self) -> int:
        """Destroy warm containers idle for longer than the idle timeout, and replace idle
        containers and stem cells that died."""
        horizon = self._clock() - self.idle_timeout_s
        warm = _take_where(self._idle, lambda s: s.last_used < horizon or not s.container.alive())
        stems = _take_where(self._stems, lambda s: not s.container.alive())
        for _, slot in [*warm, *stems]:
            if not slot.container.alive():
                log.warning("container %s died while idle: replacing it", slot.container.id)
            await self._remove(slot)
        for (kind, memory_mb), _ in stems:
            self._replenish(kind, memory_mb)
        return len(warm) + len(stems)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def stats(self) -> PoolStats:
        return PoolStats(
            idle=sum(len(s) for s in self._idle.values()),
            busy=len(self._busy),
            stem_cells=sum(len(s) for s in self._stems.values()),
            memory_used_mb=self._used_mb,
        )

    async def close(self) -> None:
        """Destroy every container, busy ones included."""
        self._closed = True
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        slots = [s for v in self._idle.values() for s in v]
        slots += [s for v in self._stems.values() for s in v]
        slots += list(self._busy)
        self._idle.clear()
        self._stems.clear()
        self._busy.clear()
        await asyncio.gather(*(self._destroy_quietly(s) for s in slots))
        self._used_mb = 0
        with contextlib.suppress(Exception):
            await self.sandbox.close()


def _take_where(
    slots_of: dict[K, list[Slot]], test: Callable[[Slot], bool]
) -> list[tuple[K, Slot]]:
    """Remove and return the slots that pass `test`, with their keys."""
    taken: list[tuple[K, Slot]] = []
    for key, slots in list(slots_of.items()):
        kept = []
        for slot in slots:
            if test(slot):
                taken.append((key, slot))
            else:
                kept.append(slot)
        slots[:] = kept
        if not slots:
            del slots_of[key]
    return taken
