"""The container pool: warm reuse per (invoking namespace, action version), prewarmed stem
cells per (kind, memory), a memory budget with LRU eviction of idle containers, pausing of
idle containers and idle expiry."""

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

FINISHING_WAIT_S = 0.5  # at most, for a container of the key that is about to come back


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
    """A container and what the pool knows of it. A warm container serves up to `capacity`
    activations at once (the action's `limits.concurrency`); `active` are running in it."""

    memory_mb: int
    key: WarmKey | None = None  # None while it is an uninitialised stem cell
    capacity: int = 1
    active: int = 0
    last_used: float = field(default_factory=time.monotonic)
    uses: int = 0
    _container: Container | None = None  # None while it starts
    initialized: bool = False  # /init succeeded: activations may run in it without one
    gone: bool = False  # out of the pool: those waiting to share it must look elsewhere
    finishing: bool = False  # its activation has its result, and its logs are being read
    dropped: bool = False  # destroyed, its memory given back
    paused: bool = False  # frozen while idle: it must be resumed before it runs anything
    # Set once it is started and initialised, or gone: those sharing it wait for this.
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    # Held while it is being paused or resumed.
    transition: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def container(self) -> Container:
        assert self._container is not None, "the container is still starting"
        return self._container

    @property
    def dead(self) -> bool:
        """Started, and died since (killed from outside, crashed)."""
        return self._container is not None and not self._container.alive()

    @property
    def idle(self) -> bool:
        return self.active == 0 and self.initialized


@dataclass(frozen=True)
class PoolStats:
    idle: int  # warm containers running nothing
    busy: int  # containers running at least one activation (or starting for one)
    stem_cells: int
    memory_used_mb: int
    paused: int = 0  # of the idle ones


class ContainerPool:
    def __init__(
        self,
        sandbox: Sandbox,
        memory_budget_mb: int,
        *,
        idle_timeout_s: float = 600.0,
        pause_grace_s: float = 10.0,
        stem_cells: tuple[StemCellSpec, ...] = (),
        stem_cell_env: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sandbox = sandbox
        self.memory_budget_mb = memory_budget_mb
        self.idle_timeout_s = idle_timeout_s
        self.pause_grace_s = pause_grace_s  # 0: never pause
        self.stem_cells = stem_cells
        self.stem_cell_env = stem_cell_env or {}
        self._clock = clock
        self._warm: dict[WarmKey, list[Slot]] = {}  # every container of a key, busy or not
        self._stems: dict[tuple[str, int], list[Slot]] = {}
        self._used_mb = 0
        self._changed = asyncio.Condition()
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    # Acquiring and returning containers.

    async def acquire(
        self, key: WarmKey, spec: ContainerSpec, *, capacity: int = 1, reuse: bool = True
    ) -> tuple[Slot, bool]:
        """A container for `key`: (slot, True) if it is initialised, else (slot, False): a stem
        cell or a new container, which the caller must /init and then report `initialized`.

        In order: a container of the key with room (up to `capacity` activations share one;
        joining one that is still starting waits for it), a stem cell of the kind and memory,
        a new container within the memory budget (evicting the least recently used idle ones
        of other keys), else wait until one of these frees up. A paused container is resumed
        first. A container that died, or cannot be resumed, is never handed out.
        `reuse=False` always starts a new container."""
        if spec.memory_mb > self.memory_budget_mb:
            raise ProvisionError(
                f"{spec.memory_mb} MB exceeds this invoker's memory budget of "
                f"{self.memory_budget_mb} MB"
            )
        while True:
            if self._closed:
                raise ProvisionError("the invoker is shutting down")
            shared = self._room(key) if reuse else None
            if shared is not None:
                self._lend(shared)
                if not shared.initialized:
                    await shared.settled.wait()
                if shared.initialized and not shared.gone and await self._awake(shared):
                    return shared, True
                shared.active -= 1  # its start, /init or resumption failed: look again
                continue
            if reuse and self._finishing(key):
                # Back in a moment (its logs are being read): better than a cold start.
                async with self._changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), FINISHING_WAIT_S)
                continue
            stem = self._take_stem(key.kind, key.memory_mb) if reuse else None
            if stem is not None:
                stem.key, stem.capacity = key, capacity
                self._warm.setdefault(key, []).append(self._lend(stem))
                self._replenish(key.kind, key.memory_mb)
                return stem, False
            if await self._reserve(key, spec.memory_mb):
                return await self._start(key, spec, capacity), False

    def _room(self, key: WarmKey) -> Slot | None:
        """The key's container to share: live, with room, the busiest first (so that
        activations pack into few containers), then the most recently used."""
        best = None
        for slot in list(self._warm.get(key, ())):
            if slot.dead and slot.active == 0:
                log.warning("container %s died while idle: replacing it", slot.container.id)
                self._forget(slot)
                self._spawn(self._remove(slot))
            elif not slot.dead and not slot.gone and slot.active < slot.capacity:
                rank = (slot.initialized, slot.active, slot.last_used)
                if best is None or rank > (best.initialized, best.active, best.last_used):
                    best = slot
        return best

    async def _awake(self, slot: Slot) -> bool:
        """Whether `slot` can run an activation, resumed first if it is paused or being
        paused; one that cannot be resumed goes, as a dead one does."""
        if not slot.paused and not slot.transition.locked():
            return True
        async with slot.transition:
            if slot.paused and not slot.gone:
                try:
                    await slot.container.resume()
                except Exception as exc:
                    log.warning(
                        "could not resume container %s: %s: replacing it", slot.container.id, exc
                    )
                    self._forget(slot)
                    self._spawn(self._remove(slot))
                    return False
                slot.paused = False
        return not slot.gone

    def _finishing(self, key: WarmKey) -> bool:
        return any(s.finishing and not s.gone for s in self._warm.get(key, ()))

    def finish(self, slot: Slot) -> None:
        """The caller has its activation's result and reads the logs: the container will be
        released (or discarded) shortly, and another activation of its key waits for it."""
        slot.finishing = True

    def retire(self, slot: Slot) -> None:
        """The container must go once the caller is done with it (`discard`): from now on no
        other activation joins it."""
        self._forget(slot)

    async def _start(self, key: WarmKey, spec: ContainerSpec, capacity: int) -> Slot:
        """A new container for `key` (its memory reserved), shared once it is initialised."""
        slot = Slot(spec.memory_mb, key, capacity)
        self._warm.setdefault(key, []).append(self._lend(slot))
        try:
            slot._container = await self.sandbox.start(spec)
        except BaseException:
            self._forget(slot)
            await self._unreserve(spec.memory_mb)
            raise
        return slot

    def initialized(self, slot: Slot) -> None:
        """The caller's /init of `slot` succeeded: others may share it now."""
        slot.initialized = True
        slot.settled.set()

    def _take_stem(self, kind: str, memory_mb: int) -> Slot | None:
        """The most recently started live stem cell of the kind and memory; dead ones are
        removed, and replaced."""
        slots = self._stems.get((kind, memory_mb))
        found = None
        while slots and found is None:
            slot = slots.pop()
            if not slot.dead:
                found = slot
            else:
                log.warning("stem cell %s died: replacing it", slot.container.id)
                slot.dropped = True
                self._used_mb -= slot.memory_mb  # now, so that its replacement fits
                self._spawn(self._destroy_quietly(slot))
                self._replenish(kind, memory_mb)
        if not slots:
            self._stems.pop((kind, memory_mb), None)
        return found

    def _forget(self, slot: Slot) -> None:
        """Take `slot` out of the pool's books; those waiting to share it look elsewhere."""
        slot.gone = True
        slot.settled.set()
        slots = self._warm.get(slot.key) if slot.key is not None else None
        if slots is not None and slot in slots:
            slots.remove(slot)
            if not slots:
                del self._warm[slot.key]  # type: ignore[arg-type]

    async def _remove(self, slot: Slot) -> None:
        """Destroy a container the pool no longer holds and give its memory back."""
        slot.dropped = True
        await self._destroy_quietly(slot)
        await self._unreserve(slot.memory_mb)

    def _lend(self, slot: Slot) -> Slot:
        slot.uses += 1
        slot.active += 1
        return slot

    async def release(self, slot: Slot) -> None:
        """An activation is done with a healthy container: it stays warm for its key (a
        healthy container has been initialised)."""
        slot.active -= 1
        slot.last_used = self._clock()
        slot.finishing = False
        if not slot.initialized:
            self.initialized(slot)
        if self._closed and not slot.gone:
            await self._drop(slot)
            return
        async with self._changed:
            self._changed.notify_all()

    async def unused(self, slot: Slot) -> None:
        """The caller took `slot` but runs nothing in it after all: warm, it goes back as
        it was; a container nothing was initialised in goes."""
        if slot.initialized:
            slot.active -= 1
            async with self._changed:
                self._changed.notify_all()
        else:
            await self.discard(slot)

    async def discard(self, slot: Slot) -> None:
        """An activation is done with a container that must go (after a developer or internal
        error): it is destroyed, and activations still running in it fail."""
        slot.active -= 1
        await self._drop(slot)

    async def _drop(self, slot: Slot) -> None:
        """Destroy a container and give its memory back, once however often asked."""
        if slot.dropped:
            return
        slot.dropped = True
        self._forget(slot)
        try:
            if slot._container is not None:
                await slot._container.destroy()
        finally:
            await self._unreserve(slot.memory_mb)

    # Memory budget.

    async def _reserve(self, key: WarmKey, memory_mb: int) -> bool:
        """Reserve memory for a new container of `key`, evicting idle ones if need be: True;
        False after waiting for a change (a container came back, memory was freed), or when
        one of the key's own containers is idle again, so that the caller looks for a
        container to share first (evicting it to start its twin would be churn)."""
        async with self._changed:
            while self._used_mb + memory_mb > self.memory_budget_mb:
                if any(slot.idle for slot in self._warm.get(key, ())):
                    return False
                victim = self._take_eviction_victim()
                if victim is None:
                    await self._changed.wait()
                    return False
                self._used_mb -= victim.memory_mb
                self._spawn(self._destroy_quietly(victim))
            self._used_mb += memory_mb
            return True

    async def _unreserve(self, memory_mb: int) -> None:
        async with self._changed:
            self._used_mb -= memory_mb
            self._changed.notify_all()

    def _take_eviction_victim(self) -> Slot | None:
        """The least recently used idle warm container; a stem cell only if none is idle."""
        candidates = [s for slots in self._warm.values() for s in slots if s.idle]
        if candidates:
            slot = min(candidates, key=lambda s: s.last_used)
            self._forget(slot)
            return slot
        for stem_key, slots in self._stems.items():
            if slots:
                slot = slots.pop(0)
                if not slots:
                    del self._stems[stem_key]
                return slot
        return None

    async def _destroy_quietly(self, slot: Slot) -> None:
        if slot._container is None:
            return
        try:
            await slot._container.destroy()
        except Exception as exc:
            log.warning("could not destroy container %s: %s", slot._container.id, exc)

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
        stem = Slot(cell.memory_mb, _container=container)
        if self._closed:
            await self._remove(stem)
            return
        self._stems.setdefault((cell.kind, cell.memory_mb), []).append(stem)
        async with self._changed:
            self._changed.notify_all()

    async def evict_idle(self) -> int:
        """Destroy warm containers idle for longer than the idle timeout, and replace idle
        containers and stem cells that died."""
        horizon = self._clock() - self.idle_timeout_s
        warm = _take_where(
            self._warm, lambda s: s.active == 0 and (s.dead or s.last_used < horizon)
        )
        stems = _take_where(self._stems, lambda s: s.dead)
        for _, slot in [*warm, *stems]:
            slot.gone = True
            if slot.dead:
                log.warning("container %s died while idle: replacing it", slot.container.id)
            await self._remove(slot)
        for (kind, memory_mb), _ in stems:
            self._replenish(kind, memory_mb)
        return len(warm) + len(stems)

    async def pause_idle(self) -> int:
        """Pause the warm containers that have run nothing for longer than the pause grace
        (never stem cells: they have run no action code), so that nothing an action left
        behind runs between its activations; how many were paused. One that cannot be paused
        is removed."""
        if not self.pause_grace_s:
            return 0
        horizon = self._clock() - self.pause_grace_s
        due = [
            slot
            for slots in self._warm.values()
            for slot in slots
            if slot.idle and not slot.paused and not slot.dead and slot.last_used < horizon
        ]
        return sum(await asyncio.gather(*(self._pause(slot) for slot in due)))

    async def _pause(self, slot: Slot) -> bool:
        async with slot.transition:
            if not slot.idle or slot.paused or slot.gone:  # taken, or gone, meanwhile
                return False
            try:
                await slot.container.pause()
            except Exception as exc:
                if not slot.gone:
                    log.warning(
                        "could not pause container %s: %s: removing it", slot.container.id, exc
                    )
                    self._forget(slot)
                    await self._remove(slot)
                return False
            slot.paused = True
            return True

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def stats(self) -> PoolStats:
        warm = [slot for slots in self._warm.values() for slot in slots]
        return PoolStats(
            idle=sum(1 for slot in warm if slot.idle),
            busy=sum(1 for slot in warm if slot.active > 0),
            stem_cells=sum(len(s) for s in self._stems.values()),
            memory_used_mb=self._used_mb,
            paused=sum(1 for slot in warm if slot.paused),
        )

    def containers(self, key: WarmKey) -> int:
        """How many containers `key` has (busy, idle or starting)."""
        return len(self._warm.get(key, ()))

    async def close(self) -> None:
        """Destroy every container, busy ones included."""
        self._closed = True
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        slots = [s for v in self._warm.values() for s in v]
        slots += [s for v in self._stems.values() for s in v]
        self._warm.clear()
        self._stems.clear()
        for slot in slots:
            slot.gone = slot.dropped = True
            slot.settled.set()
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
