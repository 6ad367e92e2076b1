"""stdout: JSON lines written in order by one task, so a slow reader never blocks a connection.

``emit`` is synchronous (it encodes into a buffer and wakes the writer), so it can be called anywhere,
``finally`` blocks of cancelled connections included. Each line is handed to the pipe as soon as the
writer runs; lines that pile up meanwhile leave in one write. If the reader stops reading altogether the
buffer stops growing at ``limit`` and later lines are dropped, with an error line counting them once
the writer gets through again.
"""

from __future__ import annotations

import trio

from isol8rt.agent.proxy_protocol import Error, Out, encoder
from isol8rt_proxy.streams import StreamGone


class Output:
    def __init__(self, stream: trio.abc.SendStream, limit: int = 16 * 1024 * 1024) -> None:
        self._stream = stream
        self._limit = limit
        self._pending = bytearray()
        self._wakeup = trio.Event()
        self._closing = False
        self._dropped = 0

    def emit(self, message: Out) -> None:
        if self._closing:
            return
        if len(self._pending) >= self._limit:
            self._dropped += 1
            return
        encoder.encode_into(message, self._pending, -1)
        self._pending += b"\n"
        self._wakeup.set()

    def close(self) -> None:
        """Write what is pending, then let run() return."""
        self._closing = True
        self._wakeup.set()

    async def run(self) -> None:
        """Write lines until close() (or until stdout is gone: nobody is listening any more)."""
        while True:
            if self._dropped and len(self._pending) < self._limit:
                dropped, self._dropped = self._dropped, 0
                encoder.encode_into(Error(message=f"{dropped} lines dropped: stdout not read"), self._pending, -1)
                self._pending += b"\n"
            if self._pending:
                data = bytes(self._pending)
                self._pending.clear()
                try:
                    await self._stream.send_all(data)
                except StreamGone:
                    return
            elif self._closing:
                return
            else:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
