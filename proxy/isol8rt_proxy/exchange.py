"""The record of one request, filled in as it goes and turned into its log line at the end.

Mutable and updated live (byte counts with every chunk), because a request can end at any await: a
``reset`` cancels a tunnel mid-stream, and its log line must still say how much went through.
"""

from __future__ import annotations

import time

from isol8rt.agent.proxy_protocol import RequestLog


def text(raw: bytes) -> str:
    """Bytes from the wire as a loggable str: UTF-8 where valid, ``\\xNN`` for every other byte."""
    return raw.decode("utf-8", "backslashreplace")


class Exchange:
    __slots__ = (
        "run", "method", "host", "port", "path", "action", "reason", "status", "error",
        "bytes_in", "bytes_out", "_wall", "_start",
    )  # fmt: skip

    def __init__(self, run: str | None, method: bytes | None) -> None:
        self.run = run
        self.method = None if method is None else text(method)
        self.host: str | None = None
        self.port: int | None = None
        self.path: str | None = None
        self.action = "ALLOW"
        self.reason: str | None = None
        self.status: int | None = None  # until the client is sent a status line
        self.error: str | None = None
        self.bytes_in = 0  # origin -> client
        self.bytes_out = 0  # client -> origin
        self._wall = time.time()
        self._start = time.perf_counter()

    def block(self, status: int, reason: str) -> None:
        self.action, self.status, self.reason = "BLOCK", status, reason

    def fail(self, status: int, error: str) -> None:
        self.status, self.error = status, error

    def add_in(self, count: int) -> None:
        self.bytes_in += count

    def add_out(self, count: int) -> None:
        self.bytes_out += count

    def log(self) -> RequestLog:
        return RequestLog(
            timestamp=_iso8601(self._wall),
            run=self.run,
            method=self.method,
            host=self.host,
            port=self.port,
            path=self.path,
            action=self.action,
            reason=self.reason,
            status=self.status,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            duration_ms=round((time.perf_counter() - self._start) * 1000, 3),
            error=self.error,
        )


def _iso8601(seconds: float) -> str:
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((seconds - whole) * 1000):03d}Z"
