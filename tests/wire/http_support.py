"""Helpers for tests of the HTTP client connection (here and in tests/docker)."""

from __future__ import annotations

import h11


def parse_request(data: bytes) -> tuple[h11.Request, bytes]:
    """Parse request bytes as a server would, insisting they form exactly one complete request."""
    server = h11.Connection(h11.SERVER)
    server.receive_data(data)
    request, body = None, b""
    while (event := server.next_event()) is not h11.PAUSED:
        assert event is not h11.NEED_DATA, "incomplete request"
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            break
    assert server.trailing_data == (b"", False), "bytes after the request"
    assert request is not None
    return request, body
