"""Socket-stream helpers shared by the client, forwarding and tunnelling code: idle deadlines, closing, refusing."""

from __future__ import annotations

import trio

from isol8rt_proxy.headers import refusal

RECEIVE_SIZE = 65536

#: How long a refusal (403, 502...) may take to reach a client that stopped reading: a courtesy, not a duty.
REFUSAL_GRACE = 1.0

#: What a peer that vanished, reset or was closed under us raises; all mean "this stream is over".
StreamGone = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class Idle:
    """A deadline that every transfer pushes back: run the exchange in ``scope`` and it is cancelled
    after ``seconds`` without a byte either way.

    One deadline for both directions, so a download during which the client sends nothing is not idle.
    ``abort()`` ends the exchange early on purpose (a side failed); ``expired`` tells the two apart.
    """

    __slots__ = ("scope", "_seconds", "_aborted")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._aborted = False
        self.scope = trio.CancelScope(deadline=trio.current_time() + seconds)

    def touch(self) -> None:
        self.scope.deadline = trio.current_time() + self._seconds

    def abort(self) -> None:
        self._aborted = True
        self.scope.cancel()

    @property
    def expired(self) -> bool:
        return self.scope.cancelled_caught and not self._aborted


def close_now(stream: trio.SocketStream | None) -> None:
    """Close at once, without a checkpoint: safe in ``finally`` blocks under cancellation."""
    if stream is not None:
        stream.socket.close()


async def send_refusal(stream: trio.SocketStream, status: int, reason: str) -> None:
    """Send the client a refusal (see :func:`headers.refusal`), if it takes it within REFUSAL_GRACE."""
    with trio.move_on_after(REFUSAL_GRACE):
        try:
            await stream.send_all(refusal(status, reason))
        except StreamGone:
            pass
