"""Sans-io demultiplexer of Docker's attach/exec stream.

When a container (or exec) has no TTY, Docker sends its stdout and stderr over one connection, each
write wrapped in an 8-byte header::

    [stream: 1 byte][0 0 0][payload length: u32 big-endian][payload]

with stream 1 for stdout, 2 for stderr (0, stdin, appears only when stdin is echoed; 3 is the daemon's
own error channel in later API versions). The socket splits and merges these frames at arbitrary byte
boundaries, so the demuxer keeps a partial header and the number of payload bytes the current frame
still owes across calls.

This runs on every read of the product's hot path: it walks frames, never bytes, and hands out
payloads with at most one copy.
"""

from __future__ import annotations

import struct

from ._errors import DockerError

STDIN = 0
STDOUT = 1
STDERR = 2

HEADER_SIZE = 8
_HEADER = struct.Struct(">II")
_LAST_STREAM = 3


class FrameDemuxer:
    """Turn the bytes of a multiplexed stream into ``(stream, payload)`` pairs.

    Adjacent payloads of the same stream within one :meth:`feed` are joined into one pair; empty
    frames produce nothing.
    """

    __slots__ = ("_partial_header", "_stream", "_remaining")

    def __init__(self) -> None:
        self._partial_header = b""
        self._stream = STDOUT
        # Payload bytes the current frame still owes; 0 means the next byte starts a header.
        self._remaining = 0

    @property
    def mid_frame(self) -> bool:
        """True when the bytes fed so far stop inside a frame (so an EOF here truncated it)."""
        return bool(self._remaining or self._partial_header)

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, bytes]]:
        """Consume ``data`` and return the payloads it completes or continues, in order."""
        view = memoryview(data)
        end = len(view)
        pos = 0
        stream = self._stream
        remaining = self._remaining
        if self._partial_header:
            pos = HEADER_SIZE - len(self._partial_header)
            header = self._partial_header + bytes(view[:pos])
            if len(header) < HEADER_SIZE:
                self._partial_header = header
                return []
            self._partial_header = b""
            stream, remaining = _parse_header(header, 0)

        # One run per stream switch: (stream, [pieces]); pieces are joined once at the end.
        runs: list[tuple[int, list[memoryview]]] = []
        while pos < end:
            if remaining:
                stop = min(pos + remaining, end)
                remaining -= stop - pos
                if runs and runs[-1][0] == stream:
                    runs[-1][1].append(view[pos:stop])
                else:
                    runs.append((stream, [view[pos:stop]]))
                pos = stop
            elif end - pos >= HEADER_SIZE:
                stream, remaining = _parse_header(view, pos)
                pos += HEADER_SIZE
            else:
                self._partial_header = bytes(view[pos:])
                break
        self._stream = stream
        self._remaining = remaining
        return [(run_stream, bytes(pieces[0]) if len(pieces) == 1 else b"".join(pieces)) for run_stream, pieces in runs]


def _parse_header(buffer: bytes | memoryview, offset: int) -> tuple[int, int]:
    word, length = _HEADER.unpack_from(buffer, offset)
    stream = word >> 24
    # Checking the padding costs nothing and turns a raw (TTY) stream, whose "lengths" would be
    # text, into an error instead of a wait for gigabytes that never come.
    if word & 0xFFFFFF or stream > _LAST_STREAM:
        raise DockerError(
            f"not a multiplexed Docker stream (frame header {bytes(buffer[offset : offset + HEADER_SIZE])!r}); "
            "was the container or exec created with Tty=true?"
        )
    return stream, length
