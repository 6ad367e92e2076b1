"""Server-sent events, both ways, sans-io: the server frames events as ``data: <json>\\n\\n`` (the
reference's shape); the client splits a received body back into the data of each event."""

from __future__ import annotations

HEADERS = [(b"Cache-Control", b"no-cache"), (b"X-Accel-Buffering", b"no")]
CONTENT_TYPE = b"text/event-stream"


def frame(data: bytes) -> bytes:
    """One event whose data is ``data`` (JSON has no raw newlines, so one ``data:`` line is enough)."""
    return b"data: " + data + b"\n\n"


class EventParser:
    """Split an event stream, received in pieces cut anywhere, into the data of each event.

    Only ``data:`` fields matter to isol8rt; comments and other fields are skipped, multi-line data is
    joined with newlines, as the SSE specification says.
    """

    __slots__ = ("_buffer", "_data")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """The data of every event that ``chunk`` completes."""
        self._buffer += chunk
        events: list[bytes] = []
        while True:
            line, sep, rest = self._buffer.partition(b"\n")
            if not sep:
                return events
            self._buffer = rest
            line = line.rstrip(b"\r")
            if not line:
                if self._data:
                    events.append(b"\n".join(self._data))
                    self._data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
