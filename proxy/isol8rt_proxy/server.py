"""The proxy's shared state and its two loops: accepting client connections, obeying control lines.

Every client connection runs in its own task under one nursery, inside its own cancel scope, so that
``reset`` can close exactly the connections open at that moment and wait until they are gone (their
tunnels' log lines are written by then). The policy is one attribute, swapped whole: a request reads it
once, when it arrives.
"""

from __future__ import annotations

import errno
import sys
import traceback

import msgspec
import trio

from isol8rt_proxy.client import serve_client
from isol8rt_proxy.config import Settings
from isol8rt_proxy.output import Output
from isol8rt_proxy.policy import Policy, PolicyError
from isol8rt_proxy.streams import RECEIVE_SIZE, close_now
from isol8rt_proxy.wire import Error, LineSplitter, PolicyOk, RequestLog, Reset, ResetOk, SetPolicy, control_decoder

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

    def log(self, record: RequestLog) -> None:
        self._output.emit(record)

    # ----------------------------------------------------------------------------------------------
    # client connections

    async def serve(self, listeners: list[trio.SocketListener]) -> None:
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self._accept, listener, nursery)

    async def _accept(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in _CAPACITY_ERRNOS:
                        raise
                    await trio.sleep(_CAPACITY_PAUSE)
                    continue
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

    async def reset(self) -> None:
        """Close every connection open now, and return once all of them are closed."""
        closing = list(self._open)
        for connection in closing:
            connection.scope.cancel()
        for connection in closing:
            await connection.closed.wait()

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
        if isinstance(message, Reset):
            await self.reset()
            self._output.emit(ResetOk())
            return
        try:
            policy = compile_policy(message)
        except PolicyError as exc:
            self._output.emit(Error(message=str(exc), run=message.run))
            return
        self.policy, self.run = policy, message.run
        self._output.emit(PolicyOk(run=message.run))
