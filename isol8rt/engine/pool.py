"""The warm pool: started containers waiting for runs, keyed by everything that makes them differ.

``fast``: a container goes back to the pool after each run. On release the pool asks its agent for a
reset (kill every sandbox-user process and confirm none is left, wipe /sandbox, /tmp and /dev/shm, remove
SysV IPC and message queues, start the next interpreter), and the container rejoins the ready ones only
once the agent's Ready reports every required check verified (:mod:`.conversation` has the rules). A
container also retires after about ``max_uses`` runs, and before it is ``max_age_s`` seconds old (each
container's limits are drawn a little apart, so containers made together do not all retire, and get
replaced, at once; the age limit only downwards, since a configured maximum age is a promise).

How many containers a ``fast`` pool keeps: ``size`` ready (idle, being reset, or being made) beside those
out on runs, but never more in all than ``max_idle``, the most release() keeps. So a steady load settles
on a set of containers and makes no new ones: making a container costs as much CPU as dozens of runs,
and the pool must not make containers that it throws away as soon as the load dips. Once no run has
asked for a kind of container for ``shrink_after_s``, its idle ones beyond ``size`` are removed, and idle
ones past their age are replaced, so a burst's containers do not stay forever.

Containers are bound to tenants: once a container has run code for a tenant (a server's API key or its
tenant; the library's runs are all one tenant, ``None``), it is handed only to that tenant again, or
removed. This is defence in depth, for the day a reset misses something: the next run it could reach is
the same tenant's. A tenant that finds no container of its own takes a fresh one (never used), and when
the pool is full the one idle the longest, of another tenant, makes room.

``secure``: a container serves exactly one run and is removed; the pool starts replacements in the
background so the next run still finds one ready.

Creating and removing containers happens in the engine's own nursery, never on the caller's path, except
when a run finds no container ready and one must be made for it.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter, deque

import trio

from ..agent import protocol
from ..errors import EngineClosed, SandboxError
from .backend import ContainerBackend, SandboxSpec
from .container import Container

log = logging.getLogger("isol8rt.pool")

#: How long acquire() waits for a container being reset before it makes a new one instead.
_SETTLE_WAIT_S = 2.0
#: Each container's use limit is the pool's times a factor drawn from this range; its age limit, times a
#: factor between the range's low end and 1 (never older than the pool's ``max_age_s``).
_RETIRE_SPREAD = (0.75, 1.25)
#: How old a pooled container may grow by default (the engine lowers it to ``cleanup.maxContainerAgeMs``).
POOL_MAX_AGE_S = 900.0


class _Slot:
    """One kind of container: its recipe and the ready ones."""

    __slots__ = ("spec", "configure", "idle", "creating", "settling", "settling_for", "in_use", "target", "changed",
                 "last_acquired")

    def __init__(self, spec: SandboxSpec, configure: protocol.Configure, target: int) -> None:
        self.spec = spec
        self.configure = configure
        self.idle: deque[Container] = deque()
        self.creating = 0
        #: Recycled containers whose reset is under way, and how many of them each tenant will get back.
        self.settling = 0
        self.settling_for: Counter[str | None] = Counter()
        #: Containers handed out by acquire() and not released yet.
        self.in_use = 0
        self.target = target
        #: Set (and replaced) whenever a container joins ``idle`` or a reset ends: acquire() waits on it.
        self.changed = trio.Event()
        self.last_acquired = trio.current_time()

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


class Pool:
    def __init__(self, backend: ContainerBackend, nursery: trio.Nursery, *, strategy: str = "fast",
                 size: int = 1, max_idle: int = 8, max_uses: int = 1000, max_age_s: float = POOL_MAX_AGE_S,
                 shrink_after_s: float = 60.0) -> None:
        self._backend = backend
        self._nursery = nursery
        self.strategy = strategy
        self.size = size
        self.max_idle = max(max_idle, size)
        self.max_uses = max_uses
        self.max_age_s = max_age_s
        self.shrink_after_s = shrink_after_s
        self._slots: dict[str, _Slot] = {}
        self._slot_by_container: dict[str, _Slot] = {}
        #: Every container this pool made and has not removed, idle or checked out.
        self.live: dict[str, Container] = {}
        self.closed = False
        nursery.start_soon(self._shrink_when_quiet)

    def _slot(self, spec: SandboxSpec, configure: protocol.Configure) -> _Slot:
        key = spec.pool_key() + configure_key(configure)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(spec, configure, self.size)
        return slot

    async def acquire(self, spec: SandboxSpec, configure: protocol.Configure, tenant: str | None = None) -> Container:
        """A ready container for ``spec`` that ``tenant`` may use: a warm one of its own or a fresh one if
        there is one; else the first of its own being reset (a reset takes milliseconds); else one made
        now. The container is bound to ``tenant`` from here on."""
        slot = self._slot(spec, configure)
        slot.last_acquired = trio.current_time()
        while True:
            container = self._take_idle(slot, tenant)
            if container is not None:
                container.tenant = tenant
                slot.in_use += 1
                self._refill(slot)
                return container
            if not slot.settling_for[tenant]:
                break
            with trio.move_on_after(_SETTLE_WAIT_S) as waited:
                await slot.changed.wait()
            if waited.cancelled_caught:
                break  # a reset that slow is in trouble: do not wait on it
        self._make_room(slot)
        container = await self._create(slot)
        container.tenant = tenant
        slot.in_use += 1
        # Only now: a refill started earlier would compete with this caller's own container for the CPU.
        self._refill(slot)
        return container

    def _take_idle(self, slot: _Slot, tenant: str | None) -> Container | None:
        """The tenant's own idle container if it has one, else a fresh one (retiring expired ones met)."""
        fresh = None
        for container in list(slot.idle):
            if self._expired(container):
                slot.idle.remove(container)
                self._retire(container)
            elif container.uses and container.tenant == tenant:
                slot.idle.remove(container)
                return container
            elif not container.uses and fresh is None:
                fresh = container
        if fresh is not None:
            slot.idle.remove(fresh)
        return fresh

    def _make_room(self, slot: _Slot) -> bool:
        """Retire the container idle the longest (another tenant's: this one found none of its own) if the
        slot is full; True if one went."""
        if not slot.idle or len(slot.idle) + slot.settling + slot.creating + slot.in_use < self.max_idle:
            return False
        self._retire(slot.idle.popleft())
        return True

    async def release(self, container: Container) -> None:
        """Give a container back after a run: recycled (fast) or removed (secure, broken, retired).

        A recycled container rejoins the warm ones only once its agent reports the reset done and
        verified, and its next interpreter warm: acquire() never hands out one still resetting. When the
        pool is full, another tenant's container idle the longest makes room for it."""
        slot = self._slot_by_container.pop(container.container_id, None)
        if slot is not None:
            slot.in_use -= 1
        container.uses += 1
        recycle = not (self.closed or slot is None or self.strategy != "fast" or container.broken
                       or self._expired(container))
        if recycle and len(slot.idle) + slot.settling >= self.max_idle:
            recycle = self._make_room_for(slot, container.tenant)
        if recycle:
            assert slot is not None  # recycle is False without a slot
            slot.settling += 1  # from now: while the reset is asked for, it counts as coming back
            slot.settling_for[container.tenant] += 1
            try:
                with trio.CancelScope(shield=True):
                    await container.begin_reset()
            except SandboxError:
                recycle = False
                slot.settling -= 1
                slot.settling_for[container.tenant] -= 1
        if recycle:
            self._slot_by_container[container.container_id] = slot
            self._nursery.start_soon(self._settle, slot, container)
        else:
            self._retire(container)
            if slot is not None:
                self._refill(slot)

    def _make_room_for(self, slot: _Slot, tenant: str | None) -> bool:
        """Retire another tenant's idle container (the one idle the longest) so one of ``tenant``'s can
        come back; False if there is none (the returning one is removed instead)."""
        for container in slot.idle:
            if container.tenant != tenant:
                slot.idle.remove(container)
                self._retire(container)
                return True
        return False

    async def _settle(self, slot: _Slot, container: Container) -> None:
        try:
            await container.settle()
        except SandboxError as exc:
            log.warning("discarding a pooled container: %s", exc)
            self._retire(container)
            self._refill(slot)
        else:
            slot.idle.append(container)
        finally:
            slot.settling -= 1
            slot.settling_for[container.tenant] -= 1
            slot.notify()

    async def wait_settled(self) -> None:
        """Until no container of this pool is being reset: then a run gets the recycled container, never a
        new one made because the reset took a while (tests and benchmarks compare like with like)."""
        for slot in list(self._slots.values()):
            while slot.settling:
                await slot.changed.wait()

    async def keep(self, container: Container) -> None:
        """Let go of a container without removing it (the persist option: kept for inspection)."""
        self.live.pop(container.container_id, None)
        slot = self._slot_by_container.pop(container.container_id, None)
        await container.channel.aclose()
        if slot is not None:
            slot.in_use -= 1
            self._refill(slot)

    async def prewarm(self, spec: SandboxSpec, configure: protocol.Configure) -> None:
        """Fill the pool for ``spec`` and wait until it is full."""
        slot = self._slot(spec, configure)
        async with trio.open_nursery() as nursery:
            for _ in range(max(0, slot.target - len(slot.idle) - slot.creating)):
                nursery.start_soon(self._create_idle, slot)

    def _expired(self, container: Container) -> bool:
        return container.uses >= container.max_uses or trio.current_time() - container.created > container.max_age_s

    def _wanted_ready(self, slot: _Slot) -> int:
        """How many containers the slot should have ready or on their way (idle, settling, creating)."""
        if self.strategy != "fast":
            return slot.target  # a container out on a run never comes back
        # ``size`` ready, but never so many that, with those out on runs (which come back), there would
        # be more than release() keeps: those would be made only to be removed when the load dips.
        return max(0, min(slot.target, self.max_idle - slot.in_use))

    def _keeps_another(self, slot: _Slot) -> bool:
        """Whether a container just made joins the pool. Under ``fast``, one made for a load that has
        dipped meanwhile is kept all the same (up to ``max_idle`` in all): removing it now and making
        another when the load comes back is the churn this pool avoids."""
        if self.strategy != "fast":
            return len(slot.idle) + slot.creating < slot.target
        return len(slot.idle) + slot.settling + slot.creating + slot.in_use < self.max_idle

    def _refill(self, slot: _Slot) -> None:
        if self.closed:
            return
        for _ in range(self._wanted_ready(slot) - len(slot.idle) - slot.creating - slot.settling):
            self._nursery.start_soon(self._create_idle, slot)

    async def _create(self, slot: _Slot) -> Container:
        container = await Container.create(self._backend, slot.spec, slot.configure)
        if self.closed:
            await container.discard()
            raise EngineClosed("the engine stopped while a container was starting")
        self.live[container.container_id] = container
        self._slot_by_container[container.container_id] = slot
        container.max_uses = max(1, round(self.max_uses * random.uniform(*_RETIRE_SPREAD)))
        container.max_age_s = self.max_age_s * random.uniform(_RETIRE_SPREAD[0], 1.0)
        return container

    async def _create_idle(self, slot: _Slot) -> None:
        slot.creating += 1
        try:
            container = await self._create(slot)
        except Exception as exc:  # noqa: BLE001 - a failed refill must not take the engine down
            log.warning("could not start a pooled container from %s: %s", slot.spec.image, exc)
            return
        finally:
            slot.creating -= 1
        if self._keeps_another(slot):
            slot.idle.append(container)
            slot.notify()
        else:
            self._retire(container)

    def _retire(self, container: Container) -> None:
        self.live.pop(container.container_id, None)
        self._slot_by_container.pop(container.container_id, None)
        self._nursery.start_soon(container.discard)

    async def _shrink_when_quiet(self) -> None:
        while True:
            await trio.sleep(max(1.0, self.shrink_after_s / 2))
            self.shrink()

    def shrink(self) -> None:
        """Remove idle containers a quiet slot does not need: those beyond ``size`` (the longest idle
        first), and those past their age (replaced)."""
        now = trio.current_time()
        for slot in self._slots.values():
            for container in [s for s in slot.idle if self._expired(s)]:
                slot.idle.remove(container)
                self._retire(container)
            if now - slot.last_acquired >= self.shrink_after_s:
                while len(slot.idle) > slot.target:
                    self._retire(slot.idle.popleft())
            self._refill(slot)

    async def close(self) -> None:
        """Remove every container this pool made, idle or still checked out."""
        self.closed = True
        for slot in self._slots.values():
            slot.idle.clear()
        containers = list(self.live.values())
        self.live.clear()
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                for container in containers:
                    nursery.start_soon(container.discard)


def configure_key(configure: protocol.Configure) -> str:
    return hashlib.sha256(protocol.FrameEncoder().encode(configure)).hexdigest()[:16]
