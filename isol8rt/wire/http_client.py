"""The client side of one HTTP/1.1 connection, sans-io, on top of h11.

:class:`ClientConnection` turns requests into bytes and received bytes into this module's frozen events,
for any number of request/response cycles in turn (keep-alive), and hands a connection over to another
protocol after a ``101`` (:class:`Upgraded`, with the bytes that came with it). No I/O happens here: the
Docker transport (:mod:`isol8rt.docker`) and :class:`~isol8rt.RemoteIsol8` each move its bytes over their
own sockets, and each maps this module's two exceptions into its own at that boundary.

h11's exceptions stop here: a peer that breaks HTTP raises :class:`RemoteProtocolError`, one that hangs up
before its answer is complete :class:`PeerClosed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import h11

USER_AGENT = b"isol8rt"

#: Request headers, as (name, value) pairs of bytes.
Headers = Sequence[tuple[bytes, bytes]]


class RemoteProtocolError(Exception):
    """The peer sent bytes that are not a valid HTTP/1.1 answer (or an answer nothing asked for)."""


class PeerClosed(Exception):
    """The peer closed the connection before its answer was complete (or before any answer)."""


@dataclass(frozen=True, slots=True)
class Response:
    """The head of a final (non-1xx) response; its body follows as :class:`Body` events."""

    status: int
    reason: bytes
    headers: tuple[tuple[bytes, bytes], ...]

    def header(self, name: bytes) -> bytes | None:
        """The value of header ``name`` (lower case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Upgraded:
    """The peer switched the connection to another protocol (``101``): the bytes from here on are not HTTP.

    ``trailing`` holds the bytes that arrived after the 101 head: they already belong to the new protocol
    (a peer can send the head and its first frames in one write). ``closed`` tells that the peer also
    closed its side already.
    """

    response: Response
    trailing: bytes
    closed: bool


@dataclass(frozen=True, slots=True)
class Body:
    """A piece of a response body (chunked encoding already removed)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfBody:
    """The response is complete."""


class NeedData:
    """Sentinel of :meth:`ClientConnection.next_event`: feed more bytes first."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()
END_OF_BODY = EndOfBody()

ResponseEvent = Response | Upgraded | Body | EndOfBody | NeedData


class ClientConnection:
    """The client side of one HTTP/1.1 connection to ``host`` (the ``Host`` header's value).

    Send side: :meth:`request` gives the bytes of a request head (and of its body when it is ``bytes``);
    a streamed body goes out as :meth:`chunk` calls closed by :meth:`end`. Every request carries ``Host``,
    ``User-Agent`` and the connection's ``headers`` (credentials, say), then its own. Receive side: pass
    every received byte string to :meth:`receive_data` (``b""`` for EOF) and pull events with
    :meth:`next_event` until it returns :data:`NEED_DATA`. Once :attr:`reusable`,
    :meth:`start_next_cycle` readies it for the next request.
    """

    __slots__ = ("_h11", "_headers", "_eof")

    def __init__(self, host: bytes, *, headers: Headers = ()) -> None:
        self._h11 = h11.Connection(h11.CLIENT)
        self._headers = [(b"Host", host), (b"User-Agent", USER_AGENT), *headers]
        self._eof = False

    def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes | None = None,
        chunked: bool = False,
        content_type: str | None = None,
        headers: Headers = (),
    ) -> bytes:
        """The bytes of a request. With ``chunked`` the body is left open for :meth:`chunk`.

        A request with no body says ``Content-Length: 0`` unless it is a GET: an explicit length keeps
        any proxy in between from waiting for a body that never comes. ``headers`` go last (an
        ``Upgrade``, say)."""
        if chunked and body is not None:
            raise ValueError("a request body is either bytes or chunked, not both")
        fields = list(self._headers)
        if content_type is not None:
            fields.append((b"Content-Type", content_type.encode("ascii")))
        if chunked:
            fields.append((b"Transfer-Encoding", b"chunked"))
        elif body is not None or method != "GET":
            fields.append((b"Content-Length", str(len(body or b"")).encode("ascii")))
        fields.extend(headers)
        data = self._h11.send(h11.Request(method=method, target=target, headers=fields))
        if not chunked:
            if body:
                data += self._h11.send(h11.Data(data=body))
            data += self._h11.send(h11.EndOfMessage())
        return data

    def chunk(self, data: bytes) -> bytes:
        """The bytes of one chunk of a chunked body (none for empty data: that would end the body)."""
        if not data:
            return b""
        return self._h11.send(h11.Data(data=data))

    def end(self) -> bytes:
        """The bytes that end a chunked body."""
        return self._h11.send(h11.EndOfMessage())

    def receive_data(self, data: bytes | bytearray) -> None:
        """Buffer bytes received from the peer; ``b""`` means it closed its side."""
        if not data:
            self._eof = True
        # h11 annotates bytes but takes any bytes-like (it appends to a bytearray).
        self._h11.receive_data(data)  # type: ignore[arg-type]

    def next_event(self) -> ResponseEvent:
        """The next event parsed from the bytes received so far, or :data:`NEED_DATA`.

        Raises :class:`PeerClosed` when the peer closed before its answer was complete, and
        :class:`RemoteProtocolError` when its bytes are not HTTP."""
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                if self._eof:
                    raise PeerClosed("the peer hung up before its answer was complete") from None
                raise RemoteProtocolError(f"malformed HTTP: {exc}") from None
            if event is h11.NEED_DATA:
                return NEED_DATA
            if isinstance(event, h11.Data):
                return Body(bytes(event.data))
            if isinstance(event, h11.Response):
                return _response(event)
            if isinstance(event, h11.EndOfMessage):
                return END_OF_BODY
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    trailing, closed = self._h11.trailing_data
                    return Upgraded(_response(event), bytes(trailing), closed)
                continue  # 100 Continue and friends carry nothing for us
            if isinstance(event, h11.ConnectionClosed):
                raise PeerClosed("the peer closed the connection")
            # PAUSED: only after a complete response, where callers stop asking.
            raise RemoteProtocolError(f"unexpected HTTP state: {event!r}")

    @property
    def reusable(self) -> bool:
        """True when the last request and its response are complete and both sides keep the
        connection open, so it can carry the next request."""
        return self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE

    def start_next_cycle(self) -> None:
        """Ready the connection for its next request (only when :attr:`reusable`)."""
        self._h11.start_next_cycle()


def _response(event: h11.Response | h11.InformationalResponse) -> Response:
    return Response(event.status_code, bytes(event.reason), tuple((bytes(k), bytes(v)) for k, v in event.headers))
