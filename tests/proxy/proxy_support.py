"""Test equipment for the egress proxy: the proxy as a subprocess, local origins, and clients.

Everything listens on 127.0.0.1; nothing here touches the internet.
"""

from __future__ import annotations

import itertools
import json
import ssl
import subprocess
import sys
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import h11
import trio

MAIN = Path(__file__).resolve().parents[2] / "proxy" / "main.py"


# --------------------------------------------------------------------------------------------------
# the proxy


class ProxyProcess:
    """A running proxy: its port, its control channel and the lines it writes on stdout."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.port = 0
        self._buffer = b""

    async def line(self, timeout: float = 10.0) -> dict:
        with trio.fail_after(timeout):
            while b"\n" not in self._buffer:
                data = await self.process.stdout.receive_some(65536)
                if not data:
                    raise EOFError(f"proxy closed its stdout; unfinished: {self._buffer!r}")
                self._buffer += data
        raw, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(raw)

    async def expect(self, type: str, timeout: float = 10.0) -> dict:
        """The next line of ``type``; a line of another type first is a failure."""
        line = await self.line(timeout)
        assert line["type"] == type, line
        return line

    async def send(self, message: dict) -> None:
        await self.process.stdin.send_all(json.dumps(message).encode() + b"\n")

    async def set_policy(self, **fields) -> dict:
        await self.send({"type": "policy", **fields})
        return await self.line()


@asynccontextmanager
async def running_proxy(*args: str):
    process = await trio.lowlevel.open_process(
        [sys.executable, "-I", "-B", str(MAIN), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    proxy = ProxyProcess(process)
    try:
        proxy.port = (await proxy.expect("listening"))["port"]
        yield proxy
        # stdin EOF is how the proxy is told to stop; it must then exit cleanly and promptly.
        await process.stdin.aclose()
        with trio.fail_after(10):
            while await process.stdout.receive_some(65536):
                pass
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


# --------------------------------------------------------------------------------------------------
# origins


async def serve_local(nursery: trio.Nursery, handler) -> int:
    """Serve ``handler`` on a fresh port of 127.0.0.1, for the rest of the test; returns the port."""
    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


class HttpOrigin:
    """An HTTP/1.1 origin. ``/size/N`` answers N bytes with a Content-Length, ``/chunked`` three
    chunks without one, ``/close`` nothing at all (the connection is closed), ``/drop-reused`` the
    same but only when it is not the first request on its connection, and every other target a JSON
    echo of the request: method, target, headers, body length and the connection's number."""

    def __init__(self) -> None:
        self.port = 0
        self.connections = 0

    async def start(self, nursery: trio.Nursery) -> HttpOrigin:
        self.port = await serve_local(nursery, self._serve)
        return self

    async def _serve(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        self.connections += 1
        number = self.connections
        async with stream:
            for index in itertools.count():
                request, body = await _read_message(conn, stream)
                if request is None:
                    return
                if request.target == b"/close" or (request.target == b"/drop-reused" and index > 0):
                    return
                for event in _respond(request, body, number):
                    if request.method != b"HEAD" or not isinstance(event, h11.Data):
                        await stream.send_all(conn.send(event))
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()


def _respond(request: h11.Request, body: bytes, connection: int) -> list:
    if request.target.startswith(b"/size/"):
        size = int(request.target[6:])
        return [
            h11.Response(status_code=200, headers=[("Content-Length", str(size))]),
            h11.Data(data=b"x" * size),
            h11.EndOfMessage(),
        ]
    if request.target == b"/chunked":
        chunks = [h11.Data(data=part) for part in (b"one,", b"two,", b"three")]
        return [h11.Response(status_code=200, headers=[("Transfer-Encoding", "chunked")]), *chunks, h11.EndOfMessage()]
    echo = json.dumps(
        {
            "method": request.method.decode(),
            "target": request.target.decode(),
            "headers": [[name.decode(), value.decode()] for name, value in request.headers.raw_items()],
            "body_length": len(body),
            "connection": connection,
        }
    ).encode()
    return [
        h11.Response(
            status_code=200, headers=[("Content-Type", "application/json"), ("Content-Length", str(len(echo)))]
        ),
        h11.Data(data=echo),
        h11.EndOfMessage(),
    ]


async def start_echo_origin(nursery: trio.Nursery) -> int:
    """A TCP echo server; returns its port. It half-closes when its client does."""

    async def echo(stream: trio.SocketStream) -> None:
        async with stream:
            try:
                while data := await stream.receive_some(65536):
                    await stream.send_all(data)
                await stream.send_eof()
            except trio.BrokenResourceError:
                pass

    return await serve_local(nursery, echo)


async def start_tls_origin(nursery: trio.Nursery, context: ssl.SSLContext) -> int:
    """An HTTPS origin answering every request with ``secure``; returns its port."""

    async def serve(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, context, server_side=True)
        try:
            if b"\r\n\r\n" not in await receive_head(tls):
                return
            await tls.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecure")
            await tls.aclose()
        except trio.BrokenResourceError:
            await trio.aclose_forcefully(tls)

    return await serve_local(nursery, serve)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (it is its own CA): (cert, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


# --------------------------------------------------------------------------------------------------
# clients


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> dict:
        return json.loads(self.body)


async def _read_message(conn: h11.Connection, stream: trio.SocketStream):
    """The next head and its whole body from ``conn`` (None, b"" if the peer closed first)."""
    head, body = None, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, (h11.Request, h11.Response)):
            head = event
            if conn.they_are_waiting_for_100_continue:  # only an origin sees this
                await stream.send_all(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return head, body
        elif isinstance(event, h11.ConnectionClosed):
            return None, b""


async def exchange(conn: h11.Connection, stream: trio.SocketStream, method: str, url: str, *, body: bytes | None = None,
                   headers: list[tuple[str, str]] = (), chunked: bool = False) -> Reply:  # fmt: skip
    """One request on an open connection to the proxy (kept alive if both sides agree)."""
    authority = url.split("/")[2]
    framing = [("Transfer-Encoding", "chunked")] if chunked else [("Content-Length", str(len(body or b"")))]
    request = h11.Request(method=method, target=url, headers=[("Host", authority), *headers, *framing])
    await stream.send_all(conn.send(request))
    if body:
        pieces = [body[i : i + 1000] for i in range(0, len(body), 1000)] if chunked else [body]
        for piece in pieces:
            await stream.send_all(conn.send(h11.Data(data=piece)))
    await stream.send_all(conn.send(h11.EndOfMessage()))
    response, data = await _read_message(conn, stream)
    assert response is not None, "proxy closed the connection without answering"
    return Reply(response.status_code, {k.decode(): v.decode() for k, v in response.headers}, data)


async def request(proxy_port: int, method: str, url: str, **kwargs) -> Reply:
    """One request through the proxy on a connection of its own."""
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", proxy_port)
        async with stream:
            return await exchange(h11.Connection(h11.CLIENT), stream, method, url, **kwargs)


async def open_tunnel(proxy_port: int, authority: str) -> tuple[int, trio.SocketStream, bytes]:
    """Send CONNECT; (status, the stream, the response head and anything after it)."""
    stream = await trio.open_tcp_stream("127.0.0.1", proxy_port)
    await stream.send_all(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    received = await receive_head(stream)
    status = int(received.split(b" ", 2)[1]) if received else 0
    return status, stream, received


async def receive_head(stream: trio.abc.ReceiveStream) -> bytes:
    """Bytes up to the end of a message head and whatever came with it (less if EOF came first)."""
    received = b""
    while b"\r\n\r\n" not in received:
        data = await stream.receive_some(65536)
        if not data:
            break
        received += data
    return received


async def receive_exactly(stream: trio.abc.ReceiveStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        if not chunk:
            raise EOFError(f"EOF after {len(data)} of {size} bytes")
        data += chunk
    return data


async def receive_until_eof(stream: trio.abc.ReceiveStream) -> bytes:
    data = b""
    try:
        while chunk := await stream.receive_some(65536):
            data += chunk
    except trio.BrokenResourceError:
        pass
    return data
