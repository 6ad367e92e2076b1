"""Talking to a run while it goes: its stdin, and signals (what a WebSocket client or a terminal needs)."""

from __future__ import annotations

import signal as signals
from typing import TYPE_CHECKING, Callable

import trio

from ..agent import protocol
from ..errors import InvalidRequest
from .channel import ChannelBroken

if TYPE_CHECKING:
    from .container import Container


class RunControl:
    """Pass one to ``execute_stream(request, control=...)``; then, from another task, feed the program's
    stdin and send it signals. The request's own ``stdin`` is written first; the pipe stays open until
    :meth:`close_stdin`. Calls made before the program has started wait for it; calls made after it
    ended do nothing and return False.
    """

    def __init__(self) -> None:
        self._started = trio.Event()
        self._ended = False
        self._container: Container | None = None
        self._op_id = 0

    def _attach(self, container: Container, op_id: int) -> None:
        self._container = container
        self._op_id = op_id
        self._started.set()

    def _end(self) -> None:
        self._ended = True
        self._started.set()

    async def _send(self, make_message: Callable[[int], protocol.Stdin | protocol.Signal]) -> bool:
        """Send ``make_message(op_id)`` once the run has started (the id is known only then)."""
        await self._started.wait()
        if self._ended or self._container is None:
            return False
        try:
            await self._container.control(make_message(self._op_id))
        except ChannelBroken:
            return False
        return True

    async def write_stdin(self, data: str | bytes) -> bool:
        payload = data.encode() if isinstance(data, str) else bytes(data)
        if not payload:
            await self._started.wait()
            return not self._ended
        return await self._send(lambda op_id: protocol.Stdin(id=op_id, data=payload))

    async def close_stdin(self) -> bool:
        return await self._send(lambda op_id: protocol.Stdin(id=op_id, eof=True))

    async def signal(self, signum: int | str) -> bool:
        """Deliver a signal (a number or a name such as "SIGINT" or "TERM") to the run's process group."""
        number = parse_signal(signum)
        return await self._send(lambda op_id: protocol.Signal(id=op_id, signum=number))


def parse_signal(signum: int | str) -> int:
    if isinstance(signum, int) and not isinstance(signum, bool):
        number = signum
    else:
        name = str(signum).upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        try:
            number = int(getattr(signals.Signals, name))
        except AttributeError:
            raise InvalidRequest(f"signal: {signum!r} is not a signal name or number") from None
    if number not in {int(s) for s in signals.valid_signals()}:
        raise InvalidRequest(f"signal: {signum!r} is not a valid signal")
    return number
