"""Per-key limits: how many requests a key may have in flight, how many more may wait for a turn (and
for how long), and how fast it may send them.

A key's requests beyond ``concurrency`` wait in its queue, as the reference system's requests wait for
its semaphore, rather than being refused: a fan-out client written for the reference works unchanged.
The queue is bounded twice: at most ``queue_depth`` requests wait (one more is answered 429 at once),
and none waits longer than ``queue_wait_s`` (then 429). Both answers carry ``Retry-After``. A waiting
request has been read up to its head only (:meth:`enter` is called on the head; the connection reads
the body once :meth:`wait` returns), so a full queue costs the server its heads, not its bodies.

The rate is a token bucket (``rate`` per second, up to ``burst`` saved up); a refused request learns
from ``Retry-After`` when the next token comes. Every limit is counted per principal id, so the keys of
one tenant are limited one by one, and the master key like any other.
"""

from __future__ import annotations

import math
from collections import deque
from contextlib import contextmanager
from typing import Iterator

import trio

#: Requests one key may have waiting for a turn, beyond those in flight (``serve --queue-depth``).
DEFAULT_QUEUE_DEPTH = 64
#: The longest a request waits for its turn, in the key's queue and for a run slot (``--queue-wait``).
DEFAULT_QUEUE_WAIT_S = 120.0


class Limited(Exception):
    """Answer 429 with ``Retry-After: retry_after``."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class Ticket:
    """A request's place in its key's queue: granted its turn, or still waiting until ``deadline``."""

    __slots__ = ("deadline", "granted")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.granted = trio.Event()


def wait_expired(wait_s: float) -> Limited:
    return Limited(f"Too many concurrent requests: waited {wait_s:g} s for a turn; retry later", 1)


class KeyLimits:
    """``rate`` requests per second (0: no rate limit) with bursts of ``burst``; at most ``concurrency``
    requests in flight per key (0: no limit), and up to ``queue_depth`` more waiting at most
    ``queue_wait_s`` each (0: as long as it takes) for their turn."""

    def __init__(self, *, rate: float = 0.0, burst: int | None = None, concurrency: int = 0,
                 queue_depth: int = 0, queue_wait_s: float = DEFAULT_QUEUE_WAIT_S) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1, math.ceil(rate * 2))
        self.concurrency = concurrency
        self.queue_depth = queue_depth
        self.queue_wait_s = queue_wait_s
        self._buckets: dict[str, tuple[float, float]] = {}
        self._in_flight: dict[str, int] = {}
        self._queues: dict[str, deque[Ticket]] = {}

    def deadline(self) -> float:
        """When a request that starts waiting now must have its turn (``inf``: no bound)."""
        return trio.current_time() + self.queue_wait_s if self.queue_wait_s > 0 else math.inf

    def _take_token(self, key: str) -> None:
        if self.rate <= 0:
            return
        now = trio.current_time()  # trio's clock: tests run the bucket under MockClock
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            retry = max(1, math.ceil((1.0 - tokens) / self.rate))
            raise Limited(f"Rate limit exceeded ({self.rate:g} requests per second per key)", retry)
        self._buckets[key] = (tokens - 1.0, now)

    def enter(self, key: str) -> Ticket | None:
        """Take one of ``key``'s in-flight places (None; give it back with :meth:`leave`), or a place in
        its queue (a :class:`Ticket` to :meth:`wait` on); raises :class:`Limited` when neither is free."""
        running = self._in_flight.get(key, 0)
        if self.concurrency and running >= self.concurrency:
            if self.waiting(key) >= self.queue_depth:
                raise Limited(f"Too many concurrent requests (limit {self.concurrency} per key, and "
                              f"{self.queue_depth} waiting)", 1)
            self._take_token(key)
            ticket = Ticket(self.deadline())
            self._queues.setdefault(key, deque()).append(ticket)
            return ticket
        self._take_token(key)
        self._in_flight[key] = running + 1
        return None

    async def wait(self, key: str, ticket: Ticket) -> None:
        """Wait for a queued request's turn; on return it holds an in-flight place (give it back with
        :meth:`leave`). Raises :class:`Limited` when the wait runs past the ticket's deadline."""
        try:
            with trio.move_on_at(ticket.deadline):
                await ticket.granted.wait()
        except BaseException:
            if ticket.granted.is_set():
                self.leave(key)  # granted as we were cancelled: hand the place on
            else:
                self._withdraw(key, ticket)
            raise
        if not ticket.granted.is_set():
            self._withdraw(key, ticket)
            raise wait_expired(self.queue_wait_s)

    def _withdraw(self, key: str, ticket: Ticket) -> None:
        queue = self._queues[key]
        queue.remove(ticket)
        if not queue:
            del self._queues[key]

    def leave(self, key: str) -> None:
        """Give back an in-flight place: to the key's longest-waiting request, if one waits."""
        queue = self._queues.get(key)
        if queue:
            ticket = queue.popleft()
            if not queue:
                del self._queues[key]
            ticket.granted.set()  # the place passes to it: the count in flight stays the same
            return
        left = self._in_flight[key] - 1
        if left:
            self._in_flight[key] = left
        else:
            del self._in_flight[key]

    def waiting(self, key: str) -> int:
        return len(self._queues.get(key, ()))

    @contextmanager
    def admit(self, key: str) -> Iterator[None]:
        """Hold one of ``key``'s places for the body of the ``with``, without waiting for one; raises
        :class:`Limited` when none is free now."""
        ticket = self.enter(key)
        if ticket is not None:
            self._withdraw(key, ticket)
            raise Limited(f"Too many concurrent requests (limit {self.concurrency} per key)", 1)
        try:
            yield
        finally:
            self.leave(key)
