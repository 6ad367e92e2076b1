"""A CONNECT tunnel: answer 200, then copy bytes both ways until both sides are done.

Each direction ends on its own: EOF from one side is passed on as a half-close (``send_eof``) and the
other direction keeps going, as TCP allows. An error on either side, or the shared idle deadline,
ends both at once.
"""

from __future__ import annotations

from collections.abc import Callable

import h11
import trio

from isol8rt_proxy.exchange import Exchange
from isol8rt_proxy.streams import RECEIVE_SIZE, Idle, StreamGone

_ESTABLISHED = h11.Response(status_code=200, reason=b"Connection established", headers=[])


async def tunnel(
    conn: h11.Connection, client: trio.SocketStream, origin: trio.SocketStream, exchange: Exchange, idle_timeout: float
) -> None:
    """Run the tunnel for a CONNECT whose request (through EndOfMessage) ``conn`` has read."""
    idle = Idle(idle_timeout)
    with idle.scope:
        try:
            await client.send_all(conn.send(_ESTABLISHED))
            exchange.status = 200
            # h11 hands over whatever the client sent after the request head (an eager ClientHello).
            early, _ = conn.trailing_data
            if early:
                await origin.send_all(early)
                exchange.add_out(len(early))
        except StreamGone:
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump, client, origin, exchange.add_out, idle)
            nursery.start_soon(_pump, origin, client, exchange.add_in, idle)
    if idle.expired:
        exchange.error = "idle timeout"


async def _pump(source: trio.SocketStream, sink: trio.SocketStream, count: Callable[[int], None], idle: Idle) -> None:
    try:
        while data := await source.receive_some(RECEIVE_SIZE):
            await sink.send_all(data)
            count(len(data))
            idle.touch()
        await sink.send_eof()
    except StreamGone:
        idle.abort()
