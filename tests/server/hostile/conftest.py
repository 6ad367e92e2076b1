"""Helpers for clients that misbehave on purpose: raw sockets from chosen loopback addresses, with
small receive buffers, that send heads and bodies as slowly as they like."""

from __future__ import annotations

import socket

import h11
import msgspec
import trio

from ..conftest import MASTER, Answer


async def connect(port: int, source: str = "127.0.0.1", rcvbuf: int | None = None) -> trio.SocketStream:
    """A TCP connection to the server from ``source`` (any 127.0.0.0/8 address is this machine's
    loopback, so clients can be told apart by address). ``rcvbuf`` shrinks the receive buffer before
    connecting, so a client that does not read fills up quickly."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    await sock.bind((source, 0))
    await sock.connect(("127.0.0.1", port))
    return trio.SocketStream(sock)


def head(method: str, path: str, *, key: str | None = MASTER, length: int | None = None,
         extra: list[tuple[str, str]] = ()) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{name}: {value}" for name, value in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post(path: str, body: dict, *, key: str | None = MASTER, extra: list[tuple[str, str]] = ()) -> bytes:
    payload = msgspec.json.encode(body)
    return head("POST", path, key=key, length=len(payload), extra=extra) + payload


async def read_answer(stream: trio.SocketStream) -> Answer:
    """One whole answer (an interim 100 Continue is skipped)."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[(b"Host", b"x")]))  # for h11's state only
    conn.send(h11.EndOfMessage())
    response, parts = None, []
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            parts.append(bytes(event.data))
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            break
    assert response is not None, "the server closed without answering"
    return Answer(response.status_code, dict(response.headers), b"".join(parts))


async def read_to_eof(stream: trio.SocketStream) -> bytes:
    data = b""
    try:
        while chunk := await stream.receive_some(65536):
            data += chunk
    except trio.BrokenResourceError:  # a reset after the answer: what was read is what counts
        pass
    return data


async def wait_until(predicate, timeout: float = 20.0, what: str = "the condition") -> None:
    """Poll ``predicate`` (a plain or async callable) until it holds; fail after ``timeout``. For state
    that only the server's internals or Docker can show (no event to wait on from outside)."""
    with trio.fail_after(timeout):
        while True:
            value = predicate()
            if hasattr(value, "__await__"):
                value = await value
            if value:
                return
            await trio.sleep(0.05)
