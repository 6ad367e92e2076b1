"""Trio I/O under the sans-io HTTP client connection (:mod:`.http_client`), in the manner of httpcore's
connection over h11: a byte stream and a :class:`~.http_client.ClientConnection`, bytes moved between
them, and nothing else. The one module of this package that does I/O.

Shared by the Docker transport (:mod:`isol8rt.docker._transport`) and :class:`~isol8rt.RemoteIsol8`, which
each map what goes wrong into their own exceptions, once, by overriding the hooks of
:class:`HTTPStream`: the stream broke (:meth:`~HTTPStream.broken`), the peer hung up before its answer
was complete (:meth:`~HTTPStream.ended`), the peer broke HTTP (:meth:`~HTTPStream.misspoke`). Nothing
else leaves this loop but what the hooks return (and trio's Cancelled).
"""

from __future__ import annotations

import trio

from .http_client import (
    NEED_DATA,
    Body,
    ClientConnection,
    EndOfBody,
    PeerClosed,
    RemoteProtocolError,
    Response,
    ResponseEvent,
    Upgraded,
)

#: One read of the stream: large enough that most answers come in one go.
RECEIVE_SIZE = 64 * 1024


class HTTPStream:
    """One HTTP/1.1 connection: ``stream`` under ``http``. Subclasses say what a failure is called at
    their boundary (the defaults leave trio's and the HTTP connection's exceptions as they are)."""

    __slots__ = ("stream", "http")

    def __init__(self, stream: trio.abc.Stream, http: ClientConnection) -> None:
        self.stream = stream
        self.http = http

    # ------------------------------------------------------------------------------------ the hooks

    async def broken(self, exc: trio.BrokenResourceError | trio.ClosedResourceError) -> Exception:
        """The exception for a stream that broke (or was closed under us) while sending or receiving."""
        return exc

    async def ended(self) -> Exception:
        """The exception for a peer that hung up before its answer was complete."""
        return PeerClosed("the peer closed the connection before its answer was complete")

    def misspoke(self, exc: RemoteProtocolError) -> Exception:
        """The exception for a peer that broke HTTP (``exc`` says how)."""
        return exc

    def received(self, data: bytes | bytearray) -> None:
        """Told of every read from the stream (b"" at its end), before the HTTP connection sees it: what a
        boundary needs to know of the peer's words to name its failures (the Docker transport: whether a
        TLS daemon said anything before hanging up)."""

    # ------------------------------------------------------------------------------------ the loop

    async def send(self, data: bytes) -> None:
        if not data:
            return
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise await self.broken(exc) from None

    async def next_event(self) -> ResponseEvent:
        """The next event of the answer, reading as much as it takes."""
        try:
            while (event := self.http.next_event()) is NEED_DATA:
                try:
                    data = await self.stream.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    raise await self.broken(exc) from None
                self.received(data)
                self.http.receive_data(data)
        except PeerClosed:
            raise await self.ended() from None
        except RemoteProtocolError as exc:
            raise self.misspoke(exc) from None
        return event

    async def head(self) -> Response | Upgraded:
        """The head of the answer."""
        event = await self.next_event()
        if not isinstance(event, (Response, Upgraded)):
            raise self.misspoke(RemoteProtocolError(f"{event!r} where a response head was expected"))
        return event

    async def receive_body(self) -> bytes | None:
        """The next piece of the current answer's body; None once it is complete."""
        event = await self.next_event()
        if type(event) is Body:
            return event.data
        if type(event) is EndOfBody:
            return None
        raise self.misspoke(RemoteProtocolError(f"{event!r} inside a response body"))

    async def body(self) -> bytes:
        """The rest of the current answer's body."""
        pieces = []
        while (piece := await self.receive_body()) is not None:
            pieces.append(piece)
        return b"".join(pieces)
