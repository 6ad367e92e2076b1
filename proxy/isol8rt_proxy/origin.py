"""Origin connections for plain HTTP, and the one a client connection keeps between its requests.

Reusing the origin connection saves a connect per request (and the origin an accept), the largest
single cost of a forwarded request. Reuse is limited to what may safely be sent twice: a GET, HEAD or
OPTIONS without a body, to the same host and port, to an address the policy now in force still allows,
on a connection the origin has neither closed nor written to since (checked with poll before use). An
origin may still close it just as the request leaves (the race is inherent to HTTP keep-alive); if it
does so before sending a byte of the answer, the request is sent once more on a new connection, as
RFC 9112 section 9.3.1 allows for idempotent requests.
"""

from __future__ import annotations

import select

import h11
import trio

from isol8rt_proxy import addresses
from isol8rt_proxy.policy import Policy
from isol8rt_proxy.streams import close_now

REPLAYABLE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS"})


def replayable(request: h11.Request) -> bool:
    """Whether ``request`` may be sent again if a reused connection turns out to be closed."""
    if request.method not in REPLAYABLE_METHODS:
        return False
    return not any(
        name == b"transfer-encoding" or (name == b"content-length" and value != b"0") for name, value in request.headers
    )


class Stale(Exception):
    """A reused origin connection was closed before it answered: send the request again, on a new one."""


class Origin:
    """A connection to an origin with its h11 state."""

    __slots__ = ("host", "port", "stream", "conn", "address", "reused")

    def __init__(self, host: str, port: int, stream: trio.SocketStream, max_header_bytes: int) -> None:
        self.host = host
        self.port = port
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_header_bytes)
        try:
            self.address: addresses.IPAddress | None = addresses.parse(stream.socket.getpeername()[0])
        except OSError:  # reset already: the exchange on it fails, and it is never kept
            self.address = None
        self.reused = False

    @property
    def reusable(self) -> bool:
        """Both the request and the response ended cleanly and neither side asked to close."""
        return self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE

    def close(self) -> None:
        close_now(self.stream)


class Kept:
    """The origin connection a client connection keeps for its next request: at most one."""

    __slots__ = ("_origin",)

    def __init__(self) -> None:
        self._origin: Origin | None = None

    def keep(self, origin: Origin) -> None:
        self.close()
        origin.conn.start_next_cycle()
        self._origin = origin

    def take(self, host: str, port: int, policy: Policy) -> Origin | None:
        """The kept connection if it can serve a replayable request to ``host:port`` now; it is given
        up either way."""
        origin, self._origin = self._origin, None
        if origin is None:
            return None
        same = (origin.host, origin.port) == (host, port) and origin.address is not None
        if same and policy.check_address(origin.address) is None and _quiet(origin.stream):
            origin.reused = True
            return origin
        origin.close()
        return None

    def close(self) -> None:
        if self._origin is not None:
            self._origin.close()
            self._origin = None


def _quiet(stream: trio.SocketStream) -> bool:
    """Nothing to read: the origin has neither closed the connection nor sent anything unasked."""
    poller = select.poll()
    poller.register(stream.socket.fileno(), select.POLLIN)
    return not poller.poll(0)
