"""Trio I/O to the daemon under the sans-io HTTP connection (:mod:`isol8rt.wire.http_client`, whose bytes
the shared loop of :mod:`isol8rt.wire.http_trio` moves): links to the daemon (a unix or TCP socket, TLS,
or an ssh command's stdio; where it is comes from :mod:`._endpoint`), a keep-alive pool, and the hijacked
streams of attach and exec.

This is the Docker client's one I/O boundary, and its exceptions are mapped here, once: a failed connect
becomes :class:`DaemonNotRunning`; TLS refused either way, or an ssh that fails, :class:`DaemonRefused`;
a connection that breaks once open, or a daemon that hangs up before its answer is complete,
:class:`StreamClosed`; a daemon that breaks HTTP :class:`DockerError`.
"""

from __future__ import annotations

import errno
import select
import ssl
import subprocess
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import asynccontextmanager

import trio

from ..wire.http_client import ClientConnection, RemoteProtocolError, Response, Upgraded
from ..wire.http_trio import RECEIVE_SIZE, HTTPStream
from ._api import UPGRADE_TCP
from ._endpoint import Endpoint
from ._errors import DaemonNotRunning, DaemonRefused, DockerError, StreamClosed
from ._frames import FrameDemuxer

_FIX = "run `isol8rt setup` to install and start it, or start your Docker daemon"


class Link:
    """An open byte stream to the daemon, whatever carries it: a unix or TCP socket, TLS over TCP, or
    the stdio of an ssh command. ``stream`` is what HTTP and hijacked streams read and write."""

    __slots__ = ("stream", "endpoint", "heard", "_fd", "_process")

    def __init__(self, stream: trio.abc.Stream, endpoint: Endpoint, fd: int,
                 process: trio.Process | None = None) -> None:
        self.stream = stream
        self.endpoint = endpoint
        #: Whether the daemon has sent anything on this link yet (see :meth:`refused_unheard`).
        self.heard = False
        self._fd = fd
        self._process = process

    def close(self) -> None:
        # Synchronous on purpose: it runs while unwinding from a cancellation, where an await would
        # raise Cancelled again instead of closing.
        if self._process is None:
            _socket_of(self.stream).close()
            return
        self._process.kill()
        for pipe in (self._process.stdin, self._process.stdout, self._process.stderr):
            if pipe is not None:
                pipe.close()  # type: ignore[union-attr]  # trio's FdStream closes synchronously
        _reap_later(self._process)

    def readable(self) -> bool:
        """True when the stream has something to read (or its end): for an idle connection, that the
        daemon closed it or sent what no request asked for."""
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        return bool(poller.poll(0))

    async def send_eof(self) -> None:
        if isinstance(self.stream, trio.SSLStream):
            # TLS has a close_notify, but trio sends it only with a full shutdown that waits for the
            # daemon's own: no half-close that leaves the output readable.
            raise DockerError(f"cannot close a container's stdin over TLS ({self.endpoint.where})")
        await self.stream.send_eof()  # type: ignore[attr-defined]

    async def broken(self, exc: BaseException, what: str) -> DockerError:
        """The exception for ``exc``, ``what`` broken: a TLS alert is the daemon refusing this client
        (a TLS 1.3 server checks the client's certificate after the client's handshake is over, so its
        verdict arrives on the first read); a failed ssh says why on its stderr."""
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ssl.SSLError):
            return _tls_refused(self.endpoint, cause)
        return (await self.explain_end()) or self.refused_unheard(exc) or StreamClosed(f"{what} broke: {exc}")

    def refused_unheard(self, exc: BaseException | None = None) -> DockerError | None:
        """A TLS link the daemon closed or reset before sending a byte: dockerd (Go's TLS 1.3) checks the
        client's certificate after the handshake, sends its alert and hangs up at once, and the reset
        that follows our unread request often destroys the alert before it is read. So this is, most
        likely, the client certificate refused; it says so, rather than "connection reset"."""
        if self.heard or not isinstance(self.stream, trio.SSLStream):
            return None
        how = f"reset it ({cause})" if (cause := exc and (exc.__cause__ or exc.__context__)) else "closed it"
        return DaemonRefused(
            f"Docker at {self.endpoint.where} accepted the TLS connection, then {how} before answering: it "
            "most likely refused the client certificate: check cert.pem and key.pem in DOCKER_CERT_PATH"
        )

    async def explain_end(self) -> DockerError | None:
        """Why an ssh link ended before the daemon's answer: ssh's own words, when it failed."""
        if self._process is None:
            return None
        with trio.move_on_after(5):
            await self._process.wait()
        if self._process.returncode in (None, 0):
            return None
        said = b""
        if self._process.stderr is not None:
            with trio.move_on_after(1):
                said = bytes(await self._process.stderr.receive_some(65536))
        line = said.decode(errors="replace").strip().splitlines()
        why = line[-1] if line else f"ssh exited with status {self._process.returncode}"
        return DaemonRefused(f"cannot reach Docker at {self.endpoint.where} over ssh: {why}")


def _socket_of(stream: trio.abc.Stream) -> trio.socket.SocketType:
    if isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    return stream.socket  # type: ignore[attr-defined,no-any-return]


#: Killed ssh processes not yet waited for. Reaped on the next dial (a zombie each until then).
_killed: list[trio.Process] = []


def _reap_later(process: trio.Process) -> None:
    _killed.append(process)


def _reap_killed() -> None:
    _killed[:] = [process for process in _killed if process.poll() is None]


def _tls_refused(endpoint: Endpoint, exc: ssl.SSLError) -> DockerError:
    reason = getattr(exc, "verify_message", None) or exc.reason or str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DaemonRefused(
            f"Docker at {endpoint.where}: the daemon's TLS certificate is not trusted ({reason}): "
            "check ca.pem in DOCKER_CERT_PATH and the host name"
        )
    return DaemonRefused(
        f"Docker at {endpoint.where} refused the TLS connection ({reason}): "
        "check the client certificate (cert.pem, key.pem) in DOCKER_CERT_PATH"
    )


async def connect(endpoint: Endpoint, timeout: float) -> Link:
    """Open a stream to the daemon. :class:`DaemonNotRunning` when nothing answers within ``timeout``;
    :class:`DaemonRefused` when TLS fails (an untrusted daemon, a refused client certificate)."""
    try:
        with trio.fail_after(timeout):
            if endpoint.ssh_argv is not None:
                return await _open_ssh(endpoint)
            if endpoint.unix_path is not None:
                sock = await trio.open_unix_socket(endpoint.unix_path)
                return Link(sock, endpoint, sock.socket.fileno())
            assert endpoint.tcp_host is not None
            sock = await trio.open_tcp_stream(endpoint.tcp_host, endpoint.tcp_port)
            if endpoint.tls is None:
                return Link(sock, endpoint, sock.socket.fileno())
            tls = trio.SSLStream(sock, endpoint.tls.context(), server_hostname=endpoint.tcp_host,
                                 https_compatible=True)
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError as exc:
                sock.socket.close()
                cause = exc.__cause__
                if isinstance(cause, ssl.SSLError):
                    raise _tls_refused(endpoint, cause) from None
                raise DaemonNotRunning(f"Docker at {endpoint.where} hung up during the TLS handshake") from None
            return Link(tls, endpoint, sock.socket.fileno())
    except trio.TooSlowError:
        where = f"no answer on {endpoint.where} within {timeout:g} s"
        raise DaemonNotRunning(f"Docker is not running ({where}): {_FIX}") from None
    except PermissionError:
        raise DaemonNotRunning(
            f"Docker is running but this user may not use {endpoint.where} (permission denied): "
            "add the user to the `docker` group, or run as root"
        ) from None
    except OSError as exc:
        if endpoint.unix_path is None:
            raise DaemonNotRunning(f"cannot reach Docker at {endpoint.where}: {_why(exc)}") from None
        what = "no socket at" if exc.errno == errno.ENOENT else "no answer on"
        raise DaemonNotRunning(f"Docker is not running ({what} {endpoint.where}): {_FIX}") from None


def _why(exc: OSError) -> str:
    # trio's "all attempts to connect ... failed" carries each attempt's error as its cause.
    causes = getattr(exc.__cause__, "exceptions", None) or [exc]
    reasons = dict.fromkeys(cause.strerror or str(cause) for cause in causes)
    return "; ".join(reasons)


async def _open_ssh(endpoint: Endpoint) -> Link:
    assert endpoint.ssh_argv is not None
    _reap_killed()
    try:
        process = await trio.lowlevel.open_process(
            list(endpoint.ssh_argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except FileNotFoundError:
        raise DaemonNotRunning(
            f"cannot reach Docker at {endpoint.where}: {endpoint.ssh_argv[0]!r} is not installed"
        ) from None
    assert process.stdin is not None and process.stdout is not None
    stream = trio.StapledStream(process.stdin, process.stdout)
    return Link(stream, endpoint, process.stdout.fileno(), process)  # type: ignore[attr-defined]


#: A request body: bytes (sent with a Content-Length) or an iterable of chunks (sent chunked).
RequestBody = bytes | AsyncIterable[bytes] | Iterable[bytes] | None


class Connection(HTTPStream):
    """One HTTP connection to the daemon: a link under its h11 state machine (the shared trio loop of
    :class:`~isol8rt.wire.http_trio.HTTPStream`), its failures mapped to the Docker client's exceptions."""

    __slots__ = ("link", "closed")

    def __init__(self, link: Link, http: ClientConnection) -> None:
        super().__init__(link.stream, http)
        self.link = link
        self.closed = False

    async def broken(self, exc: trio.BrokenResourceError | trio.ClosedResourceError) -> Exception:
        return await self.link.broken(exc, "the connection to the Docker daemon")

    def received(self, data: bytes | bytearray) -> None:
        if data:  # b"": the daemon's end, not a word from it
            self.link.heard = True

    async def ended(self) -> Exception:
        return (await self.link.explain_end()) or self.link.refused_unheard() or StreamClosed(
            "the Docker daemon closed the connection before its answer was complete")

    def misspoke(self, exc: RemoteProtocolError) -> Exception:
        return DockerError(f"the Docker daemon sent {exc}")

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
            return await self.head()
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
                return await self.head()
            except DockerError:
                raise broken from None
        return await self.head()

    def close(self) -> None:
        # Synchronous on purpose: it runs while unwinding from a cancellation, where an await would
        # raise Cancelled again instead of closing.
        if not self.closed:
            self.closed = True
            self.link.close()

    def has_unread_data(self) -> bool:
        """True when an idle connection is readable, which means the daemon closed it (EOF) or sent
        something no request asked for: either way it cannot carry another request."""
        return self.link.readable()


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
        link = await connect(self.endpoint, self.connect_timeout)
        self.connections_opened += 1
        return Connection(link, ClientConnection(self.endpoint.host_header))

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

    __slots__ = ("_link", "_stream", "_demuxer", "_initial", "_send_lock")

    def __init__(self, link: Link, initial: bytes = b"") -> None:
        self._link = link
        self._stream = link.stream
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
        await self._locked_send(self._link.send_eof)

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
                raise await self._link.broken(exc, "the attached stream") from None
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
            raise await self._link.broken(exc, "the attached stream") from None
        finally:
            self._send_lock.release()
