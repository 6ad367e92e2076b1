"""Per-key limits: how many requests a key may have in flight, and how fast it may send them.

The rate is a token bucket (``rate`` per second, up to ``burst`` saved up); a refused request learns
from ``Retry-After`` when the next token comes. Both limits are counted per principal id, so the keys of
one tenant are limited one by one, and the master key like any other.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import trio


class Limited(Exception):
    """Answer 429 with ``Retry-After: retry_after``."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class KeyLimits:
    """``rate`` requests per second (0: no rate limit) with bursts of ``burst``; at most ``concurrency``
    requests in flight per key (0: no limit)."""

    def __init__(self, *, rate: float = 0.0, burst: int | None = None, concurrency: int = 0) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1, math.ceil(rate * 2))
        self.concurrency = concurrency
        self._buckets: dict[str, tuple[float, float]] = {}
        self._in_flight: dict[str, int] = {}

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

    def enter(self, key: str) -> None:
        """Take one of ``key``'s in-flight places (give it back with :meth:`leave`); raises :class:`Limited`."""
        running = self._in_flight.get(key, 0)
        if self.concurrency and running >= self.concurrency:
            raise Limited(f"Too many concurrent requests (limit {self.concurrency} per key)", 1)
        self._take_token(key)
        self._in_flight[key] = running + 1

    def leave(self, key: str) -> None:
        left = self._in_flight[key] - 1
        if left:
            self._in_flight[key] = left
        else:
            del self._in_flight[key]

    @contextmanager
    def admit(self, key: str) -> Iterator[None]:
        """Hold one of ``key``'s places for the body of the ``with``; raises :class:`Limited`."""
        self.enter(key)
        try:
            yield
        finally:
            self.leave(key)
