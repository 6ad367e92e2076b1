"""Trio I/O under the sans-io HTTP connection (:mod:`isol8rt.wire.http_client`): where the daemon is,
connections to it, a keep-alive pool, and the hijacked streams of attach and exec.

This is the Docker client's one I/O boundary, and its exceptions are mapped here, once: a failed connect
becomes :class:`DaemonNotRunning`; a connection that breaks once open, or a daemon that hangs up before
its answer is complete, :class:`StreamClosed`; a daemon that breaks HTTP :class:`DockerError`.
"""

from __future__ import annotations

import errno
import os
import select
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import trio

from ..wire.http_client import (
    NEED_DATA,
    Body,
    ClientConnection,
    EndOfBody,
    PeerClosed,
    RemoteProtocolError,
    Response,
    ResponseEvent,
    Upgraded,
)
from ._api import UPGRADE_TCP
from ._errors import DaemonNotRunning, DockerError, StreamClosed
from ._frames import FrameDemuxer

DEFAULT_HOST = "unix:///var/run/docker.sock"
DEFAULT_TCP_PORT = 2375

#: One read of a hijacked stream. Large enough that a run's whole output usually comes in one go.
RECEIVE_SIZE = 64 * 1024

_FIX = "run `isol8rt setup` to install and start it, or start your Docker daemon"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the daemon listens: a unix socket path, or a TCP host and port."""

    url: str
    unix_path: str | None = None
    tcp_host: str | None = None
    tcp_port: int = DEFAULT_TCP_PORT

    @property
    def host_header(self) -> bytes:
        # HTTP/1.1 needs a Host; on a unix socket any name does, and "docker" is what the CLI sent
        # for years.
        if self.unix_path is not None:
            return b"docker"
        return f"{self.tcp_host}:{self.tcp_port}".encode("idna")

    @property
    def where(self) -> str:
        """How error messages name the endpoint."""
        return self.unix_path if self.unix_path is not None else self.url


def parse_docker_host(host: str | None = None, environ: Mapping[str, str] | None = None) -> Endpoint:
    """The endpoint for ``host``, or ``$DOCKER_HOST``, or Docker's default socket.

    Raises :class:`DockerError` for what this client cannot speak: ``ssh://``, TLS
    (``DOCKER_TLS_VERIFY``), named pipes, or anything that is not a URL it knows.
    """
    environ = os.environ if environ is None else environ
    url = host or environ.get("DOCKER_HOST") or DEFAULT_HOST
    parts = urlsplit(url)
    if parts.scheme == "unix":
        path = parts.netloc + parts.path
        if not path:
            raise DockerError(f"DOCKER_HOST {url!r} names no socket path (expected unix:///path/to/docker.sock)")
        return Endpoint(url, unix_path=path)
    if parts.scheme in ("tcp", "http"):
        if environ.get("DOCKER_TLS_VERIFY"):
            raise DockerError(
                f"Docker over TLS (DOCKER_TLS_VERIFY is set, DOCKER_HOST={url}) is not supported yet: "
                "use the daemon's unix socket, or a plain tcp:// host on a trusted network"
            )
        if not parts.hostname:
            raise DockerError(f"DOCKER_HOST {url!r} names no host (expected tcp://host:port)")
        return Endpoint(url, tcp_host=parts.hostname, tcp_port=parts.port or DEFAULT_TCP_PORT)
    if parts.scheme in ("ssh", "https", "npipe"):
        raise DockerError(
            f"DOCKER_HOST={url} is not supported yet: isol8rt talks to Docker over a unix socket "
            "(unix:///var/run/docker.sock) or plain tcp://host:port"
        )
    raise DockerError(f"DOCKER_HOST {url!r} is not a Docker host URL (expected unix:///path or tcp://host:port)")


async def connect(endpoint: Endpoint, timeout: float) -> trio.SocketStream:
    """Open a stream to the daemon; :class:`DaemonNotRunning` when nothing answers within ``timeout``."""
    try:
        with trio.fail_after(timeout):
            if endpoint.unix_path is not None:
                return await trio.open_unix_socket(endpoint.unix_path)
            return await trio.open_tcp_stream(endpoint.tcp_host, endpoint.tcp_port)
    except trio.TooSlowError:
        where = f"no answer on {endpoint.where} within {timeout:g} s"
        raise DaemonNotRunning(f"Docker is not running ({where}): {_FIX}") from None
    except PermissionError:
        raise DaemonNotRunning(
            f"Docker is running but this user may not use {endpoint.where} (permission denied): "
            "add the user to the `docker` group, or run as root"
        ) from None
    except OSError as exc:
        what = "no socket at" if exc.errno == errno.ENOENT else "no answer on"
        raise DaemonNotRunning(f"Docker is not running ({what} {endpoint.where}): {_FIX}") from None


#: A request body: bytes (sent with a Content-Length) or an iterable of chunks (sent chunked).
RequestBody = bytes | AsyncIterable[bytes] | Iterable[bytes] | None


class Connection:
    """One HTTP connection to the daemon: a socket plus its h11 state machine."""

    __slots__ = ("stream", "http", "closed")

    def __init__(self, stream: trio.SocketStream, http: ClientConnection) -> None:
        self.stream = stream
        self.http = http
        self.closed = False

    async def request(
        self,
        method: str,
        target: str,
        *,
        body: RequestBody = None,
        content_type: str | None = None,
        upgrade: bool = False,
    ) -> Response | Upgraded:
        """Send a request and wait for the head of its answer.

        A ``bytes`` body goes with a Content-Length; an (async) iterable of bytes is streamed with
        chunked encoding. If the daemon answers (an error, typically) and drops the connection before
        the body is all sent, that answer is returned rather than the broken pipe.
        """
        if body is None or isinstance(body, (bytes, bytearray, memoryview)):
            payload = None if body is None else bytes(body)
            await self.send(self.http.request(method, target, body=payload, content_type=content_type,
                                              headers=UPGRADE_TCP if upgrade else ()))
            return await self._head()
        await self.send(self.http.request(method, target, chunked=True, content_type=content_type))
        try:
            if isinstance(body, AsyncIterable):
                async for piece in body:
                    await self.send(self.http.chunk(bytes(piece)))
            else:
                for piece in body:
                    await self.send(self.http.chunk(bytes(piece)))
            await self.send(self.http.end())
        except StreamClosed as broken:
            # The daemon may have answered (an error, say) and hung up before taking the whole body:
            # that answer says more than the broken pipe.
            try:
                return await self._head()
            except DockerError:
                raise broken from None
        return await self._head()

    async def _head(self) -> Response | Upgraded:
        event = await self.next_event()
        if not isinstance(event, (Response, Upgraded)):
            raise DockerError(f"the Docker daemon sent {event!r} where a response head was expected")
        return event

    async def read_body(self) -> bytes:
        """The rest of the current response's body."""
        pieces = []
        while (piece := await self.receive_body()) is not None:
            pieces.append(piece)
        return b"".join(pieces)

    async def receive_body(self) -> bytes | None:
        """The next piece of the current response's body; None once it is complete."""
        event = await self.next_event()
        if isinstance(event, Body):
            return event.data
        if isinstance(event, EndOfBody):
            return None
        raise DockerError(f"the Docker daemon sent {event!r} inside a response body")

    async def next_event(self) -> ResponseEvent:
        try:
            while (event := self.http.next_event()) is NEED_DATA:
                try:
                    data = await self.stream.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    raise StreamClosed(f"the connection to the Docker daemon broke: {exc}") from None
                self.http.receive_data(data)
        except PeerClosed:
            raise StreamClosed("the Docker daemon closed the connection before its answer was complete") from None
        except RemoteProtocolError as exc:
            raise DockerError(f"the Docker daemon sent {exc}") from None
        return event

    async def send(self, data: bytes) -> None:
        if not data:
            return
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise StreamClosed(f"the connection to the Docker daemon broke: {exc}") from None

    def close(self) -> None:
        # Synchronous on purpose: it runs while unwinding from a cancellation, where an await would
        # raise Cancelled again instead of closing.
        if not self.closed:
            self.closed = True
            self.stream.socket.close()

    def has_unread_data(self) -> bool:
        """True when an idle connection is readable, which means the daemon closed it (EOF) or sent
        something no request asked for: either way it cannot carry another request."""
        poller = select.poll()
        poller.register(self.stream.socket.fileno(), select.POLLIN)
        return bool(poller.poll(0))


class ConnectionPool:
    """Keep-alive connections to one daemon.

    A connection goes back to the pool only when its last response was read to the end and both
    sides keep it open; any other (an error, a cancellation, a half-read body) is closed. At most
    ``max_idle`` idle connections are kept; busy ones are not capped. Hijacked connections (attach,
    exec) are opened with :meth:`open` and never come back.
    """

    def __init__(self, endpoint: Endpoint, *, connect_timeout: float, max_idle: int = 8) -> None:
        self.endpoint = endpoint
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        #: How many connections were opened so far (tests check that keep-alive works).
        self.connections_opened = 0
        self._idle: list[Connection] = []
        self._closed = False

    async def open(self) -> Connection:
        """A new connection, not taken from the pool."""
        if self._closed:
            raise DockerError("this DockerClient is closed")
        stream = await connect(self.endpoint, self.connect_timeout)
        self.connections_opened += 1
        return Connection(stream, ClientConnection(self.endpoint.host_header))

    async def acquire(self) -> Connection:
        """An idle connection, or a new one. Hand it back with :meth:`release` (or close it)."""
        return self._take_idle() or await self.open()

    def release(self, conn: Connection) -> None:
        """Take ``conn`` back if it can carry another request; close it otherwise."""
        if self._closed or conn.closed or not conn.http.reusable or len(self._idle) >= self.max_idle:
            conn.close()
            return
        conn.http.start_next_cycle()
        self._idle.append(conn)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """Lend a connection for one exchange; it is closed if the exchange fails or is cancelled."""
        conn = await self.acquire()
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        self.release(conn)

    def _take_idle(self) -> Connection | None:
        while self._idle:
            # Most recently used first: the one least likely to have been dropped by the daemon.
            conn = self._idle.pop()
            if not conn.has_unread_data():
                return conn
            conn.close()
        return None

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        await trio.lowlevel.checkpoint()


class HijackedStream(trio.abc.AsyncResource):
    """The raw stream of an attach or an exec, after the daemon's ``101 UPGRADED``.

    Sending writes to the process's stdin as is; receiving demultiplexes its stdout and stderr. This
    is the product's hot path: :meth:`receive` is one socket read and one demux pass.

    Concurrent :meth:`send_all` calls are serialized (their bytes never interleave); :meth:`receive`
    must be called from one task at a time (trio raises ``BusyResourceError`` otherwise).
    """

    __slots__ = ("_stream", "_demuxer", "_initial", "_send_lock")

    def __init__(self, stream: trio.SocketStream, initial: bytes = b"") -> None:
        self._stream = stream
        self._demuxer = FrameDemuxer()
        # Bytes that came in the same read as the 101 head: the first frames, sometimes.
        self._initial = initial
        self._send_lock = trio.Lock()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` to the process's stdin."""
        await self._locked_send(self._stream.send_all, data)

    async def send_eof(self) -> None:
        """Close the process's stdin (half-close: output can still be received).

        For an attach, the container must have been created with ``StdinOnce=True`` for the daemon to
        pass the EOF on to its stdin.
        """
        await self._locked_send(self._stream.send_eof)

    async def receive(self) -> list[tuple[int, bytes]]:
        """The ``(stream, payload)`` pairs of the next read (stream 1 = stdout, 2 = stderr).

        Usually one socket read; a read that completes no payload (a few bytes of a frame header) is
        followed by another, so ``[]`` is returned only at the end of the stream.
        """
        if self._initial:
            data, self._initial = self._initial, b""
            events = self._demuxer.feed(data)
            if events:
                await trio.lowlevel.checkpoint()
                return events
        while True:
            try:
                data = await self._stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise StreamClosed(f"the attached stream broke: {exc}") from None
            if not data:
                if self._demuxer.mid_frame:
                    raise StreamClosed("the Docker daemon closed the attached stream in the middle of a frame")
                return []
            events = self._demuxer.feed(data)
            if events:
                return events

    async def aclose(self) -> None:
        """Close the stream (safe to call twice). A :meth:`receive` waiting in another task raises
        :class:`StreamClosed`."""
        await self._stream.aclose()

    async def _locked_send(self, send, *args: object) -> None:
        # acquire_nowait first: the uncontended case (nearly always) then costs no scheduler round
        # trip; the send itself is the checkpoint.
        try:
            self._send_lock.acquire_nowait()
        except trio.WouldBlock:
            await self._send_lock.acquire()
        try:
            await send(*args)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise StreamClosed(f"the attached stream broke: {exc}") from None
        finally:
            self._send_lock.release()
