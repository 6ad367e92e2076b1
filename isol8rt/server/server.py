"""The server process: trio listeners, one task per connection, and the lifecycle around them.

Start: open the key store, bind, remove what dead servers left behind (:mod:`.orphans`), start the
shared engine in the server's own nursery (every engine runs there) and fill its warm pool, then accept.
Each connection reads a request's head with :class:`~._http_server.ServerConnection`, lets
:class:`~.app.App` admit it (route, browser checks, key, limits), and only then reads its body and hands it
over. A request still being handled after
:data:`WATCH_AFTER_S` gets a watcher that keeps reading the socket: the client closing it cancels the
handler, so a client that walks away mid-run (plain HTTP, SSE or WebSocket) frees its container at once.
One :class:`_Watchdog` task starts those watchers, so a quick request costs no task of its own.

Budgets on what a client can hold (docs/server.md lists them, :mod:`.settings` has their defaults):
connections in total and per address (past them: 429 and close); the keep-alive wait, the head's time
from its first byte and the body's time after admission (past them: 408 and close); and a send that
makes no progress for ``send_timeout_s`` (a client that stopped reading its stream or its answer): the
request's handler is cancelled, which ends its run and frees its slot. Sends are timed by one task that
looks at the sends in progress, so a send that completes at once (nearly all) costs no cancel scope.

Stop (SIGTERM, SIGINT, or :meth:`Server.stop`): stop accepting, close idle connections, give requests in
flight ``drain_s`` to finish, cancel the rest, then stop every engine (which removes every container
they made). A second signal skips the wait.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
from collections import deque

import msgspec
import trio

from .. import docker, node
from ..errors import Isol8Error
from ..wire import errors, websocket
from . import _http_server
from .app import App, Call, ClientGone
from .auth import Authenticator
from .engines import EngineSet
from .keys import KeyIndex, KeyStore
from .keys_pg import PostgresKeyStore, is_url
from .limits import KeyLimits
from .orphans import InstanceFile, sweep
from .pieces import Pieces
from .origins import BrowserGuard
from .sessions import SessionRegistry
from .settings import DEFAULT_MAX_FILE_BYTES, ServerConfig, key_runs
from .slots import RunSlots
from .unix import UnixEndpoint

__all__ = ["Server", "ServerConfig"]

log = logging.getLogger("isol8rt.server")

RECEIVE_SIZE = 64 * 1024
#: A request answered within this long never starts watching for the client leaving: most answers are
#: faster than that, and a watcher per request (a task, a cancel scope, system calls) cost a quick
#: request's round trip about a fifth of its time.
WATCH_AFTER_S = 0.02
#: How much a client may send past its current request (pipelining) before we stop reading ahead.
MAX_READ_AHEAD = 64 * 1024


def key_store(config: ServerConfig) -> KeyIndex | None:
    """Where the API keys are kept: a ``postgresql://`` URL (shared by several nodes) or a SQLite file."""
    if config.keys_db is None:
        return None
    if isinstance(config.keys_db, str) and is_url(config.keys_db):
        return PostgresKeyStore(config.keys_db, refresh_s=config.keys_refresh_s, max_stale_s=config.keys_max_stale_s)
    return KeyStore(config.keys_db)


class Server:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        options = config.options
        if options.max_file_bytes is None:
            options = msgspec.structs.replace(options, max_file_bytes=DEFAULT_MAX_FILE_BYTES)
        #: The ceiling every run is under: the configured options, with the server's own defaults filled in.
        self.options = options
        self.instance = InstanceFile(config.state_dir)
        #: This node's id, on each of its containers: its clean-up touches no other node's.
        self.node_id = node.for_server(config.state_dir, config.node_id)
        self.keys = key_store(config)
        self.engines = EngineSet(options, max_extra=config.max_engines, per_owner=config.max_engines_per_key,
                                 idle_s=config.engine_idle_s, on_new_engine=self.instance.add_engine,
                                 node_id=self.node_id)
        self.sessions = SessionRegistry(self.engines, ttl_s=config.session_ttl_s,
                                        max_per_owner=config.max_sessions_per_key,
                                        memory_per_owner=config.session_memory_per_key,
                                        max_total=config.max_sessions)
        self.app = App(
            options=options,
            exact_options=config.exact_options,
            auth=Authenticator(config.api_key, self.keys, open_access=config.open_access),
            engines=self.engines,
            sessions=self.sessions,
            limits=KeyLimits(rate=config.rate_limit, concurrency=config.key_concurrency,
                             queue_depth=config.queue_depth, queue_wait_s=config.queue_wait_s),
            slots=RunSlots(max(1, options.max_concurrent), key_runs(config)),
            guard=BrowserGuard(config.allowed_origins, config.allowed_hosts, open_access=config.open_access),
            keys=self.keys,
            cleanup=self._sweep,
            ws_idle_s=config.ws_idle_s,
            key_ttl_ms=config.key_ttl_ms,
            default_tenant=config.default_tenant,
        )
        self.port: int | None = None
        self.draining = False
        self._stop = trio.Event()
        self._force = trio.Event()
        self._idle_scopes: set[trio.CancelScope] = set()
        self._connections = 0
        self._per_address: dict[str, int] = {}
        self._no_connections = trio.Event()
        self._no_connections.set()
        self._watchdog = _Watchdog()
        #: When a connection last opened or closed (see :meth:`_exit_when_idle`).
        self._last_activity = 0.0
        #: Sends in progress: who is sending, and since when (see :meth:`_reap_stuck_sends`).
        self.sending: dict[_Exchange, float] = {}

    # ------------------------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Begin a graceful stop (safe to call from any task, any number of times)."""
        self._stop.set()

    async def _sweep(self) -> int:
        async with docker.DockerClient() as client:
            return await sweep(self.config.state_dir, client, self.node_id)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Serve until :meth:`stop` (or a signal); ``task_status.started`` gets the bound port."""
        config = self.config
        if self.keys is not None:
            # A thread: a shared store's database may take a while to answer (or not answer at all).
            await trio.to_thread.run_sync(self.keys.open)
        endpoint = None
        if config.socket_path is not None:
            endpoint = UnixEndpoint(config.socket_path)
            listeners = [endpoint.open()]
        else:
            listeners = await trio.open_tcp_listeners(config.port, host=config.host)
            self.port = listeners[0].socket.getsockname()[1]
        try:
            try:
                await self._sweep()
            except docker.DockerError as exc:
                log.warning("could not look for orphaned containers: %s", exc)
            # The engines' service tasks are children of this nursery: every engine has stopped (and removed
            # what it made) when it closes.
            failed: Isol8Error | None = None
            async with trio.open_nursery() as engines:
                try:
                    try:
                        await self.engines.start(prewarm=config.prewarm or False, nursery=engines)
                    except Isol8Error as exc:
                        failed = exc  # raised below, as itself: the CLI says why the server could not start
                    else:
                        await self._serve(listeners, task_status)
                finally:
                    with trio.CancelScope(shield=True):
                        await self.engines.stop()
            if failed is not None:
                raise failed
        finally:
            with trio.CancelScope(shield=True):
                for listener in listeners:
                    await listener.aclose()
                if endpoint is not None:
                    endpoint.close()
                if self.keys is not None:
                    self.keys.close()
                self.instance.remove()

    async def _serve(self, listeners, task_status) -> None:
        """Accept and answer requests (and keep house) until stopped, then drain."""
        async with trio.open_nursery() as nursery:
            if self.config.handle_signals:
                nursery.start_soon(self._signals)
            nursery.start_soon(self._janitor)
            if self.keys is not None:
                nursery.start_soon(self.keys.keep_fresh)
            nursery.start_soon(self._watchdog.run)
            nursery.start_soon(self._reap_stuck_sends)
            if self.config.idle_exit_s > 0:
                self._last_activity = trio.current_time()
                nursery.start_soon(self._exit_when_idle)
            async with trio.open_nursery() as connections:
                accept_scope = trio.CancelScope()
                nursery.start_soon(self._accept, listeners, connections, accept_scope)
                task_status.started(self.port)
                await self._stop.wait()
                await self._drain(accept_scope, connections)
            nursery.cancel_scope.cancel()

    async def _accept(self, listeners, connections: trio.Nursery, scope: trio.CancelScope) -> None:
        with scope:
            await trio.serve_listeners(self._connection, listeners, handler_nursery=connections)

    async def _drain(self, accept_scope: trio.CancelScope, connections: trio.Nursery) -> None:
        self.draining = True
        accept_scope.cancel()
        for idle in list(self._idle_scopes):
            idle.cancel()
        with trio.move_on_after(self.config.drain_s):
            async with trio.open_nursery() as waiting:
                async def forced() -> None:
                    await self._force.wait()
                    waiting.cancel_scope.cancel()

                waiting.start_soon(forced)
                await self._no_connections.wait()
                waiting.cancel_scope.cancel()
        connections.cancel_scope.cancel()

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as received:
            async for signum in received:
                if self._stop.is_set():
                    log.warning("second signal: not waiting for runs in flight")
                    self._force.set()
                else:
                    log.warning("%s: stopping (draining runs for up to %g s)", signal.Signals(signum).name,
                                self.config.drain_s)
                    self.stop()

    async def _janitor(self) -> None:
        period = max(1.0, min(30.0, self.config.session_ttl_s / 4, self.config.engine_idle_s / 4))
        while True:
            await trio.sleep(period)
            try:
                await self.sessions.prune()
                await self.engines.prune()
            except Exception:  # noqa: BLE001 - housekeeping must not take the server down
                log.exception("pruning idle sessions and engines failed")

    async def _exit_when_idle(self) -> None:
        """Stop once nothing has happened for ``idle_exit_s``: no connection open, no session held (a
        background engine, like a language server, goes away when unused)."""
        idle_s = self.config.idle_exit_s
        while True:
            await trio.sleep_until(self._last_activity + idle_s)
            if self._connections or len(self.sessions):
                self._last_activity = trio.current_time()
            elif trio.current_time() >= self._last_activity + idle_s:
                log.warning("idle for %g s: stopping", idle_s)
                self.stop()
                return

    async def _reap_stuck_sends(self) -> None:
        """Every so often, drop the clients whose send has made no progress for ``send_timeout_s``: their
        request is cancelled (a run with it). Checked at a quarter of the timeout, so a stuck send ends
        between one and one and a quarter timeouts after it started."""
        timeout = self.config.send_timeout_s
        while True:
            await trio.sleep(max(0.05, timeout / 4))
            cutoff = trio.current_time() - timeout
            for exchange, since in list(self.sending.items()):
                if since <= cutoff:
                    del self.sending[exchange]
                    exchange.stuck()

    # ------------------------------------------------------------------------------------ connections

    async def _connection(self, stream: trio.SocketStream) -> None:
        config = self.config
        address = _peer_address(stream)
        if self._connections >= config.max_connections:
            return await _turn_away(stream, f"Too many connections to this server (limit {config.max_connections})")
        if self._per_address.get(address, 0) >= config.max_connections_per_address:
            return await _turn_away(stream, f"Too many connections from {address} (limit "
                                            f"{config.max_connections_per_address})")
        self._connections += 1
        self._last_activity = trio.current_time()
        self._per_address[address] = self._per_address.get(address, 0) + 1
        self._no_connections = trio.Event() if self._connections == 1 else self._no_connections
        try:
            # The nursery of this connection's watchers (at most one at a time), opened once.
            async with trio.open_nursery() as watchers:
                try:
                    await self._requests(stream, watchers)
                except (trio.BrokenResourceError, trio.ClosedResourceError, ClientGone):
                    pass  # inside the nursery: outside, trio would have wrapped it in an exception group
        except Exception:  # noqa: BLE001 - one connection's failure must never take the server down
            log.exception("a connection failed")
        finally:
            stream.socket.close()
            self._connections -= 1
            self._last_activity = trio.current_time()
            left = self._per_address[address] - 1
            if left:
                self._per_address[address] = left
            else:
                del self._per_address[address]
            if self._connections == 0:
                self._no_connections.set()

    async def _requests(self, stream: trio.SocketStream, watchers: trio.Nursery) -> None:
        """Serve one connection's requests in turn, until it ends."""
        config = self.config
        conn = _http_server.ServerConnection(config.max_body)
        while not self.draining:
            head = await self._read_head(stream, conn)
            if head is None:
                return
            exchange = _Exchange(self, stream, conn, watchers)
            try:
                call = self.app.admit(head)
                # A request beyond its key's places waits here for its turn, its body still unread.
                await self.app.wait_turn(call)
            except Exception as exc:  # noqa: BLE001 - refused by its head: answered, body unread
                with trio.move_on_after(config.send_timeout_s):
                    await self.app.refuse(exc, exchange)
                if conn.body_unread:
                    await _linger(stream)
                    return
                if exchange.gone or not conn.start_next_cycle():
                    return
                continue
            if not await self._hear(stream, conn, exchange, call):
                return
            if exchange.websocket is not None:
                with trio.move_on_after(config.send_timeout_s):
                    await exchange.websocket.finish()
                return
            if exchange.gone or not exchange.started or not conn.start_next_cycle():
                return

    async def _hear(self, stream: trio.SocketStream, conn: _http_server.ServerConnection, exchange: _Exchange,
                    call: Call) -> bool:
        """Read an admitted request's body and handle it; False when the connection must end instead."""
        try:
            body = await self._read_body(stream, conn)
            if body is None:
                return False
            if body:
                call.request = dataclasses.replace(call.request, body=body)
            self._watchdog.add(exchange)
            try:
                with exchange.handler_scope:
                    await self.app.handle(call, exchange)
            finally:
                await exchange.stop_watching()
        finally:
            self.app.release(call)
        return True

    async def _read_head(self, stream: trio.SocketStream, conn: _http_server.ServerConnection) -> _http_server.Request | None:
        """The next request's head, or None when the connection should end (closed, idle too long, too
        slow to send its head, draining, or broken HTTP, which has been answered)."""
        idle = trio.CancelScope(deadline=trio.current_time() + self.config.keepalive_s)
        started = False
        self._idle_scopes.add(idle)
        try:
            with idle:
                while True:
                    try:
                        event = conn.next_head()
                    except _http_server.ProtocolError as exc:
                        await _send_quietly(stream, conn.error_response(exc.status, errors.encode_error(exc.kind, exc.message)))
                        await _linger(stream)
                        return None
                    if isinstance(event, _http_server.Request):
                        return event
                    if event is _http_server.CLOSED:
                        return None
                    data = await stream.receive_some(RECEIVE_SIZE)
                    conn.receive_data(data)
                    if data and not started:
                        # A request has begun: it is no longer idle, and has the head's time to arrive.
                        started = True
                        self._idle_scopes.discard(idle)
                        idle.deadline = trio.current_time() + self.config.header_timeout_s
            if started and idle.cancelled_caught and not self.draining:
                message = f"Request timeout: its head took longer than {self.config.header_timeout_s:g} s"
                await _send_quietly(stream, conn.error_response(408, errors.encode_error(errors.REQUEST_TIMEOUT, message)))
            return None
        finally:
            self._idle_scopes.discard(idle)

    async def _read_body(self, stream: trio.SocketStream, conn: _http_server.ServerConnection) -> bytes | None:
        """The admitted request's body (its ``100 Continue`` sent first if it waits for one), or None when
        the connection should end (too slow, too large, broken: answered)."""
        try:
            body = conn.next_body()
            if not isinstance(body, bytes):
                await _send_quietly(stream, conn.take_continue())
                with trio.move_on_after(self.config.body_timeout_s):
                    while not isinstance(body, bytes):
                        conn.receive_data(await stream.receive_some(RECEIVE_SIZE))
                        body = conn.next_body()
                if not isinstance(body, bytes):
                    message = f"Request timeout: its body took longer than {self.config.body_timeout_s:g} s"
                    await _send_quietly(stream, conn.error_response(408, errors.encode_error(errors.REQUEST_TIMEOUT, message)))
                    return None
            return body
        except _http_server.ProtocolError as exc:
            await _send_quietly(stream, conn.error_response(exc.status, errors.encode_error(exc.kind, exc.message)))
            await _linger(stream)
            return None


def _peer_address(stream: trio.SocketStream) -> str:
    try:
        peer = stream.socket.getpeername()
    except OSError:
        return "?"
    # A Unix socket's peer has no address (an empty name): all of them are this machine's one user.
    return str(peer[0]) if isinstance(peer, tuple) else "local"


async def _turn_away(stream: trio.SocketStream, message: str) -> None:
    """Refuse a connection over a cap: 429 and close, without reading a request (a client over the cap
    gets an answer rather than a connection left waiting in the backlog)."""
    conn = _http_server.ServerConnection(0)
    answer = conn.response(429, errors.encode_error(errors.RATE_LIMITED, message), headers=[(b"Retry-After", b"1")],
                           close=True)
    try:
        await _send_quietly(stream, answer)
        await _linger(stream, limit=64 * 1024, seconds=0.5)
    finally:
        stream.socket.close()


async def _linger(stream: trio.SocketStream, limit: int = 1024 * 1024, seconds: float = 1.0) -> None:
    """Close gently after refusing a request mid-upload: closing with unread bytes makes the kernel send
    a reset, which can destroy our answer before the client reads it. So: end our side, then read and
    drop what is still coming, briefly."""
    with trio.move_on_after(seconds):
        try:
            await stream.send_eof()
            while limit > 0 and (data := await stream.receive_some(RECEIVE_SIZE)):
                limit -= len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def _send_quietly(stream: trio.SocketStream, data: bytes) -> None:
    if not data:
        return
    try:
        with trio.move_on_after(5):
            await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


class _Watchdog:
    """Starts a watcher for each request still being handled :data:`WATCH_AFTER_S` after it began.

    Requests wait in arrival order, which is also the order they fall due (the delay is the same for
    all), so the task sleeps until the oldest one's time and wakes only when there is one.
    """

    def __init__(self) -> None:
        self._waiting: dict[_Exchange, float] = {}
        self._arrived = trio.Event()

    def add(self, exchange: _Exchange) -> None:
        if not self._waiting:
            self._arrived.set()
        self._waiting[exchange] = trio.current_time() + WATCH_AFTER_S

    def discard(self, exchange: _Exchange) -> None:
        self._waiting.pop(exchange, None)

    async def run(self) -> None:
        while True:
            if not self._waiting:
                self._arrived = trio.Event()
                await self._arrived.wait()
                continue
            exchange, due = next(iter(self._waiting.items()))
            if due > trio.current_time():
                await trio.sleep_until(due)
                continue
            del self._waiting[exchange]
            exchange.start_watching()


class _Exchange:
    """:class:`~.app.Exchange` over one connection, for one request. ``handler_scope`` is cancelled
    when the client leaves while the request is handled, or stops reading what it is sent."""

    def __init__(self, server: Server, stream: trio.SocketStream, conn: _http_server.ServerConnection,
                 watchers: trio.Nursery) -> None:
        self._server = server
        self._stream = stream
        self._conn = conn
        self._watchers = watchers
        self.started = False
        self.gone = False
        self.websocket: _ServerWebSocket | None = None
        self.handler_scope = trio.CancelScope()
        self._watch_scope: trio.CancelScope | None = None
        self._watch_done: trio.Event | None = None

    def start_watching(self) -> None:
        self._watch_scope, self._watch_done = trio.CancelScope(), trio.Event()
        self._watchers.start_soon(self._watch)

    async def stop_watching(self) -> None:
        """No more watching: the handler is done, or the socket is handed over. Returns once no task
        reads the socket (a cancelled read loses no bytes)."""
        self._server._watchdog.discard(self)
        if self._watch_scope is not None:
            assert self._watch_done is not None  # set together with the scope
            self._watch_scope.cancel()
            await self._watch_done.wait()

    async def _watch(self) -> None:
        """Read while the request is handled: EOF means the client left, so the handler is cancelled.
        Bytes that arrive (a pipelined request) go to the parser for later, up to a bound."""
        assert self._watch_scope is not None and self._watch_done is not None
        try:
            with self._watch_scope:
                received = 0
                while received < MAX_READ_AHEAD:
                    try:
                        data = await self._stream.receive_some(RECEIVE_SIZE)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        data = b""
                    if not data:
                        self.gone = True
                        self.handler_scope.cancel()
                        return
                    received += len(data)
                    self._conn.receive_data(data)
        finally:
            self._watch_done.set()

    def stuck(self) -> None:
        """A send made no progress for the send timeout: the client is as good as gone."""
        self.gone = True
        self.handler_scope.cancel()

    async def _send(self, data: bytes) -> None:
        if not data:
            return
        sending = self._server.sending
        sending[self] = trio.current_time()
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.gone = True
            raise ClientGone() from None
        finally:
            sending.pop(self, None)

    def _close_after(self) -> bool:
        # A body the client may still be sending (the request was refused by its head) cannot be
        # skipped over to reach a next request: the connection ends with this answer.
        return self._server.draining or self._conn.body_unread

    async def respond(self, status: int, body: bytes, headers=None) -> None:
        if self.started or self.gone:
            return  # an answer has begun (or nobody listens): nothing more can be said
        self.started = True
        await self._send(self._conn.response(status, body, headers=headers, close=self._close_after()))

    async def respond_pieces(self, status: int, body: Pieces) -> None:
        """An answer of known length sent a piece at a time (each piece is encoded as it goes)."""
        if self.started or self.gone:
            return
        self.started = True
        await self._send(self._conn.start_body(status, _http_server.JSON, body.length, close=self._close_after()))
        for piece in body.pieces:
            await self._send(self._conn.chunk(piece))
        await self._send(self._conn.end_stream())

    async def start_stream(self, status: int, content_type: bytes, headers) -> None:
        self.started = True
        await self._send(self._conn.start_body(status, content_type, None, headers))

    async def send_chunk(self, data: bytes) -> None:
        await self._send(self._conn.chunk(data))

    async def end_stream(self) -> None:
        await self._send(self._conn.end_stream())

    async def accept_websocket(self, headers) -> _ServerWebSocket:
        # The WebSocket reads the socket from now on: stop the watcher and take what it had already
        # fed to h11.
        await self.stop_watching()
        self.started = True
        data, trailing = self._conn.accept_upgrade(headers)
        await self._send(data)
        self.websocket = _ServerWebSocket(self, self._stream, trailing, self._server.config.max_body)
        return self.websocket


class _ServerWebSocket:
    """:class:`~.app.WebSocket` over the connection. Sends never raise: once the client is gone they
    are dropped, and :meth:`receive` reports the end (None). A send that makes no progress for the send
    timeout cancels the exchange's handler (the run), like any other."""

    def __init__(self, exchange: _Exchange, stream: trio.SocketStream, trailing: bytes, max_message: int) -> None:
        self._exchange = exchange
        self._stream = stream
        self._ws = websocket.MessageConnection(client=False, trailing=trailing, max_message=max_message)
        self._pending: deque = deque()
        self._send_lock = trio.Lock()
        self._ended = False

    async def receive(self) -> str | bytes | None:
        while True:
            while self._pending:
                item = self._pending.popleft()
                if isinstance(item, websocket.Message):
                    return item.data
                self._ended = True
                if item.reply:
                    await self._send(item.reply)
                elif self._ws.open:
                    await self._send(self._ws.close(item.code))
                return None
            if self._ended:
                return None
            try:
                data = await self._stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            self._ws.receive_data(data)
            try:
                self._pending.extend(self._ws.events())
            except websocket.MessageTooBig as exc:
                await self.close(websocket.TOO_BIG, str(exc))
                self._ended = True
                return None
            replies = self._ws.take_replies()
            if replies:
                await self._send(replies)

    async def send_text(self, text: str) -> None:
        await self._send(self._ws.send_text(text))

    async def close(self, code: int, reason: str = "") -> None:
        await self._send(self._ws.close(code, reason))

    async def finish(self) -> None:
        """After our close: wait (briefly) for the client's, so the close handshake completes."""
        if not self._ws.open:
            with trio.move_on_after(1.0):
                while not self._ended and not self._ws.closed:
                    if await self.receive() is None:
                        break
        elif not self._ended:
            await self.close(websocket.GOING_AWAY, "Server going away")

    async def _send(self, data: bytes) -> None:
        if not data:
            return
        async with self._send_lock:
            sending = self._exchange._server.sending
            sending[self._exchange] = trio.current_time()
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
                self._ended = True
            finally:
                sending.pop(self._exchange, None)
