"""The least of HTTP/1.1 that ``isol8rt run``'s call to the local engine needs, over a blocking socket.

The rest of isol8rt speaks HTTP through h11 (:mod:`isol8rt.wire.http_client`); importing h11 compiles some
forty regular expressions and builds its event classes, a tenth of a warm run's budget. Here the peer is
our own server, and the exchange is fixed: a request with a whole body, then an answer whose body has a
``Content-Length`` or is chunked (the event stream). Anything else is :class:`ProtocolError`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

#: Longest answer head accepted, and the most read at once.
MAX_HEAD = 64 * 1024
_RECEIVE = 64 * 1024


class ProtocolError(Exception):
    """The peer's bytes are not the HTTP this module reads, or it hung up before its answer was complete."""


class Connection:
    """One keep-alive connection: :meth:`send` a request, read its :meth:`head`, then all of its
    :meth:`body` before the next request."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""
        self.reusable = True

    def send(self, method: str, target: str, body: bytes | None = None) -> None:
        lines = [f"{method} {target} HTTP/1.1", "Host: localhost", "User-Agent: isol8rt"]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (body or b""))

    def _more(self) -> None:
        data = self.sock.recv(_RECEIVE)
        if not data:
            raise ProtocolError("the peer hung up before its answer was complete")
        self._buffer += data

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            if len(self._buffer) > MAX_HEAD:
                raise ProtocolError("a line of the answer is too long")
            self._more()
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def _take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._more()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def head(self) -> tuple[int, dict[str, str]]:
        """The status and headers (names in lower case) of the answer; 1xx answers are skipped."""
        while True:
            while b"\r\n\r\n" not in self._buffer:
                if len(self._buffer) > MAX_HEAD:
                    raise ProtocolError("the answer's head is too long")
                self._more()
            head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
            status_line, *fields = head.decode("latin-1").split("\r\n")
            version, _, rest = status_line.partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise ProtocolError(f"not an HTTP/1.1 answer: {status_line[:80]!r}")
            headers = {}
            for field in fields:
                name, sep, value = field.partition(":")
                if not sep:
                    raise ProtocolError(f"a malformed header: {field[:80]!r}")
                headers[name.strip().lower()] = value.strip()
            if not 100 <= int(code) < 200:
                if headers.get("connection", "").lower() == "close":
                    self.reusable = False
                return int(code), headers

    def body(self, headers: dict[str, str]) -> Iterator[bytes]:
        """The answer's body, piece by piece as it arrives (chunked encoding removed)."""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size_text = self._line().split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ProtocolError(f"a malformed chunk size: {size_text[:20]!r}") from None
                if size == 0:
                    while self._line():  # trailers, up to the empty line
                        pass
                    return
                yield self._take(size)
                if self._take(2) != b"\r\n":
                    raise ProtocolError("a chunk does not end with CRLF")
        length = headers.get("content-length")
        if length is None or not length.isdigit():
            raise ProtocolError("an answer with neither a length nor chunks")
        if int(length):
            yield self._take(int(length))
