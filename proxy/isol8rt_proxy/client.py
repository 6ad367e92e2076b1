"""One client connection: read request heads, decide, then forward, tunnel or refuse; one log line each.

Time limits are what make a hostile client harmless. The first request head must be complete
``header_timeout`` after the connection was accepted (a client trickling a byte a second, or sending
nothing, is cut off then); a kept-alive connection may sit ``idle_timeout`` before its next request
starts, and that head then gets ``header_timeout``. A head over ``max_header_bytes`` is refused (431).

Every refusal closes the connection: the request body, if any, is not worth reading.
"""

from __future__ import annotations

from typing import Protocol

import h11
import trio

from isol8rt.agent.proxy_protocol import RequestLog
from isol8rt_proxy.config import Settings
from isol8rt_proxy.dial import DialError, dial
from isol8rt_proxy.exchange import Exchange, text
from isol8rt_proxy.forward import forward
from isol8rt_proxy.origin import Kept, Origin, Stale, replayable
from isol8rt_proxy.policy import Policy
from isol8rt_proxy.streams import RECEIVE_SIZE, StreamGone, close_now, send_refusal
from isol8rt_proxy.target import BadRequest, Target, parse_absolute, parse_connect
from isol8rt_proxy.tunnel import tunnel

_TOO_LARGE = 431


class Context(Protocol):
    """What a connection needs from the proxy: read afresh for every request, so policy changes apply."""

    settings: Settings
    policy: Policy
    run: str | None

    def log(self, record: RequestLog) -> None: ...


class _Refused(Exception):
    def __init__(self, status: int, reason: str, *, blocked: bool = True) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.blocked = blocked


async def serve_client(stream: trio.SocketStream, proxy: Context, accepted_at: float) -> None:
    """Serve requests on ``stream`` until the client leaves, errs or times out, or a request ends it."""
    kept = Kept()
    try:
        await _serve_requests(stream, proxy, accepted_at, kept)
    finally:
        kept.close()


async def _serve_requests(stream: trio.SocketStream, proxy: Context, accepted_at: float, kept: Kept) -> None:
    settings = proxy.settings
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=settings.max_header_bytes)
    head_deadline = accepted_at + settings.header_timeout
    while True:
        exchange = None
        try:
            request = await _read_head(conn, stream, head_deadline, settings.max_header_bytes)
            if request is None:
                return
            exchange = Exchange(proxy.run, request.method)
            keep_alive = await _handle(conn, stream, request, exchange, proxy, kept)
        except _Refused as refused:
            exchange = exchange or Exchange(proxy.run, None)
            await _refuse(stream, exchange, refused)
            return
        finally:
            if exchange is not None:
                proxy.log(exchange.log())
        if not keep_alive or not await _await_next_request(conn, stream, settings.idle_timeout):
            return
        head_deadline = trio.current_time() + settings.header_timeout


async def _read_head(
    conn: h11.Connection, stream: trio.SocketStream, deadline: float, limit: int
) -> h11.Request | None:
    """The next request head; None if the client left or missed the deadline (no answer is owed then)."""
    # h11 enforces its size limit only on a head still incomplete: one that arrives whole in a single
    # read is parsed whatever its size. So count what this head took, too.
    received = len(conn.trailing_data[0])
    with trio.move_on_at(deadline):
        try:
            while (event := conn.next_event()) is h11.NEED_DATA:
                data = await stream.receive_some(RECEIVE_SIZE)
                received += len(data)
                conn.receive_data(data)
        except h11.RemoteProtocolError as exc:
            if exc.error_status_hint == _TOO_LARGE:
                raise _Refused(_TOO_LARGE, "request head too large") from None
            raise _Refused(exc.error_status_hint, f"bad request: {exc}") from None
        except StreamGone:
            return None
        if not isinstance(event, h11.Request):
            return None
        if received > limit and received - len(conn.trailing_data[0]) > limit:
            raise _Refused(_TOO_LARGE, "request head too large")
        return event
    return None


async def _await_next_request(conn: h11.Connection, stream: trio.SocketStream, idle_timeout: float) -> bool:
    """Start the next cycle of a kept-alive connection, once the client begins another request."""
    conn.start_next_cycle()
    if conn.trailing_data[0]:  # pipelined: already here
        return True
    with trio.move_on_after(idle_timeout):
        try:
            data = await stream.receive_some(RECEIVE_SIZE)
        except StreamGone:
            return False
        conn.receive_data(data)
        return bool(data)
    return False


async def _handle(
    conn: h11.Connection,
    stream: trio.SocketStream,
    request: h11.Request,
    exchange: Exchange,
    proxy: Context,
    kept: Kept,
) -> bool:
    """Decide on ``request`` and carry it out; True if the connection may carry another request."""
    is_connect = request.method == b"CONNECT"
    try:
        if is_connect:
            target = parse_connect(request.target)
            # A CONNECT has no body; the 200 is only sendable once h11 has seen the request end.
            if not isinstance(conn.next_event(), h11.EndOfMessage):
                raise BadRequest("CONNECT must not have a body")
        else:
            target = parse_absolute(request.target)
    except (BadRequest, h11.RemoteProtocolError) as exc:
        raise _Refused(400, f"bad request: {exc}") from None
    exchange.host, exchange.port = target.host, target.port
    if not is_connect:
        exchange.path = text(target.path)

    policy = proxy.policy
    reason = policy.check_host(target.host) or policy.check_port(target.port, tunnel=is_connect)
    if reason is not None:
        raise _Refused(403, reason)
    if is_connect:
        origin = await _dial(target, policy, proxy.settings)
        try:
            await tunnel(conn, stream, origin, exchange, proxy.settings.idle_timeout)
        finally:
            close_now(origin)
        return False
    return await _forward(conn, stream, request, target, exchange, policy, proxy.settings, kept)


async def _forward(
    conn: h11.Connection,
    stream: trio.SocketStream,
    request: h11.Request,
    target: Target,
    exchange: Exchange,
    policy: Policy,
    settings: Settings,
    kept: Kept,
) -> bool:
    origin = kept.take(target.host, target.port, policy) if replayable(request) else None
    kept.close()
    while True:  # twice at most: only a reused origin can be stale
        if origin is None:
            stream_to_origin = await _dial(target, policy, settings)
            origin = Origin(target.host, target.port, stream_to_origin, settings.max_header_bytes)
        try:
            keep_alive = await forward(
                conn, stream, request, target, origin, exchange, idle_timeout=settings.idle_timeout
            )
        except Stale:
            origin.close()
            origin = None
            continue
        except BaseException:
            origin.close()
            raise
        if keep_alive and origin.reusable:
            kept.keep(origin)
        else:
            origin.close()
        return keep_alive


async def _dial(target: Target, policy: Policy, settings: Settings) -> trio.SocketStream:
    try:
        return await dial(target.host, target.port, policy, settings.connect_timeout)
    except DialError as exc:
        raise _Refused(exc.status, exc.message, blocked=exc.blocked) from None


async def _refuse(stream: trio.SocketStream, exchange: Exchange, refused: _Refused) -> None:
    if refused.blocked:
        exchange.block(refused.status, refused.reason)
    else:
        exchange.fail(refused.status, refused.reason)
    await send_refusal(stream, refused.status, refused.reason)
