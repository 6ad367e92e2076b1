"""One plain-HTTP request relayed to its origin, bodies streamed both ways through h11 on each side.

A request with a body is uploaded (client to origin) while the response is downloaded (origin to
client), side by side, because an origin may answer before it has read the whole body (a 413, a
redirect) and a client may wait for ``100 Continue`` before sending it. A request without one, the
common case, needs no second task. Writes are coalesced: whatever h11 already holds of a message
(head, body, end) leaves in one send, which matters as much as anything for latency.

The client's connection is kept alive when both its request and the response ended cleanly; so is
the origin's, for the client's next request (see ``origin``).

Failures are judged by who failed: the origin failing before the client got any of the response earns
the client a 502 (504 if it went quiet), after that the response is cut short; the client failing
ends the exchange.
"""

from __future__ import annotations

from collections.abc import Callable

import h11
import trio

from isol8rt_proxy import headers
from isol8rt_proxy.exchange import Exchange
from isol8rt_proxy.origin import Origin, Stale
from isol8rt_proxy.streams import RECEIVE_SIZE, Idle, StreamGone, send_refusal
from isol8rt_proxy.target import Target

_MESSAGE_EVENTS = (h11.InformationalResponse, h11.Response, h11.Data, h11.EndOfMessage)

#: Interim responses worth passing on: 100 Continue (a client may be waiting for it) and 103 Early Hints.
_INTERIM = frozenset({100, 103})


class _ClientGone(Exception):
    pass


class _OriginGone(Exception):
    pass


async def forward(
    conn: h11.Connection,
    client: trio.SocketStream,
    request: h11.Request,
    target: Target,
    origin: Origin,
    exchange: Exchange,
    *,
    idle_timeout: float,
) -> bool:
    """Relay ``request`` (whose head ``conn`` has read) to ``origin``; True if ``conn`` may carry another.

    Raises :class:`Stale` instead of answering 502 if ``origin`` was reused and closed before answering."""
    relay = _Relay(
        _Side(conn, client, _ClientGone),
        _Side(origin.conn, origin.stream, _OriginGone),
        exchange,
        Idle(idle_timeout),
        stale_possible=origin.reused,
    )
    head = h11.Request(
        method=request.method,
        target=target.path,
        headers=headers.request_headers(request.headers.raw_items(), target.authority),
    )
    with relay.idle.scope:
        if conn.their_state is h11.DONE:
            first = h11.EndOfMessage()  # read whole by an attempt on a stale origin connection
        else:
            try:
                first = relay.client.next_event()
            except _ClientGone:
                first = h11.ConnectionClosed()  # upload() reports it
        if isinstance(first, h11.EndOfMessage):
            await relay.upload(head, first)
            await relay.download()
        else:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(relay.upload, head, first)
                await relay.download()
                nursery.cancel_scope.cancel()  # the response is over: a body still coming is not wanted
    if relay.stale:
        raise Stale
    if relay.idle.expired:
        await relay.origin_failed(504, "idle timeout")
    return relay.complete and conn.our_state is h11.DONE and conn.their_state is h11.DONE


class _Side:
    """One end of the relay: an h11 connection, its stream, and what its failures are called."""

    __slots__ = ("conn", "stream", "gone", "sent", "received")

    def __init__(self, conn: h11.Connection, stream: trio.SocketStream, gone: type[Exception]) -> None:
        self.conn = conn
        self.stream = stream
        self.gone = gone
        self.sent = False  # anything at all sent to this side
        self.received = False  # anything at all received from it

    def next_event(self) -> object:
        try:
            return self.conn.next_event()
        except h11.RemoteProtocolError:
            raise self.gone from None

    async def receive(self, idle: Idle) -> None:
        try:
            data = await self.stream.receive_some(RECEIVE_SIZE)
        except StreamGone:
            raise self.gone from None
        idle.touch()
        self.received = self.received or bool(data)
        self.conn.receive_data(data)

    async def send(self, data: bytes | bytearray, idle: Idle) -> None:
        try:
            await self.stream.send_all(data)
        except StreamGone:
            raise self.gone from None
        self.sent = True
        idle.touch()


class _Relay:
    """The two directions of one exchange and what they found out."""

    def __init__(self, client: _Side, origin: _Side, exchange: Exchange, idle: Idle, *, stale_possible: bool) -> None:
        self.client = client
        self.origin = origin
        self.exchange = exchange
        self.idle = idle
        self.stale_possible = stale_possible  # the origin connection is a reused one
        self.stale = False  # ...and it was closed before it said anything
        self.complete = False  # the client has the whole response

    async def upload(self, head: h11.Request, first: object) -> None:
        try:
            await self._copy(self.client, self.origin, _body_event, self.exchange.add_out, head, first)
        except _OriginGone:
            pass  # the origin stopped reading; download() finds out whether it answered anyway
        except _ClientGone:
            self._client_gone()

    async def download(self) -> None:
        try:
            await self._copy(self.origin, self.client, self._response_event, self.exchange.add_in)
            self.complete = True
        except _OriginGone:
            if self.stale_possible and not self.origin.received:
                self.stale = True
                return
            await self.origin_failed(502, "origin closed the connection or sent a bad response")
        except _ClientGone:
            self._client_gone()

    async def origin_failed(self, status: int, error: str) -> None:
        """Tell the client, if it has not begun to get a response; otherwise its response is cut short.

        Called from download() or after the idle scope, never from inside a cancelled scope: the
        refusal must get its chance to be sent."""
        self.exchange.error = error
        if not self.client.sent:
            self.exchange.status = status
            await send_refusal(self.client.stream, status, error)

    def _client_gone(self) -> None:
        self.exchange.error = "client closed the connection"
        self.idle.abort()

    def _response_event(self, event: object) -> object | None:
        """What to pass on to the client for an origin event (None: nothing)."""
        if isinstance(event, h11.InformationalResponse):
            return event if event.status_code in _INTERIM else None
        if isinstance(event, h11.Response):
            self.exchange.status = event.status_code
            return h11.Response(
                status_code=event.status_code,
                reason=event.reason,
                headers=headers.response_headers(event.headers.raw_items()),
            )
        return _body_event(event)

    async def _copy(
        self,
        source: _Side,
        sink: _Side,
        translate: Callable[[object], object | None],
        count: Callable[[int], None],
        head: object | None = None,
        event: object | None = None,
    ) -> None:
        """Relay one message from ``source`` to ``sink``, starting with ``head`` and ``event`` if given.

        What h11 has already parsed is gathered and sent in one write; the body bytes in it are counted
        once they are sent."""
        pending = bytearray()
        body = 0
        if head is not None:
            pending += _encode(sink, head, source)
        while True:
            if event is None:
                event = source.next_event()
            if event is h11.NEED_DATA:
                if pending:
                    await sink.send(pending, self.idle)
                    count(body)
                    pending, body = bytearray(), 0
                await source.receive(self.idle)
                event = None
                continue
            if not isinstance(event, _MESSAGE_EVENTS):
                raise source.gone  # ConnectionClosed: the message was cut short
            relayed = translate(event)
            if relayed is not None:
                pending += _encode(sink, relayed, source)
            if isinstance(event, h11.Data):
                body += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                await sink.send(pending, self.idle)
                count(body)
                return
            event = None


def _encode(sink: _Side, event: object, source: _Side) -> bytes:
    try:
        return sink.conn.send(event)
    except h11.LocalProtocolError:
        raise source.gone from None  # what the source sent cannot be passed on


def _body_event(event: object) -> object | None:
    if isinstance(event, h11.Data):
        return h11.Data(data=event.data)
    if isinstance(event, h11.EndOfMessage):
        return h11.EndOfMessage()  # trailers are dropped: the other side's framing may not be chunked
    return None
