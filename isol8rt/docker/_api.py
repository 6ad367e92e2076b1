"""Sans-io HTTP/1.1 for the Docker Engine API, on top of h11.

:class:`ClientConnection` wraps one h11 client state machine: it turns requests into bytes and received
bytes into this module's frozen events, with Docker's conventions built in (a ``Host`` header even on a
unix socket, ``Content-Length: 0`` on an empty POST, ``Upgrade: tcp`` to hijack a connection for
attach and exec). No I/O happens here; ``_transport`` moves the bytes.

h11's exceptions stop here: a daemon that breaks HTTP becomes :class:`DockerError`, one that hangs up
mid-answer :class:`StreamClosed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

import h11
import msgspec

from ._errors import APIError, Conflict, DockerError, NotFound, StreamClosed

USER_AGENT = b"isol8rt"


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
    """The daemon switched the connection to a raw stream (``101 UPGRADED``).

    ``trailing`` holds the bytes that arrived after the 101 head: they already belong to the stream
    (Docker can send the head and the first frames in one write). ``closed`` tells that the daemon also
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
    """The client side of one HTTP/1.1 connection to the daemon, for any number of request/response
    cycles in turn (keep-alive).

    Send side: :meth:`request` gives the bytes of a request head (and of its body when it is ``bytes``);
    a streamed body goes out as :meth:`chunk` calls closed by :meth:`end`. Receive side: pass every
    received byte string to :meth:`receive_data` (``b""`` for EOF) and pull events with
    :meth:`next_event` until it returns :data:`NEED_DATA`.
    """

    __slots__ = ("_h11", "_host", "_eof")

    def __init__(self, host: bytes) -> None:
        self._h11 = h11.Connection(h11.CLIENT)
        self._host = host
        self._eof = False

    def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes | None = None,
        chunked: bool = False,
        content_type: str | None = None,
        upgrade: bool = False,
    ) -> bytes:
        """The bytes of a request. With ``chunked`` the body is left open for :meth:`chunk`."""
        if chunked and body is not None:
            raise ValueError("a request body is either bytes or chunked, not both")
        headers = [(b"Host", self._host), (b"User-Agent", USER_AGENT)]
        if content_type is not None:
            headers.append((b"Content-Type", content_type.encode("ascii")))
        if chunked:
            headers.append((b"Transfer-Encoding", b"chunked"))
        elif body is not None or method != "GET":
            # Go's server is happy without it, but an explicit length keeps every proxy in between
            # from waiting for a body that never comes.
            headers.append((b"Content-Length", str(len(body or b"")).encode("ascii")))
        if upgrade:
            headers.append((b"Connection", b"Upgrade"))
            headers.append((b"Upgrade", b"tcp"))
        data = self._h11.send(h11.Request(method=method, target=target, headers=headers))
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

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes received from the daemon; ``b""`` means it closed its side."""
        if not data:
            self._eof = True
        self._h11.receive_data(data)

    def next_event(self) -> ResponseEvent:
        """The next event parsed from the bytes received so far, or :data:`NEED_DATA`."""
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                if self._eof:
                    raise StreamClosed("the Docker daemon hung up before its answer was complete") from None
                raise DockerError(f"the Docker daemon sent malformed HTTP: {exc}") from None
            if event is h11.NEED_DATA:
                return NEED_DATA
            event_type = type(event)
            if event_type is h11.Data:
                return Body(bytes(event.data))
            if event_type is h11.Response:
                return _response(event)
            if event_type is h11.EndOfMessage:
                return END_OF_BODY
            if event_type is h11.InformationalResponse:
                if event.status_code == 101:
                    trailing, closed = self._h11.trailing_data
                    return Upgraded(_response(event), trailing, closed)
                continue  # 100 Continue and friends carry nothing for us
            if event_type is h11.ConnectionClosed:
                raise StreamClosed("the Docker daemon closed the connection")
            # PAUSED: only after a complete response, where callers stop asking.
            raise DockerError(f"unexpected HTTP state: {event!r}")

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


def target(prefix: str, path: str, params: dict[str, object] | None = None) -> str:
    """The request target ``prefix + path + ?query``.

    Query values: ``None`` is left out, ``True``/``False`` become ``1``/``0``, a list repeats the
    parameter, anything else is ``str()``-ed.
    """
    if not params:
        return prefix + path
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else (value,)
        for item in values:
            if isinstance(item, bool):
                item = "1" if item else "0"
            pairs.append((key, str(item)))
    if not pairs:
        return prefix + path
    return f"{prefix}{path}?{urlencode(pairs, quote_via=quote)}"


def quote_path(segment: str) -> str:
    """Quote a container id, exec id or image reference for a path. Slashes and colons stay: Docker's
    image routes take the whole reference (``registry:5000/repo:tag``) as one path parameter."""
    return quote(segment, safe="/:@")


class _ErrorBody(msgspec.Struct):
    message: str = ""


_decode_error_body = msgspec.json.Decoder(_ErrorBody).decode


def error_message(body: bytes, fallback: str) -> str:
    """Docker's message from an error body ``{"message": "..."}``; the body text itself when it is not
    JSON (some routes answer ``404 page not found`` as text); ``fallback`` when it is empty."""
    try:
        message = _decode_error_body(body).message
    except msgspec.DecodeError:
        message = body.decode("utf-8", "replace")
    return message.strip() or fallback


def api_error(status: int, reason: bytes, body: bytes, method: str, path: str) -> APIError:
    """The exception for an error answer: :class:`NotFound` for 404, :class:`Conflict` for 409,
    :class:`APIError` for any other status."""
    cls = NotFound if status == 404 else Conflict if status == 409 else APIError
    return cls(status, error_message(body, reason.decode("latin-1") or f"HTTP {status}"), method, path)


class JSONLines:
    """Split a progress body (build, import, pull) into its JSON messages.

    Docker writes one JSON object per line, but the chunks of the body cut lines anywhere; a line is
    handed out only once complete.
    """

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> list[bytes]:
        """Complete, non-blank lines that ``data`` finishes."""
        if self._tail:
            data = self._tail + data
        lines = data.split(b"\n")
        self._tail = lines.pop()
        return [line for line in lines if line.strip()]

    def close(self) -> list[bytes]:
        """The last line, if the body did not end with a newline."""
        tail, self._tail = self._tail, b""
        return [tail] if tail.strip() else []
