"""The one trio loop under the HTTP client connection: it moves bytes over a stream, and every failure
leaves it through a hook of the boundary that uses it (over a memory stream: no socket, no sleep)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from isol8rt.wire.http_client import ClientConnection, PeerClosed, RemoteProtocolError, Response
from isol8rt.wire.http_trio import HTTPStream

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


class Mapped(Exception):
    pass


class Boundary(HTTPStream):
    """A boundary that names each failure its own way, as RemoteIsol8 and the Docker transport do."""

    async def broken(self, exc):
        return Mapped(f"broken: {type(exc).__name__}")

    async def ended(self):
        return Mapped("ended")

    def misspoke(self, exc):
        return Mapped(f"misspoke: {exc}")


def pair(kind: type[HTTPStream] = Boundary) -> tuple[HTTPStream, trio.abc.Stream]:
    ours, theirs = trio.testing.memory_stream_pair()
    return kind(ours, ClientConnection(b"example")), theirs


async def test_a_request_and_its_answer_read_in_pieces():
    conn, server = pair()
    await conn.send(conn.http.request("GET", "/"))
    assert (await server.receive_some()).startswith(b"GET / HTTP/1.1\r\n")
    for byte in OK[:-3]:
        await server.send_all(bytes([byte]))
    await server.send_all(OK[-3:])
    head = await conn.head()
    assert isinstance(head, Response) and head.status == 200
    assert await conn.body() == b"hello"
    assert conn.http.reusable


async def test_a_peer_that_hangs_up_early_is_the_boundarys_ended():
    conn, server = pair()
    await conn.send(conn.http.request("GET", "/"))
    await server.send_all(OK[:-2])
    await server.aclose()
    await conn.head()
    with pytest.raises(Mapped, match="^ended$"):
        await conn.body()


async def test_a_peer_that_breaks_http_is_the_boundarys_misspoke():
    conn, server = pair()
    await conn.send(conn.http.request("GET", "/"))
    await server.send_all(b"SMTP ready\r\n\r\n")
    with pytest.raises(Mapped, match="^misspoke: "):
        await conn.head()


async def test_a_stream_closed_under_it_is_the_boundarys_broken():
    conn, _ = pair()
    await conn.stream.aclose()
    with pytest.raises(Mapped, match="broken: ClosedResourceError"):
        await conn.send(b"x")
    with pytest.raises(Mapped, match="broken: ClosedResourceError"):
        await conn.next_event()
    await conn.send(b"")  # nothing to send: no I/O at all


async def test_without_a_boundary_the_connections_own_exceptions_pass():
    conn, server = pair(HTTPStream)
    await conn.send(conn.http.request("GET", "/"))
    await server.aclose()
    with pytest.raises(PeerClosed):
        await conn.head()
    conn, server = pair(HTTPStream)
    await conn.send(conn.http.request("GET", "/"))
    await server.send_all(b"nonsense\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        await conn.head()
