"""WebSocket, sans-io: the opening handshake's headers (both sides) and a message layer over wsproto's
frame protocol.

The HTTP part of the handshake goes through h11 like any other request (so auth, limits and errors are
the same as everywhere else); only after the ``101`` does wsproto take the connection over.
:class:`MessageConnection` reassembles fragmented messages, caps their size, answers pings, and turns
wsproto's events into three kinds: a text message, a binary message, or the close.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from wsproto.connection import CLIENT, SERVER, Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.frame_protocol import CloseReason

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

NORMAL = CloseReason.NORMAL_CLOSURE  # 1000
UNSUPPORTED_DATA = CloseReason.UNSUPPORTED_DATA  # 1003
POLICY_VIOLATION = CloseReason.POLICY_VIOLATION  # 1008
TOO_BIG = CloseReason.MESSAGE_TOO_BIG  # 1009
INTERNAL_ERROR = CloseReason.INTERNAL_ERROR  # 1011
GOING_AWAY = CloseReason.GOING_AWAY  # 1001
#: Not sent by anyone: the stream ended without a close frame (the peer died, or a proxy cut it).
ABNORMAL = CloseReason.ABNORMAL_CLOSURE  # 1006


def accept_token(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455, 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.strip() + _GUID).digest())


def handshake_error(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """Why a request is not a WebSocket opening handshake this server accepts, or None."""
    values = {key: value for key, value in headers}
    if b"upgrade" not in values.get(b"connection", b"").lower():
        return "WebSocket handshake needs 'Connection: Upgrade'"
    if values.get(b"sec-websocket-version") != b"13":
        return "WebSocket handshake needs 'Sec-WebSocket-Version: 13'"
    key = values.get(b"sec-websocket-key", b"")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except ValueError:
        return "WebSocket handshake needs a 'Sec-WebSocket-Key' of 16 base64 bytes"
    return None


def accept_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    key = dict(headers)[b"sec-websocket-key"]
    return [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"), (b"Sec-WebSocket-Accept", accept_token(key))]


def client_key() -> bytes:
    return base64.b64encode(os.urandom(16))


def client_headers(key: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"), (b"Sec-WebSocket-Key", key),
            (b"Sec-WebSocket-Version", b"13")]


@dataclass(frozen=True, slots=True)
class Message:
    """A whole message: ``str`` for text, ``bytes`` for binary."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class Closed:
    """The peer closed (or the stream ended: code 1006). ``reply`` is the close frame to send back."""

    code: int
    reason: str
    reply: bytes


class MessageTooBig(Exception):
    pass


class MessageConnection:
    """One side of a WebSocket connection, after the handshake."""

    __slots__ = ("_ws", "_max_message", "_parts", "_size", "_binary", "_replies")

    def __init__(self, *, client: bool, trailing: bytes = b"", max_message: int = 16 * 1024 * 1024) -> None:
        self._ws = Connection(CLIENT if client else SERVER)
        self._max_message = max_message
        # The pieces of the message being received: all str (text) or all bytes (binary).
        self._parts: list[Any] = []
        self._size = 0
        self._binary = False
        #: Bytes the protocol itself must send (pongs); flushed by the I/O layer.
        self._replies = b""
        if trailing:
            self._ws.receive_data(trailing)

    def receive_data(self, data: bytes | bytearray) -> None:
        """Bytes read from the peer; ``b""`` at the end of the stream."""
        if self._ws.state is ConnectionState.CLOSED:
            return
        # wsproto annotates Optional[bytes] but takes any bytes-like (it appends to a bytearray).
        self._ws.receive_data(data if data else None)  # type: ignore[arg-type]

    def events(self) -> list[Message | Closed]:
        """Complete messages and the close, from the bytes received so far; raises :class:`MessageTooBig`."""
        out: list[Message | Closed] = []
        for event in self._ws.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                self._binary = isinstance(event, BytesMessage)
                self._parts.append(event.data)
                self._size += len(event.data)
                if self._size > self._max_message:
                    raise MessageTooBig(f"message larger than {self._max_message} bytes")
                if event.message_finished:
                    joined = (b"" if self._binary else "").join(self._parts)
                    self._parts, self._size = [], 0
                    out.append(Message(joined))
            elif isinstance(event, Ping):
                self._replies += self._ws.send(event.response())
            elif isinstance(event, CloseConnection):
                reply = b""
                if self._ws.state is ConnectionState.REMOTE_CLOSING:
                    reply = self._ws.send(event.response())
                out.append(Closed(event.code, event.reason or "", reply))
                break
        return out

    def take_replies(self) -> bytes:
        replies, self._replies = self._replies, b""
        return replies

    def send_text(self, text: str) -> bytes:
        return self._ws.send(TextMessage(data=text)) if self.open else b""

    def close(self, code: int, reason: str = "") -> bytes:
        """The close frame to send (nothing if the connection is already closing)."""
        if self._ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return self._ws.send(CloseConnection(code=code, reason=reason))
        return b""

    @property
    def open(self) -> bool:
        return self._ws.state is ConnectionState.OPEN

    @property
    def closed(self) -> bool:
        return self._ws.state is ConnectionState.CLOSED
