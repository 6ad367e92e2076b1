"""Sans-io HTTP/1.1 for the server, on top of h11.

:class:`ServerConnection` wraps one h11 server state machine: received bytes become a request's head
(:meth:`~ServerConnection.next_head`) and then, once the server has decided to hear it, its body
(:meth:`~ServerConnection.next_body`, capped); answers become bytes. The split is what lets the server
authenticate a request before it reads a byte of the body, and send ``100 Continue`` only then. No I/O
happens here; ``server.py`` moves the bytes. h11's exceptions stop here: a client that breaks HTTP
becomes a :class:`ProtocolError` carrying the status (and error kind) to answer with.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

import h11

from ..wire.errors import kind_of_status

SERVER_HEADER = b"isol8rt"
JSON = b"application/json"

#: The largest request head accepted (request line and headers), as h11 counts it.
MAX_HEAD = 16 * 1024


class HTTPError(Exception):
    """A request answered with ``status`` and ``{"error": message, "kind": kind}`` (plus ``headers``);
    ``kind`` is the status's own (:func:`~isol8rt.wire.errors.kind_of_status`) unless one is given."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None, *,
                 kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []
        self.kind = kind or kind_of_status(status)


class ProtocolError(HTTPError):
    """The client sent something that cannot be answered normally; answer ``status`` and close."""


@dataclass(frozen=True, slots=True)
class Request:
    """One request: its head and, once read, its whole body."""

    method: str
    path: str
    query: dict[str, str]
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        """The value of header ``name`` (lower case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


class NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


class Closed:
    """The client closed the connection between requests (the normal end of a keep-alive)."""

    def __repr__(self) -> str:
        return "CLOSED"


NEED_DATA = NeedData()
CLOSED = Closed()


class ServerConnection:
    """The server side of one HTTP/1.1 connection, for any number of requests in turn (keep-alive).

    Receive side: :meth:`receive_data` every byte string read (``b""`` at EOF); :meth:`next_head` until
    it gives a :class:`Request` (its body unread); then, for a request the server will hear,
    :meth:`take_continue` and :meth:`next_body` until it gives the body. Send side: :meth:`response` for
    a whole answer; :meth:`start_body`, :meth:`chunk` and :meth:`end_stream` for one sent in pieces (of a
    known length, or as they are made: SSE); :meth:`accept_upgrade` to hand the connection over to
    another protocol (WebSocket).
    """

    __slots__ = ("_h11", "_max_body", "_reading", "_body", "_size")

    def __init__(self, max_body: int) -> None:
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._max_body = max_body
        #: A request's head has been taken and its body not yet read to the end.
        self._reading = False
        self._body: list[bytes] = []
        self._size = 0

    def receive_data(self, data: bytes) -> None:
        self._h11.receive_data(data)

    def _next_event(self):
        try:
            return self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            # h11 knows the fitting status: 431 for an oversized head, 400 otherwise.
            raise ProtocolError(exc.error_status_hint, f"Bad request: {exc}") from None

    def next_head(self) -> Request | NeedData | Closed:
        """The next request's head (a :class:`Request` with no body yet), :data:`NEED_DATA`, or
        :data:`CLOSED`; raises :class:`ProtocolError`. A declared body over the limit is refused here,
        without reading it."""
        event = self._next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED:
            return NEED_DATA
        if type(event) is h11.ConnectionClosed:
            return CLOSED
        # Between requests h11 gives a server a Request, NEED_DATA or ConnectionClosed, nothing else.
        self._reading = True
        self._body, self._size = [], 0
        length = _content_length(event.headers)
        if length is not None and length > self._max_body:
            raise ProtocolError(413, f"Request body too large (limit {self._max_body} bytes)")
        return _request(event)

    def next_body(self) -> bytes | NeedData:
        """The whole body of the request whose head was taken, or :data:`NEED_DATA`; raises
        :class:`ProtocolError` (413 past the limit, 400 if the client hangs up midway)."""
        while True:
            event = self._next_event()
            if event is h11.NEED_DATA:
                return NEED_DATA
            kind = type(event)
            if kind is h11.Data:
                self._size += len(event.data)
                if self._size > self._max_body:
                    raise ProtocolError(413, f"Request body too large (limit {self._max_body} bytes)")
                self._body.append(bytes(event.data))
            elif kind is h11.EndOfMessage:
                self._reading = False
                body, self._body = b"".join(self._body), []
                return body
            elif kind is h11.ConnectionClosed:
                raise ProtocolError(400, "Bad request: the connection closed in the middle of a request")

    @property
    def body_unread(self) -> bool:
        """The client may still be sending the current request's body: once answered, the connection
        cannot carry another request."""
        return self._h11.their_state is h11.SEND_BODY

    def take_continue(self) -> bytes:
        """A ``100 Continue`` to send if the client waits for one before its body (``Expect:
        100-continue``, which curl sends for bodies over 1 KiB). The server asks for it only once the
        request is admitted: a client without a valid key is never invited to send its body."""
        if self._reading and self._h11.they_are_waiting_for_100_continue:
            return self._h11.send(h11.InformationalResponse(status_code=100, headers=[]))
        return b""

    # --------------------------------------------------------------------------------------- answers

    def response(self, status: int, body: bytes, *, content_type: bytes = JSON,
                 headers: list[tuple[bytes, bytes]] | None = None, close: bool = False) -> bytes:
        """The bytes of a whole answer."""
        head = [(b"Content-Type", content_type), (b"Content-Length", str(len(body)).encode())]
        data = self._send_head(status, head + (headers or []), close)
        if body:
            data += self._h11.send(h11.Data(data=body))
        return data + self._h11.send(h11.EndOfMessage())

    def start_body(self, status: int, content_type: bytes, length: int | None,
                   headers: list[tuple[bytes, bytes]] | None = None, *, close: bool = False) -> bytes:
        """The head of an answer whose body follows in :meth:`chunk` calls: ``length`` bytes of it, or
        (None) as much as comes, in chunked encoding."""
        head = [(b"Content-Type", content_type)]
        if length is not None:
            head.append((b"Content-Length", str(length).encode()))
        return self._send_head(status, head + (headers or []), close)

    def chunk(self, data: bytes) -> bytes:
        return self._h11.send(h11.Data(data=data)) if data else b""

    def end_stream(self) -> bytes:
        return self._h11.send(h11.EndOfMessage())

    def accept_upgrade(self, headers: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
        """The bytes of a ``101 Switching Protocols``, and the bytes already received past the request
        (they belong to the new protocol)."""
        data = self._h11.send(h11.InformationalResponse(status_code=101, headers=headers))
        trailing, _closed = self._h11.trailing_data
        return data, bytes(trailing)

    def _send_head(self, status: int, headers: list[tuple[bytes, bytes]], close: bool) -> bytes:
        headers = [(b"Server", SERVER_HEADER), *headers]
        if close:
            headers.append((b"Connection", b"close"))
        try:
            return self._h11.send(h11.Response(status_code=status, headers=headers))
        except h11.LocalProtocolError:
            # No answer can go out in this state (the client's request was never read): close quietly.
            return b""

    def error_response(self, status: int, body: bytes) -> bytes:
        """An answer to a request h11 refused, or to a connection refused before any request: always
        closes the connection."""
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return b""
        return self.response(status, body, close=True)

    def start_next_cycle(self) -> bool:
        """Ready the connection for the next request; False when it must close instead."""
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
            return True
        return False


def _content_length(headers) -> int | None:
    for key, value in headers:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _request(head: h11.Request) -> Request:
    target = head.target.decode("latin-1")
    path, question, query = target.partition("?")
    return Request(
        method=head.method.decode("ascii", "replace"),
        # The common request (POST /execute) has neither escapes nor a query: skip the parsers then.
        path=unquote(path) if "%" in path else path,
        query=dict(parse_qsl(query, keep_blank_values=True)) if question else {},
        # h11 gives (lower-cased name, value) pairs of bytes.
        headers=tuple(head.headers),
    )
