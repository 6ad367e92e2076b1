"""The bytes to and from one agent, over an :class:`~.backend.AgentStream`.

I/O only: what the bytes mean is :mod:`.conversation`'s business. Pull-based: whoever holds the container
reads its bytes, so no background task per container is needed and a run's messages go straight to the
task waiting for them. The stream's exceptions (trio's, as :class:`~.backend.AgentStream` declares them)
become :class:`ChannelBroken` here.
"""

from __future__ import annotations

from collections import deque

import trio

from .backend import STREAM_ERRORS, AgentStream


class ChannelBroken(Exception):
    """The agent's stream broke, was closed, or ended (the agent exited); the message says what the agent
    last printed, if anything."""


class AgentChannel:
    __slots__ = ("_stream", "_send_lock", "_stderr", "closed")

    def __init__(self, stream: AgentStream) -> None:
        self._stream = stream
        self._send_lock = trio.StrictFIFOLock()
        # The agent's own stderr: normally silent; a crash leaves its traceback here.
        self._stderr: deque[bytes] = deque(maxlen=64)
        self.closed = False

    async def send(self, data: bytes) -> None:
        """Write frames to the agent's stdin; :class:`ChannelBroken` if the stream fails."""
        async with self._send_lock:
            try:
                await self._stream.send_all(data)
            except STREAM_ERRORS as exc:
                self.closed = True
                raise ChannelBroken(f"cannot write to the agent: {exc}") from None

    async def receive(self) -> bytes:
        """The next bytes of the agent's stdout (never empty); :class:`ChannelBroken` once the stream
        fails or ends."""
        while True:
            if self.closed:
                raise ChannelBroken("the agent's stream is closed")
            try:
                frames = await self._stream.receive()
            except STREAM_ERRORS as exc:
                self.closed = True
                raise ChannelBroken(f"cannot read from the agent: {exc}") from None
            if not frames:
                self.closed = True
                raise ChannelBroken(f"the agent exited{self._last_words()}")
            if len(frames) == 1 and frames[0][0] == 1 and frames[0][1]:  # the usual case: one piece of stdout
                return frames[0][1]
            stdout = []
            for stream_id, data in frames:
                if stream_id == 1:
                    stdout.append(data)
                else:
                    self._stderr.append(data)
            if stdout:
                return b"".join(stdout)

    def _last_words(self) -> str:
        text = b"".join(self._stderr).decode(errors="replace").strip()
        return f"; it said: {text[-2000:]}" if text else ""

    async def aclose(self) -> None:
        """Close the stream (a receive waiting in another task ends with ChannelBroken); safe twice."""
        self.closed = True
        with trio.CancelScope(shield=True):
            await self._stream.aclose()  # raises nothing (AgentStream's promise)
