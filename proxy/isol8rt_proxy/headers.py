"""What the proxy changes in the HTTP messages it relays, and the refusals it writes itself. No I/O.

Hop-by-hop headers concern one connection and are not passed on (RFC 9110 section 7.6.1): the
fixed set below and every header the ``Connection`` header names. ``Content-Length`` and
``Transfer-Encoding`` are passed on, because h11 frames the forwarded body from them (and re-frames a
response for an HTTP/1.0 client). ``Upgrade`` is dropped, so an origin never switches protocols on a
forwarded request: WebSockets go through CONNECT.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus

Header = tuple[bytes, bytes]

_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"upgrade",
    }
)


def request_headers(raw: Iterable[Header], authority: bytes) -> list[Header]:
    """The headers to send the origin: Host set from the target (RFC 9112 section 3.2.2)."""
    headers = _end_to_end(raw, extra_drop=(b"host",))
    headers.insert(0, (b"Host", authority))
    return headers


def response_headers(raw: Iterable[Header]) -> list[Header]:
    """The origin's response headers to pass to the client (h11 adds its own Connection handling)."""
    return _end_to_end(raw)


def _end_to_end(raw: Iterable[Header], extra_drop: tuple[bytes, ...] = ()) -> list[Header]:
    raw = list(raw)
    drop = set(_HOP_BY_HOP)
    drop.update(extra_drop)
    for name, value in raw:
        lowered = name.lower()
        if lowered == b"connection":
            drop.update(token.strip().lower() for token in value.split(b","))
        elif lowered == b"transfer-encoding":
            # h11 framed the body by Transfer-Encoding and ignored Content-Length; passing both on would
            # let the next hop pick the other one (request smuggling). RFC 9112 section 6.3 says drop it.
            drop.add(b"content-length")
    return [(name, value) for name, value in raw if name.lower() not in drop]


def refusal(status: int, reason: str) -> bytes:
    """A complete response the proxy gives instead of forwarding: status, the reason as plain text, close.

    Written as raw bytes, not through h11, because it must be sendable whatever state the client's
    connection is in (a request h11 rejected, or a CONNECT)."""
    body = reason.encode("utf-8", "backslashreplace") + b"\n"
    phrase = HTTPStatus(status).phrase.encode("ascii")
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s" % (status, phrase, len(body), body)
    )
