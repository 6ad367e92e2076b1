"""The proxy's shared state and its two loops: accepting client connections, obeying control lines.

Every client connection runs in its own task under one nursery, inside its own cancel scope, so that
``reset`` can close exactly the connections open at that moment and wait until they are gone (their
tunnels' log lines are written by then). ``reset`` also refuses every connection still waiting in the
listeners' backlogs: the agent resets the proxy once the run's processes are dead, so what waits there
was sent by a run that is over, and must never be served under (or logged in) the next one. The policy
is one attribute, swapped whole: a request reads it once, when it arrives.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import sys
import traceback

import msgspec
import trio

from isol8rt.agent.proxy_protocol import (
    Error,
    LineSplitter,
    PolicyOk,
    RequestLog,
    ResetConnections,
    ResetFailed,
    ResetOk,
    SetPolicy,
    control_decoder,
)
from isol8rt_proxy.client import serve_client
from isol8rt_proxy.config import Settings
from isol8rt_proxy.output import Output
from isol8rt_proxy.policy import Policy, PolicyError
from isol8rt_proxy.streams import RECEIVE_SIZE, close_now

#: accept() failing for want of file descriptors or memory: wait a little and accept again.
_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_CAPACITY_PAUSE = 0.1

#: A control line longer than this is refused unread (a policy is a few kilobytes).
_MAX_CONTROL_LINE = 4 * 1024 * 1024


def compile_policy(message: SetPolicy) -> Policy:
    return Policy(
        allow=message.allow,
        deny=message.deny,
        allow_private=message.allow_private,
        connect_ports=message.connect_ports,
    )


class _Connection:
    __slots__ = ("stream", "accepted_at", "scope", "closed")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.accepted_at = trio.current_time()
        self.scope = trio.CancelScope()
        self.closed = trio.Event()


class Proxy:
    def __init__(self, settings: Settings, policy: Policy, run: str | None, output: Output) -> None:
        self.settings = settings
        self.policy = policy
        self.run = run
        self._output = output
        self._open: set[_Connection] = set()
        self._listeners: list[trio.SocketListener] = []

    def log(self, record: RequestLog) -> None:
        self._output.emit(record)

    # ----------------------------------------------------------------------------------------------
    # client connections

    async def serve(self, listeners: list[trio.SocketListener]) -> None:
        self._listeners = list(listeners)
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self._accept, listener, nursery)

    async def _accept(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        """Accept and register connections with no checkpoint between the two (trio's own accept() has one
        after the system call), so that a reset sees every connection either still in the backlog or
        registered as open, never one held in between (it would be served under the next run)."""
        async with listener:
            with _duplicate(listener) as raw:
                while True:
                    await trio.lowlevel.wait_readable(raw)
                    try:
                        self._accept_waiting(raw, nursery)
                    except OSError as exc:
                        if exc.errno not in _CAPACITY_ERRNOS:
                            raise
                        await trio.sleep(_CAPACITY_PAUSE)

    def _accept_waiting(self, raw: socket.socket, nursery: trio.Nursery) -> None:
        while True:
            try:
                client, _ = raw.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:  # its client gave up meanwhile
                    continue
                raise
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(client))
            if len(self._open) >= self.settings.max_connections:
                close_now(stream)
                continue
            # Registered here, not in the task: the cap must count connections not yet started.
            connection = _Connection(stream)
            self._open.add(connection)
            nursery.start_soon(self._serve_connection, connection)

    async def _serve_connection(self, connection: _Connection) -> None:
        try:
            with connection.scope:
                await serve_client(connection.stream, self, connection.accepted_at)
        except Exception as exc:  # a bug costs one connection, never the proxy
            traceback.print_exc(file=sys.stderr)
            self._output.emit(Error(message=f"internal error: {exc!r}"))
        finally:
            close_now(connection.stream)
            self._open.discard(connection)
            connection.closed.set()

    async def reset(self) -> tuple[int, int]:
        """Refuse every connection waiting to be accepted and close every one open; return (closed,
        refused) once all of them are gone. Raises OSError if the backlog could not be emptied.

        The backlog is emptied first and with no checkpoint before the open connections are listed, so
        the accept task cannot take a connection in between that neither step would see."""
        refused, emptied = _refuse_backlogs(self._listeners)
        closing = list(self._open)
        for connection in closing:
            connection.scope.cancel()
        for connection in closing:
            await connection.closed.wait()
        if not emptied:  # out of descriptors: the connections just closed gave some back
            more, emptied = _refuse_backlogs(self._listeners)
            refused += more
            if not emptied:
                raise OSError(errno.EMFILE, "cannot empty the listening backlog: out of file descriptors")
        self.run = None
        return len(closing), refused

    # ----------------------------------------------------------------------------------------------
    # control lines

    async def obey(self, stdin: trio.abc.ReceiveStream) -> None:
        """Apply control lines from ``stdin`` in order, each answered on stdout, until EOF."""
        lines = LineSplitter(_MAX_CONTROL_LINE)
        while data := await stdin.receive_some(RECEIVE_SIZE):
            for line in lines.feed(data):
                await self._obey_line(line)

    async def _obey_line(self, line: bytes | None) -> None:
        if line is None:
            self._output.emit(Error(message="control line too long"))
            return
        if not line.strip():
            return
        try:
            message = control_decoder.decode(line)
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
            self._output.emit(Error(message=f"bad control line: {exc}"))
            return
        if isinstance(message, ResetConnections):
            try:
                closed, refused = await self.reset()
            except OSError as exc:  # the agent then retires the container: its proxy may serve a stale request
                self._output.emit(ResetFailed(message=str(exc)))
                return
            self._output.emit(ResetOk(closed=closed, refused=refused))
            return
        try:
            policy = compile_policy(message)
        except PolicyError as exc:
            self._output.emit(Error(message=str(exc), run=message.run))
            return
        self.policy, self.run = policy, message.run
        self._output.emit(PolicyOk(run=message.run))


def _duplicate(listener: trio.SocketListener) -> socket.socket:
    """A non-blocking standard-library socket on a duplicate of the listening socket's descriptor: its
    accept() is one system call, with no checkpoint."""
    raw = socket.socket(fileno=os.dup(listener.socket.fileno()))
    raw.setblocking(False)
    return raw


def _refuse_backlogs(listeners: list[trio.SocketListener]) -> tuple[int, bool]:
    """Accept and reset, unread, every connection waiting in the listeners' backlogs; returns how many,
    and False if accept() ran out of descriptors before the backlogs were empty."""
    refused = 0
    for listener in listeners:
        with _duplicate(listener) as raw:
            while True:
                try:
                    connection, _ = raw.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    if exc.errno == errno.ECONNABORTED:  # its client gave up meanwhile
                        continue
                    if exc.errno in _CAPACITY_ERRNOS:
                        return refused, False
                    raise
                with connection:
                    # An RST rather than a FIN: the client learns it was refused, not answered.
                    with contextlib.suppress(OSError):
                        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                refused += 1
    return refused, True
