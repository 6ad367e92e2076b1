"""The host side of the agent protocol, over an :class:`~.backend.AgentStream`.

Pull-based: whoever holds the sandbox reads its messages, so no background task per container is needed
and a run's messages go straight to the task waiting for them.
"""

from __future__ import annotations

import logging
from collections import deque

import trio

from ..agent import protocol
from .backend import AgentStream

log = logging.getLogger("isol8rt.agent")


class ChannelBroken(Exception):
    """The agent's stream ended or carried garbage; ``message`` says what the agent last printed."""


class AgentChannel:
    __slots__ = ("_stream", "_decoder", "_encoder", "_pending", "_send_lock", "_stderr", "closed")

    def __init__(self, stream: AgentStream) -> None:
        self._stream = stream
        self._decoder = protocol.host_decoder()
        self._encoder = protocol.FrameEncoder()
        self._pending: deque[protocol.AgentMessage] = deque()
        self._send_lock = trio.StrictFIFOLock()
        # The agent's own stderr: normally silent; a crash leaves its traceback here.
        self._stderr: deque[bytes] = deque(maxlen=64)
        self.closed = False

    async def send(self, *messages: protocol.HostMessage) -> None:
        data = self._encoder.encode_many(list(messages)) if len(messages) != 1 else self._encoder.encode(messages[0])
        async with self._send_lock:
            try:
                await self._stream.send_all(data)
            except Exception as exc:  # the platform's stream errors, whatever they are
                self.closed = True
                raise ChannelBroken(f"cannot write to the agent: {exc}") from None

    async def receive(self) -> protocol.AgentMessage:
        """The next message from the agent (its Log lines are logged, not returned)."""
        pending = self._pending
        while True:
            while not pending:
                await self._receive_more()
            message = pending.popleft()
            if type(message) is protocol.Log:
                log.log(logging.getLevelName(message.level.upper()), "%s", message.message)
                continue
            return message

    async def _receive_more(self) -> None:
        if self.closed:
            raise ChannelBroken("the agent's stream is closed")
        try:
            frames = await self._stream.receive()
        except Exception as exc:
            self.closed = True
            raise ChannelBroken(f"cannot read from the agent: {exc}") from None
        if not frames:
            self.closed = True
            raise ChannelBroken(f"the agent exited{self._last_words()}")
        for stream_id, data in frames:
            if stream_id == 1:
                try:
                    self._pending.extend(self._decoder.feed(data))
                except protocol.ProtocolError as exc:
                    self.closed = True
                    raise ChannelBroken(f"the agent broke the protocol: {exc}") from None
            else:
                self._stderr.append(data)

    def _last_words(self) -> str:
        text = b"".join(self._stderr).decode(errors="replace").strip()
        return f"; it said: {text[-2000:]}" if text else ""

    async def aclose(self) -> None:
        self.closed = True
        with trio.CancelScope(shield=True):
            try:
                await self._stream.aclose()
            except Exception:  # noqa: BLE001 - closing a broken stream may fail; it is closed either way
                pass
