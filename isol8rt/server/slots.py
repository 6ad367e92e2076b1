"""Run slots: how many runs (and file transfers) the server carries at once, shared fairly between keys.

A slot is held from the moment a run starts until its answer has been sent, so what a run brings back
(output, output files) counts against the slot while it waits to reach a slow client. ``total`` bounds
the server's memory (see docs/server.md for the bound); ``per_key`` bounds what one key can hold, so
other keys always find slots free. Requests beyond either wait (as the reference system's queue does)
rather than being refused (up to a deadline: the request's bounded wait, see :mod:`.limits`); when a
slot frees, it goes to the waiting key that holds the fewest, the
longest-waiting request first among equals, so a key that floods the queue waits behind everyone else.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections import deque
from typing import AsyncIterator

import trio

from .limits import wait_expired


class _Waiter:
    __slots__ = ("key", "order", "granted")

    def __init__(self, key: str, order: int) -> None:
        self.key = key
        self.order = order
        self.granted = trio.Event()


class RunSlots:
    def __init__(self, total: int, per_key: int) -> None:
        if total < 1 or per_key < 1:
            raise ValueError("run slots: total and per_key must be at least 1")
        self.total = total
        self.per_key = min(per_key, total)
        self.held: dict[str, int] = {}
        self._in_use = 0
        self._waiting: dict[str, deque[_Waiter]] = {}
        self._order = itertools.count()

    @property
    def in_use(self) -> int:
        return self._in_use

    def _free_for(self, key: str) -> bool:
        return self._in_use < self.total and self.held.get(key, 0) < self.per_key

    def _take(self, key: str) -> None:
        self._in_use += 1
        self.held[key] = self.held.get(key, 0) + 1

    @contextlib.asynccontextmanager
    async def hold(self, key: str, deadline: float = math.inf, wait_s: float = 0.0) -> AsyncIterator[None]:
        """One of ``key``'s slots for the body of the ``async with``, waiting for it if need be, until
        ``deadline`` at the latest (then :class:`~.limits.Limited`, which says it waited ``wait_s``)."""
        await self._acquire(key, deadline, wait_s)
        try:
            yield
        finally:
            self._release(key)

    async def _acquire(self, key: str, deadline: float, wait_s: float) -> None:
        if self._free_for(key) and not self._waiting:
            self._take(key)
            await trio.lowlevel.checkpoint()
            return
        waiter = _Waiter(key, next(self._order))
        self._waiting.setdefault(key, deque()).append(waiter)
        self._grant()  # this key may be served at once when only others' waiters are blocked
        try:
            with trio.move_on_at(deadline):
                await waiter.granted.wait()
        except BaseException:
            if waiter.granted.is_set():
                self._release(key)  # granted as we were cancelled: hand the slot on
            else:
                self._withdraw(waiter)
            raise
        if not waiter.granted.is_set():
            self._withdraw(waiter)
            raise wait_expired(wait_s)

    def _withdraw(self, waiter: _Waiter) -> None:
        queue = self._waiting[waiter.key]
        queue.remove(waiter)
        if not queue:
            del self._waiting[waiter.key]

    def _release(self, key: str) -> None:
        self._in_use -= 1
        left = self.held[key] - 1
        if left:
            self.held[key] = left
        else:
            del self.held[key]
        self._grant()

    def _grant(self) -> None:
        """Hand free slots to waiters: the key holding fewest first, then the oldest request."""
        while self._in_use < self.total:
            eligible = [(self.held.get(key, 0), queue[0].order, key) for key, queue in self._waiting.items()
                        if self.held.get(key, 0) < self.per_key]
            if not eligible:
                return
            _, _, key = min(eligible)
            queue = self._waiting[key]
            waiter = queue.popleft()
            if not queue:
                del self._waiting[key]
            self._take(key)
            waiter.granted.set()
