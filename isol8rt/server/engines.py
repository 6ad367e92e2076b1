"""The engines behind the server: one long-lived engine for the server's own options, and a few more for
clients that tightened them.

Options that shape the container (memory, CPU, pids, network, sizes, secrets, output cap) are fixed per
:class:`~isol8rt.DockerIsol8`, so a run with tighter options needs an engine of its own. Those engines
are made on first use, keyed by their effective options, capped in number (``max_extra``) and stopped
when idle for ``idle_s``; the least recently used idle one makes room for a new one. An engine that
holds sessions or runs is never evicted. The base engine lives as long as the server and keeps its warm
pool: every plain ephemeral request, from every key, goes through it.

Since a held engine cannot be evicted, one owner (a key, or a tenant) may hold at most ``per_owner`` of
the tightened engines at once, by runs or sessions; so one key cannot pin every variant other keys need.

Given a nursery (the server's), every engine runs in it (``nursery.start(engine.run)``), so their service
tasks are the server's children; without one (tests), each is started on its own (``engine.start()``).
"""

from __future__ import annotations

import logging
from typing import Callable

import msgspec
import trio

from ..engine import DockerIsol8
from ..types import Isol8Options
from .limits import Limited
from .policy import options_key

log = logging.getLogger("isol8rt.server")


class _Entry:
    __slots__ = ("engine", "key", "active", "sessions", "last_used", "lock", "started", "holders")

    def __init__(self, engine: DockerIsol8, key: bytes) -> None:
        self.engine = engine
        self.key = key
        self.active = 0
        self.sessions = 0
        self.last_used = trio.current_time()
        self.lock = trio.Lock()
        self.started = False
        #: Owner -> how many leases and sessions it holds here.
        self.holders: dict[str, int] = {}

    def hold(self, owner: str | None, delta: int) -> None:
        if owner is None:
            return
        count = self.holders.get(owner, 0) + delta
        if count > 0:
            self.holders[owner] = count
        else:
            self.holders.pop(owner, None)

    @property
    def idle(self) -> bool:
        return self.active == 0 and self.sessions == 0


class _Lease:
    """``async with engines.lease(options) as engine``: a class, not a generator, since every request
    goes through one."""

    __slots__ = ("_engines", "_options", "_owner", "_entry")

    def __init__(self, engines: EngineSet, options: Isol8Options, owner: str | None) -> None:
        self._engines = engines
        self._options = options
        self._owner = owner
        self._entry: _Entry | None = None

    async def __aenter__(self) -> DockerIsol8:
        entry = self._entry = await self._engines._entry_for(self._options, self._owner)
        entry.active += 1
        entry.hold(self._owner, +1)
        return entry.engine

    async def __aexit__(self, *exc_info: object) -> None:
        entry = self._entry
        assert entry is not None  # __aexit__ runs only after __aenter__ returned
        entry.active -= 1
        entry.hold(self._owner, -1)
        entry.last_used = trio.current_time()


class EngineSet:
    """``on_new_engine`` is told each engine's id before it makes any container (orphan tracking);
    ``node_id`` is the node whose containers they all are."""

    def __init__(self, base: Isol8Options, *, max_extra: int = 4, per_owner: int = 0, idle_s: float = 300.0,
                 extra_pool_size: int = 1, on_new_engine: Callable[[str], None] = lambda engine_id: None,
                 node_id: str | None = None) -> None:
        self.base_options = base
        #: The node every engine's containers are labelled with (see :mod:`isol8rt.node`).
        self.node_id = node_id
        self.max_extra = max_extra
        #: Tightened engines one owner may hold at once (0: no limit).
        self.per_owner = per_owner
        self.idle_s = idle_s
        self.extra_pool_size = extra_pool_size
        self._on_new_engine = on_new_engine
        self._base_key = options_key(base)
        self._entries: dict[bytes, _Entry] = {}
        self._closed = False
        self._nursery: trio.Nursery | None = None

    async def start(self, prewarm: list[str] | bool = False, *, nursery: trio.Nursery | None = None) -> DockerIsol8:
        """Start the base engine (and fill its pool with ``prewarm``); with a ``nursery``, this engine and
        every later one run in it until :meth:`stop`."""
        self._nursery = nursery
        entry = self._make(self._base_key, self.base_options)
        await self._start(entry.engine)
        if prewarm:
            await entry.engine.start(prewarm=prewarm)  # on a running engine, start() only fills the pool
        entry.started = True
        return entry.engine

    async def _start(self, engine: DockerIsol8) -> None:
        if self._nursery is None:
            await engine.start()
        else:
            await self._nursery.start(engine.run)

    @property
    def base(self) -> DockerIsol8:
        return self._entries[self._base_key].engine

    def _make(self, key: bytes, options: Isol8Options) -> _Entry:
        engine = DockerIsol8(options, node_id=self.node_id)
        self._on_new_engine(engine.engine_id)
        entry = self._entries[key] = _Entry(engine, key)
        return entry

    async def _entry_for(self, options: Isol8Options, owner: str | None = None) -> _Entry:
        if self._closed:
            from ..errors import EngineClosed

            raise EngineClosed("the server is shutting down")
        # The common case, no client options, is the very object the server was configured with.
        key = self._base_key if options is self.base_options else options_key(options)
        if key != self._base_key and owner is not None and self.per_owner:
            held = [k for k, e in self._entries.items() if k != self._base_key and k != key and owner in e.holders]
            if len(held) >= self.per_owner:
                raise Limited(f"This key already uses {len(held)} other option sets (limit {self.per_owner}); "
                              "finish those runs or end those sessions, or use the server's options", 5)
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) - 1 >= self.max_extra:
                await self._evict_one()
            entry = self._entries.get(key)  # made by another request while the eviction waited?
        if entry is None:
            # Tightened engines keep a small pool: they serve one client's settings, not everyone.
            entry = self._make(key, msgspec.structs.replace(options, pool_size=self.extra_pool_size))
        if not entry.started:
            async with entry.lock:  # one start, even when many requests arrive for a new engine at once
                if not entry.started:
                    await self._start(entry.engine)
                    entry.started = True
        return entry

    async def _evict_one(self) -> None:
        idle = [e for k, e in self._entries.items() if k != self._base_key and e.idle]
        if not idle:
            raise Limited(f"Too many distinct option sets in use (limit {self.max_extra}); retry shortly", 5)
        victim = min(idle, key=lambda e: e.last_used)
        del self._entries[victim.key]
        await victim.engine.stop()

    def lease(self, options: Isol8Options, owner: str | None = None) -> _Lease:
        """The engine for ``options``, held (by ``owner``) for the body of an ``async with``: it is not
        evicted meanwhile."""
        return _Lease(self, options, owner)

    def hold_session(self, engine: DockerIsol8, delta: int, owner: str | None = None) -> None:
        """Count a session made (+1) or closed (-1) in ``engine`` by ``owner``, which keeps it from eviction."""
        for entry in self._entries.values():
            if entry.engine is engine:
                entry.sessions += delta
                entry.hold(owner, delta)
                entry.last_used = trio.current_time()
                return

    async def prune(self, *, force: bool = False) -> int:
        """Stop tightened engines idle for longer than ``idle_s`` (with ``force``, every idle one); how
        many were stopped."""
        cutoff = float("inf") if force else trio.current_time() - self.idle_s
        stale = [e for k, e in self._entries.items() if k != self._base_key and e.idle and e.last_used < cutoff]
        for entry in stale:
            del self._entries[entry.key]
            await entry.engine.stop()
        return len(stale)

    @property
    def active(self) -> int:
        """Leases held now (runs in flight outside sessions, and sessions being created)."""
        return sum(entry.active for entry in self._entries.values())

    @property
    def engines(self) -> list[DockerIsol8]:
        return [entry.engine for entry in self._entries.values()]

    @property
    def containers(self) -> list[str]:
        return [cid for entry in self._entries.values() for cid in entry.engine.containers]

    async def stop(self) -> None:
        """Stop every engine (each removes every container it made), all at once."""
        self._closed = True
        entries = list(self._entries.values())
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                for entry in entries:
                    nursery.start_soon(entry.engine.stop)
