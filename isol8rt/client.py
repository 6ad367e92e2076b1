"""RemoteIsol8: the engine's methods, carried out by an isol8rt (or isol8) server over HTTP.

HTTP/1.1 through the sans-io :class:`~isol8rt.wire.http_client.ClientConnection` (the Docker client's
too) over trio, with a small keep-alive pool; streams come as server-sent events, or over a WebSocket
(``transport="ws"``), which also carries a running program's stdin and signals. The server's error
answers are mapped back into :mod:`isol8rt.errors` by their ``kind`` (:func:`error_for`), so code
written against :class:`~isol8rt.DockerIsol8` handles a remote engine's failures the same way.

    async with RemoteIsol8("http://127.0.0.1:3000", api_key="...") as remote:
        result = await remote.execute(ExecutionRequest(code="print(1)"))
"""

from __future__ import annotations

import base64
import contextlib
import ssl
from typing import Any, AsyncGenerator, Awaitable, Callable, Sequence, cast
from urllib.parse import quote, urlencode, urlsplit

import msgspec
import trio

from .errors import EngineUnavailable, InvalidRequest, Isol8Error, SandboxError, SessionError
from .types import ExecutionRequest, ExecutionResult, Isol8Options, SessionInfo, StreamEvent
from .wire import api, errors, sse, websocket
from .wire.http_client import ClientConnection, RemoteProtocolError, Response, Upgraded
from .wire.http_trio import RECEIVE_SIZE, HTTPStream

MAX_IDLE = 8

_JSON = "application/json"
#: What RemoteControl writes with: one WebSocket text message.
_SendText = Callable[[str], Awaitable[None]]


class AccessDenied(Isol8Error):
    """The server refused the key (401, 403), or an option above its limits (403)."""

    exit_code = 2


class RateLimited(Isol8Error):
    """429: too many requests, runs or sessions for this key; ``retry_after`` says when to try again."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


#: The library's exception for each error kind (:mod:`isol8rt.wire.errors`); RateLimited is made apart.
_EXCEPTIONS: dict[str, Callable[[str], Exception]] = {
    errors.INVALID_REQUEST: InvalidRequest,
    errors.METHOD_NOT_ALLOWED: InvalidRequest,
    errors.TOO_LARGE: InvalidRequest,
    errors.REQUEST_TIMEOUT: EngineUnavailable,
    errors.UNAUTHORIZED: AccessDenied,
    errors.FORBIDDEN: AccessDenied,
    errors.OPTION_NOT_ALLOWED: AccessDenied,
    errors.NOT_FOUND: Isol8Error,
    errors.SESSION_NOT_FOUND: SessionError,
    errors.FILE_NOT_FOUND: FileNotFoundError,
    errors.SESSION_CONFLICT: SessionError,
    errors.SANDBOX_FAILED: SandboxError,
    errors.INTERNAL_ERROR: SandboxError,
    errors.UNAVAILABLE: EngineUnavailable,
    errors.SHUTTING_DOWN: EngineUnavailable,
}


def error_for(status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] | None = None) -> Exception:
    """The exception for a server's error answer ``{"error": message, "kind": kind}``: chosen by its kind,
    or by its status alone when it names none (the reference server's answers, or a proxy's) or one this
    client does not know (a newer server's). The message is never parsed."""
    try:
        answer = errors.decode_error(body)
        message, kind = answer.error, answer.kind
    except msgspec.MsgspecError:
        message, kind = body.decode("utf-8", "replace").strip() or f"HTTP {status}", None
    if kind not in errors.KINDS:
        kind = errors.kind_of_status(status)
    if kind == errors.RATE_LIMITED:
        retry = dict(headers or []).get(b"retry-after")
        return RateLimited(message, float(retry) if retry and retry.isdigit() else None)
    return _EXCEPTIONS[kind](message)


def _routed(path: str, session_id: str | None) -> str:
    """``path`` with the session's id in the query too (the server reads it from the body): a load
    balancer in front of several servers sends every request of a session to the server that holds it
    by that id, and finds it there without reading the body, however large (deploy/haproxy.cfg). A
    WebSocket's id is in its first message, which no balancer reads: the query is its only way."""
    if session_id is None:
        return path
    return f"{path}?{urlencode({'sessionId': session_id}, quote_via=quote)}"


def _kind(body: bytes) -> str | None:
    """The error kind a server's answer names, if any (the reference server names none)."""
    try:
        return errors.decode_error(body).kind
    except msgspec.MsgspecError:
        return None


class _Connection(HTTPStream):
    """One HTTP/1.1 connection to the server: a socket under a sans-io :class:`ClientConnection`, moved
    by the shared trio loop (:class:`~isol8rt.wire.http_trio.HTTPStream`).

    The client's one I/O boundary: trio's exceptions and the HTTP connection's are mapped here, once. A
    connection that breaks, or a server that hangs up before its answer is complete, is
    :class:`~isol8rt.errors.EngineUnavailable`; a server that breaks HTTP is
    :class:`~isol8rt.errors.SandboxError`."""

    __slots__ = ()

    async def broken(self, exc: trio.BrokenResourceError | trio.ClosedResourceError) -> Exception:
        return EngineUnavailable(f"the connection to the isol8rt server broke: {exc}")

    async def ended(self) -> Exception:
        return EngineUnavailable("the isol8rt server closed the connection before its answer was complete")

    def misspoke(self, exc: RemoteProtocolError) -> Exception:
        return SandboxError(f"the isol8rt server sent {exc}")

    def close(self) -> None:
        # Synchronous: it runs while unwinding from a cancellation, where an await would not.
        # Under TLS, the TCP stream; the stream is a SocketStream or an SSLStream over one (see _connect).
        stream = cast(trio.SocketStream, getattr(self.stream, "transport_stream", self.stream))
        stream.socket.close()


class RemoteControl:
    """Stdin and signals for a run streamed over the WebSocket (``execute_stream(..., control=)``); the
    same calls as :class:`~isol8rt.RunControl`. Calls made before the run has started wait for it; calls
    made after it ended return False."""

    def __init__(self) -> None:
        self._ready = trio.Event()
        self._send: _SendText | None = None
        self._ended = False

    def _attach(self, send: _SendText) -> None:
        self._send = send
        self._ready.set()

    def _end(self) -> None:
        self._ended = True
        self._ready.set()

    async def _message(self, message: msgspec.Struct) -> bool:
        await self._ready.wait()
        if self._ended:
            return False
        assert self._send is not None  # _ready is set by _attach (which sets it) or by _end
        await self._send(api.encode(message).decode())
        return True

    async def write_stdin(self, data: str | bytes) -> bool:
        text = data.decode() if isinstance(data, (bytes, bytearray)) else data
        return await self._message(api.WsStdin(data=text))

    async def close_stdin(self) -> bool:
        return await self._message(api.WsStdin(eof=True))

    async def signal(self, signum: int | str) -> bool:
        return await self._message(api.WsSignal(signal=signum))


class RemoteIsol8:
    """An isol8rt server at ``host`` (``http://host:port``, or https), used like a local engine.

    ``session_id`` makes every run, and the file calls, happen in that persistent session on the server;
    :meth:`stop` ends it. ``options`` go with every request (the server may tighten but never loosen
    its own limits, and refuses options above them with :class:`AccessDenied`).

    The methods take the same arguments as :class:`~isol8rt.DockerIsol8`'s (a ``session_id=`` per call
    included, ``close_session``, ``sessions``), so the sync and asyncio faces drive either one:
    ``isol8rt.Sandbox(remote="http://host:3000", api_key=...)``. Sessions named per call are ended by
    :meth:`stop` too, as a local engine ends its own.
    """

    def __init__(self, host: str, api_key: str | None = None, session_id: str | None = None,
                 options: Isol8Options | dict[str, Any] | None = None, *, connect_timeout: float = 10.0,
                 keep_session: bool = False) -> None:
        """``keep_session``: stop() leaves the session on the server (the server ends it when idle), for a
        caller that comes back to it later, as the CLI's ``--persistent`` does."""
        url = urlsplit(host if "://" in host else f"http://{host}")
        if url.scheme not in ("http", "https") or not url.hostname:
            raise InvalidRequest(f"host: {host!r} is not an http:// or https:// URL")
        self.host = host
        self._tls = url.scheme == "https"
        self._address = (url.hostname, url.port or (443 if self._tls else 80))
        self._authority = url.netloc.rpartition("@")[2].encode("idna")
        self._base = url.path.rstrip("/")
        self.session_id = session_id
        self.keep_session = keep_session
        self.options = options
        self._auth = [(b"Authorization", f"Bearer {api_key}".encode())] if api_key else []
        self._connect_timeout = connect_timeout
        self._idle: list[_Connection] = []
        #: Sessions named per call (session_id=...), ended by stop() as a local engine ends its own.
        self._named_sessions: set[str] = set()
        #: Files put into a session the server has not made yet (it makes one at its first run): they go
        #: with that run, as a local engine stages them, so put_file-then-execute works on either.
        self._staged: dict[str, dict[str, bytes]] = {}

    # ------------------------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> RemoteIsol8:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self, prewarm: Any = False) -> None:
        """Check the server answers (``GET /health``). ``prewarm`` is the server's business: ignored."""
        status, _, body = await self._call("GET", "/health")
        if status != 200 or api.decode_health(body).status != "ok":
            raise EngineUnavailable(f"the isol8rt server at {self.host} is not healthy (HTTP {status})")

    async def stop(self) -> None:
        """End this client's sessions on the server (the one it was made with, and those named per call)
        and close its connections. ``keep_session`` leaves them all."""
        try:
            ended = set(self._named_sessions)
            if self.session_id is not None:
                ended.add(self.session_id)
            self._named_sessions.clear()
            if ended and not self.keep_session:
                with trio.CancelScope(shield=True), trio.move_on_after(30):
                    for session_id in sorted(ended):
                        await self.delete_session(session_id)
        finally:
            idle, self._idle = self._idle, []
            for conn in idle:
                conn.close()

    # ------------------------------------------------------------------------------------ runs

    def _session(self, session_id: str | None) -> str | None:
        """The session a call runs in: the one named for it, else the client's own (or none)."""
        if session_id is None:
            return self.session_id
        if not isinstance(session_id, str) or not session_id or len(session_id) > 256:
            raise InvalidRequest("sessionId: must be a non-empty string of at most 256 characters")
        if session_id != self.session_id:
            self._named_sessions.add(session_id)
        return session_id

    def _envelope(self, request: ExecutionRequest,
                  kind: type[api.ExecuteBody] | type[api.WsExecute] = api.ExecuteBody,
                  session_id: str | None = None) -> api.ExecuteBody | api.WsExecute:
        if not isinstance(request, ExecutionRequest):
            raise InvalidRequest(f"expected an ExecutionRequest, got {type(request).__name__}")
        options = self.options
        if isinstance(options, Isol8Options):
            options = msgspec.json.decode(api.encode(options))
        session = self._session(session_id)
        staged = self._staged.pop(session, None) if session is not None else None
        if staged:
            request = msgspec.structs.replace(request, files={**staged, **request.files})
        if request.files and any(isinstance(content, (bytes, bytearray, memoryview))
                                 for content in request.files.values()):
            request = msgspec.structs.replace(request, files=api.wire_files(request.files))
        return kind(request=request, options=options or None, session_id=session)

    async def execute(self, request: ExecutionRequest, *, session_id: str | None = None) -> ExecutionResult:
        """Run ``request`` on the server to its end (in ``session_id``, or the client's own session)."""
        envelope = self._envelope(request, session_id=session_id)
        body = await self._json("POST", _routed("/execute", envelope.session_id), envelope)
        return api.decode_result(body)

    async def execute_stream(self, request: ExecutionRequest, *, session_id: str | None = None,
                             transport: str | None = None,
                             control: RemoteControl | None = None) -> AsyncGenerator[StreamEvent, None]:
        """Stream a run's events: server-sent events by default, or a WebSocket (``transport="ws"``, and
        always with a ``control``). Leaving the loop early ends the run on the server."""
        transport = transport or ("ws" if control is not None else "sse")
        if transport == "ws":
            events = self._ws_events(request, control, session_id)
        elif transport == "sse":
            if control is not None:
                raise InvalidRequest("a control (stdin, signals) needs transport='ws'")
            events = self._sse_events(request, session_id)
        else:
            raise InvalidRequest(f"transport: {transport!r} must be 'sse' or 'ws'")
        async with contextlib.aclosing(events) as stream:
            async for event in stream:
                yield event

    async def _sse_events(self, request: ExecutionRequest,
                          session_id: str | None) -> AsyncGenerator[StreamEvent, None]:
        message = self._envelope(request, session_id=session_id)
        envelope = api.encode(message)
        conn = await self._connect()
        try:
            await conn.send(self._request(conn, "POST", _routed("/execute/stream", message.session_id), envelope))
            head = await conn.head()
            if not isinstance(head, Response) or head.status != 200:
                raise await self._refusal(conn, head)
            parser = sse.EventParser()
            while (piece := await conn.receive_body()) is not None:
                for data in parser.feed(piece):
                    yield api.decode_event(data)
        finally:
            conn.close()

    async def _ws_events(self, request: ExecutionRequest, control: RemoteControl | None,
                         session_id: str | None) -> AsyncGenerator[StreamEvent, None]:
        message = self._envelope(request, api.WsExecute, session_id)
        envelope = api.encode(message).decode()
        conn = await self._connect()
        lock = trio.Lock()
        ws: websocket.MessageConnection | None = None

        async def send(text: str) -> None:
            async with lock:
                assert ws is not None  # send is handed out only once ws is made
                if ws.open:
                    await conn.send(ws.send_text(text))

        try:
            key = websocket.client_key()
            await conn.send(conn.http.request("GET", self._base + _routed("/execute/ws", message.session_id), headers=websocket.client_headers(key)))
            head = await conn.head()
            if not isinstance(head, Upgraded):
                raise await self._refusal(conn, head)
            if head.response.header(b"sec-websocket-accept") != websocket.accept_token(key):
                raise SandboxError("the isol8rt server answered the WebSocket handshake wrongly")
            ws = websocket.MessageConnection(client=True, trailing=head.trailing)
            await send(envelope)
            if control is not None:
                control._attach(send)
            while True:
                for item in ws.events():
                    if isinstance(item, websocket.Closed):
                        if item.code == websocket.ABNORMAL:  # no close frame: the run's end is unknown
                            raise EngineUnavailable("the isol8rt server closed the WebSocket before the run ended")
                        async with lock:
                            await conn.send(item.reply)
                        return
                    yield api.decode_event(item.data)
                try:
                    data = await conn.stream.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                ws.receive_data(data)
                replies = ws.take_replies()
                if replies:
                    async with lock:
                        await conn.send(replies)
        finally:
            if control is not None:
                control._end()
            conn.close()

    # ------------------------------------------------------------------------------------ files and sessions

    def _need_session(self, what: str, session_id: str | None) -> str:
        session = self._session(session_id)
        if session is None:
            raise SessionError(f"{what} needs a session: pass session_id=..., or make the RemoteIsol8 with one")
        return session

    async def put_file(self, path: str, content: str | bytes, *, session_id: str | None = None) -> None:
        if not isinstance(content, (str, bytes, bytearray, memoryview)):
            raise InvalidRequest(f"put_file: content must be str or bytes, not {type(content).__name__}")
        data = content.encode() if isinstance(content, str) else bytes(content)
        session = self._need_session("put_file", session_id)
        upload = api.FileUpload(session_id=session, path=path, content=base64.b64encode(data).decode("ascii"))
        status, headers, body = await self._call("POST", _routed("/file", session), api.encode(upload))
        if status == 404 and _kind(body) in (errors.SESSION_NOT_FOUND, None):
            # No such session yet: staged, to go with its first run (see _staged).
            self._staged.setdefault(session, {})[path] = data
        elif status >= 300:
            raise error_for(status, body, headers)

    async def get_file(self, path: str, *, session_id: str | None = None) -> bytes:
        session = self._need_session("get_file", session_id)
        staged = self._staged.get(session, {})
        if path in staged:
            return staged[path]
        query = urlencode({"sessionId": session, "path": path}, quote_via=quote)
        body = await self._json("GET", f"/file?{query}")
        return base64.b64decode(api.decode_file_content(body).content)

    async def list_sessions(self) -> list[SessionInfo]:
        """The server's sessions for this key (a local engine's ``sessions()``, which needs no await)."""
        return api.decode_sessions(await self._json("GET", "/sessions")).sessions

    async def close_session(self, session_id: str) -> bool:
        """End a session on the server; False when there was none: :meth:`delete_session` by the name
        :class:`~isol8rt.DockerIsol8` gives it."""
        self._named_sessions.discard(session_id)
        staged = self._staged.pop(session_id, None)
        return await self.delete_session(session_id) or bool(staged)

    async def delete_session(self, session_id: str) -> bool:
        """End a session on the server; False when it has no such session (for this key)."""
        status, headers, body = await self._call("DELETE", f"/session/{quote(session_id, safe='')}")
        if status == 404:   # servers before the reference's shape answered an unknown session so
            return False
        if status != 200:
            raise error_for(status, body, headers)
        answer = msgspec.json.decode(body) if body else {}
        return bool(answer.get("removed", True)) if isinstance(answer, dict) else True

    async def cleanup(self, images: bool = False) -> dict[str, Any]:
        """Master key only: end every session on the server and remove orphaned containers."""
        body = await self._json("POST", "/cleanup", api.CleanupRequest(images=images))
        return msgspec.to_builtins(api.decode_cleanup_body(body))  # type: ignore[no-any-return]

    # ------------------------------------------------------------------------------------ HTTP

    def _request(self, conn: _Connection, method: str, target: str, payload: bytes | None = None) -> bytes:
        return conn.http.request(method, self._base + target, body=payload,
                                 content_type=_JSON if payload is not None else None)

    async def _connect(self) -> _Connection:
        host, port = self._address
        stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]
        try:
            with trio.fail_after(self._connect_timeout):
                stream = await trio.open_tcp_stream(host, port)
                if self._tls:
                    stream = trio.SSLStream(stream, ssl.create_default_context(), server_hostname=host)
                    await stream.do_handshake()
        except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
            raise EngineUnavailable(f"cannot reach the isol8rt server at {self.host}: {exc}") from None
        return _Connection(stream, ClientConnection(self._authority, headers=self._auth))

    async def _refusal(self, conn: _Connection, head: Response | Upgraded) -> Exception:
        """The exception for an answer that is not the one asked for (an error body, mostly)."""
        if isinstance(head, Upgraded):
            return SandboxError(f"the isol8rt server switched protocols ({head.response.status}) unasked")
        return error_for(head.status, await conn.body(), head.headers)

    async def _call(self, method: str, target: str,
                    payload: bytes | None = None) -> tuple[int, Sequence[tuple[bytes, bytes]], bytes]:
        """One exchange on a pooled connection: (status, headers, body)."""
        reused = bool(self._idle)
        conn = self._idle.pop() if reused else await self._connect()
        try:
            try:
                await conn.send(self._request(conn, method, target, payload))
                head = await conn.head()
            except EngineUnavailable:
                if not reused:
                    raise
                # A kept-alive connection the server had closed meanwhile: once more on a new one.
                conn.close()
                conn = await self._connect()
                await conn.send(self._request(conn, method, target, payload))
                head = await conn.head()
            if isinstance(head, Upgraded):
                raise await self._refusal(conn, head)
            body = await conn.body()
        except BaseException:
            conn.close()
            raise
        if conn.http.reusable and len(self._idle) < MAX_IDLE:
            conn.http.start_next_cycle()
            self._idle.append(conn)
        else:
            conn.close()
        return head.status, head.headers, body

    async def _json(self, method: str, target: str, message: msgspec.Struct | None = None) -> bytes:
        status, headers, body = await self._call(method, target, api.encode(message) if message else None)
        if status >= 300:
            raise error_for(status, body, headers)
        return body
