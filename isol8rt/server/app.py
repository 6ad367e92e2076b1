"""The REST API: routes, authentication, limits, and the mapping of every error to an error body
(``{"error": message, "kind": kind}``, :mod:`isol8rt.wire.errors`).

A request is heard in two steps. :meth:`App.admit` sees its head only: the route, the browser checks
(:mod:`.origins`), the key and the key's limits; a request refused there is answered without a byte of
its body being read. An admitted request (a :class:`Call`) gets its body read by the connection, then
:meth:`App.handle` runs its handler, which answers through an exchange (``server.py``'s side of the
connection): a whole JSON body, one sent in pieces, a stream of server-sent events, or a WebSocket.
Handlers know nothing of sockets; the connection knows nothing of routes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import logging
import math
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol

import msgspec
import trio

from .. import audit
from .._version import __version__
from ..engine import DockerIsol8, RunControl
from ..engine.plan import plan_execution
from ..errors import EngineClosed, EngineUnavailable, ImageNotFound, InvalidRequest, Isol8Error, SessionError
from ..types import ExecutionRequest, ExecutionResult, Isol8Options, StreamEvent
from ..wire import api, errors, sse, websocket
from . import openapi
from .pieces import Pieces, encode_file_content, encode_result
from ._http_server import HTTPError, Request
from .auth import Authenticator, Principal
from .engines import EngineSet
from .keys import KeyIndex, iso
from .limits import KeyLimits, Limited, Ticket
from .origins import BrowserGuard
from .policy import OptionsPolicy, PolicyViolation, options_key
from .sessions import SessionRegistry, check_id
from .slots import RunSlots

log = logging.getLogger("isol8rt.server")

#: Longest key name or tenant id accepted.
MAX_NAME = 200
#: Longest key lifetime accepted.
MAX_TTL_MS = 100 * 365 * 86400 * 1000
#: A key's lifetime when it is made without a ttlMs: the reference's (24 hours).
DEFAULT_KEY_TTL_MS = 86_400_000


class ClientGone(Exception):
    """Raised by an exchange when the client is no longer there to answer to."""


class WebSocket(Protocol):
    async def receive(self) -> str | bytes | None: ...
    async def send_text(self, text: str) -> None: ...
    async def close(self, code: int, reason: str = "") -> None: ...


class Exchange(Protocol):
    """How a handler answers; ``server.py`` implements it over one connection."""

    async def respond(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None: ...
    async def respond_pieces(self, status: int, body: Pieces) -> None: ...
    async def start_stream(self, status: int, content_type: bytes, headers: list[tuple[bytes, bytes]]) -> None: ...
    async def send_chunk(self, data: bytes) -> None: ...
    async def end_stream(self) -> None: ...
    async def accept_websocket(self, headers: list[tuple[bytes, bytes]]) -> WebSocket: ...


def error_answer(exc: BaseException) -> tuple[int, str, str, list[tuple[bytes, bytes]]]:
    """The status, error kind, message and extra headers a failure is answered with. Never a traceback."""
    if isinstance(exc, HTTPError):
        return exc.status, exc.kind, exc.message, exc.headers
    if isinstance(exc, Limited):
        return 429, errors.RATE_LIMITED, exc.message, [(b"Retry-After", str(exc.retry_after).encode())]
    if isinstance(exc, PolicyViolation):
        return 403, errors.OPTION_NOT_ALLOWED, str(exc), []
    if isinstance(exc, InvalidRequest):
        return 400, errors.INVALID_REQUEST, str(exc), []
    if isinstance(exc, SessionError):  # a runtime switch, other options, too many sessions
        return 409, errors.SESSION_CONFLICT, str(exc), []
    if isinstance(exc, FileNotFoundError):
        return 404, errors.FILE_NOT_FOUND, f"File not found: {exc.args[0] if exc.args else ''}".rstrip(": "), []
    if isinstance(exc, EngineClosed):
        return 503, errors.SHUTTING_DOWN, "The server is shutting down", [(b"Retry-After", b"5")]
    if isinstance(exc, (EngineUnavailable, ImageNotFound)):
        return 503, errors.UNAVAILABLE, str(exc), []
    if isinstance(exc, Isol8Error):  # SandboxError, and anything else the engine names
        return 500, errors.SANDBOX_FAILED, str(exc), []
    log.error("unexpected error while handling a request", exc_info=exc)
    return 500, errors.INTERNAL_ERROR, "Internal server error", []


def _json_body(decode: Callable[[bytes], Any], body: bytes) -> Any:
    try:
        return decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"Invalid request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"Invalid JSON: {exc}") from None


class Call:
    """A request :meth:`App.admit` let in: its handler, its caller, and (once the connection has read
    it) the request with its body. ``ticket``: its place in its key's queue while it waits for a turn
    (:meth:`App.wait_turn`); ``holding``: it holds one of its key's places (:meth:`App.release`)."""

    __slots__ = ("handler", "argument", "principal", "request", "ticket", "holding", "deadline")

    def __init__(self, handler: Callable, argument: str | None, principal: Principal | None,
                 request: Request, ticket: Ticket | None = None, deadline: float = math.inf) -> None:
        self.handler = handler
        self.argument = argument
        self.principal = principal
        self.request = request
        self.ticket = ticket
        self.holding = principal is not None and ticket is None
        #: When its wait for a turn (in the queue, then for a run slot) ends in a 429.
        self.deadline = deadline


#: The deadline of the request being handled (see Call.deadline), for the run slot it may wait for.
_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("isol8rt_server_deadline", default=math.inf)


class App:
    def __init__(self, *, options: Isol8Options, auth: Authenticator, engines: EngineSet, sessions: SessionRegistry,
                 limits: KeyLimits, slots: RunSlots, guard: BrowserGuard | None = None,
                 keys: KeyIndex | None = None, cleanup: Callable[[], Awaitable[int]] | None = None,
                 ws_idle_s: float = 30.0, key_ttl_ms: int = DEFAULT_KEY_TTL_MS,
                 remove_images: Callable[[], Awaitable[dict[str, Any]]] | None = None,
                 default_tenant: str | None = api.DEFAULT_TENANT, exact_options: bool = False) -> None:
        self.policy = OptionsPolicy(options, exact=exact_options)
        self.auth = auth
        self.engines = engines
        self.sessions = sessions
        self.limits = limits
        self.slots = slots
        self.guard = guard or BrowserGuard(open_access=auth.open_access)
        self.keys = keys
        self.ws_idle_s = ws_idle_s
        #: The lifetime of a key made without a ttlMs (0: forever).
        self.key_ttl_ms = key_ttl_ms
        #: The tenant of a key made without one (None: it stands alone).
        self.default_tenant = default_tenant
        #: What ``POST /cleanup`` removes images with (tests stand in for Docker here).
        self._remove_images = remove_images or DockerIsol8.cleanup_images
        #: Removes containers left by dead servers; ``POST /cleanup`` runs it too.
        self._sweep = cleanup
        self._routes: dict[str, dict[str, Callable]] = {
            "/execute": {"POST": self.execute},
            "/execute/stream": {"POST": self.execute_stream},
            "/execute/ws": {"GET": self.execute_ws},
            "/file": {"POST": self.put_file, "GET": self.get_file},
            "/sessions": {"GET": self.list_sessions},
            "/cleanup": {"POST": self.cleanup},
            "/auth/keys": {"POST": self.create_key, "GET": self.list_keys},
            "/auth/login": {"POST": self.login},
        }
        self._prefixed = (("/session/", {"DELETE": self.delete_session}),
                          ("/auth/keys/", {"DELETE": self.revoke_key}))

    # ------------------------------------------------------------------------------------ dispatch

    def admit(self, head: Request) -> Call:
        """Decide from a request's head alone whether to hear it: its route, where a browser sent it from,
        its key and the key's limits. Raises what :meth:`refuse` answers; a :class:`Call` that is
        returned holds one of its key's places until :meth:`release`."""
        path, method = head.path, head.method
        if path == "/health" or path == "/openapi.json":
            _allow(method, ("GET",))
            return Call(self.health if path == "/health" else self.openapi, None, None, head)
        handlers, argument = self._routes.get(path), None
        if handlers is None:
            for prefix, candidates in self._prefixed:
                if path.startswith(prefix) and len(path) > len(prefix):
                    handlers, argument = candidates, path[len(prefix):]
                    break
        if handlers is None:
            raise HTTPError(404, "Not found")
        handler = handlers.get(method)
        if handler is None:
            raise _not_allowed(method, tuple(handlers))
        self.guard.check(head.header(b"origin"), head.header(b"host"))
        principal = self.auth.authenticate(head.header(b"authorization"))
        deadline = self.limits.deadline()
        ticket = self.limits.enter(principal.id)
        return Call(handler, argument, principal, head, ticket, deadline)

    async def wait_turn(self, call: Call) -> None:
        """Wait, if the call is queued, until its key has a place for it (its body is read after this);
        raises :class:`Limited` when the wait runs out, and then holds nothing."""
        if call.ticket is not None:
            assert call.principal is not None  # only a caller's requests are queued
            await self.limits.wait(call.principal.id, call.ticket)
            call.ticket, call.holding = None, True

    def release(self, call: Call) -> None:
        if call.holding:
            assert call.principal is not None
            call.holding = False
            self.limits.leave(call.principal.id)

    async def refuse(self, exc: BaseException, exchange: Exchange) -> None:
        """Answer a failure: the one place errors become error bodies."""
        status, kind, message, headers = error_answer(exc)
        await exchange.respond(status, errors.encode_error(kind, message), headers)

    async def handle(self, call: Call, exchange: Exchange) -> None:
        """Run an admitted request's handler (its body has been read into ``call.request``)."""
        try:
            principal = call.principal
            if principal is None:
                return await call.handler(call.request, exchange)
            # Who the runs of this request are for, for the audit log (read in this task by the engine).
            audit.CALLER.set(principal.caller)
            _DEADLINE.set(call.deadline)
            if call.argument is None:
                await call.handler(call.request, exchange, principal)
            else:
                await call.handler(call.request, exchange, principal, call.argument)
        except ClientGone:
            return
        except Exception as exc:  # noqa: BLE001 - every failure becomes an {"error"} answer
            await self.refuse(exc, exchange)

    async def health(self, request: Request, exchange: Exchange) -> None:
        await exchange.respond(200, _HEALTH)

    async def openapi(self, request: Request, exchange: Exchange) -> None:
        await exchange.respond(200, openapi.document())

    # ------------------------------------------------------------------------------------ runs

    def _slot(self, principal: Principal, deadline: float | None = None):
        """One of the run slots, waited for until the request's deadline at the latest (then 429)."""
        return self.slots.hold(principal.id, _DEADLINE.get() if deadline is None else deadline,
                               self.limits.queue_wait_s)

    def _prepare(self, request: ExecutionRequest, raw_options: dict | None) -> Isol8Options:
        decision = self.policy.effective(raw_options)
        self.policy.check_request(request, decision)
        return decision.options

    @contextlib.asynccontextmanager
    async def _engine(self, principal: Principal, options: Isol8Options,
                      session_id: str | None) -> AsyncIterator[tuple[DockerIsol8, str | None]]:
        """The engine (and engine-side session id) a run goes to: the shared one, a tightened one, or the
        one holding the caller's session."""
        if session_id is None:
            async with self.engines.lease(options, principal.owner) as engine:
                yield engine, None
            return
        session_id = check_id(session_id)
        key = options_key(options)
        record = self.sessions.find(principal.owner, session_id)
        if record is None:
            async with self.engines.lease(options, principal.owner) as engine:
                record = self.sessions.get_or_create(principal.owner, session_id, engine, key)
        else:
            self.sessions.get_or_create(principal.owner, session_id, record.engine, key)
        async with self.sessions.use(record, run=True):
            yield record.engine, record.engine_sid

    async def execute(self, request: Request, exchange: Exchange, principal: Principal) -> None:
        body = _json_body(api.decode_execute, request.body)
        _one_body_session(request.body)
        _one_session(request.query.get("sessionId"), body.session_id)
        options = self._prepare(body.request, body.options)
        # The slot is held until the answer is sent: what the run brought back counts against it.
        async with self._slot(principal):
            if body.session_id is None:
                # The hot path, without _engine()'s two context managers (about a tenth of what the server
                # spends on a request of its own).
                async with self.engines.lease(options, principal.owner) as engine:
                    # Bound to the caller: a pooled container that ran one key's (or tenant's) code never
                    # runs another's.
                    result = await engine.execute(body.request, tenant=principal.owner)
            else:
                async with self._engine(principal, options, body.session_id) as (engine, session_id):
                    result = await engine.execute(body.request, session_id=session_id,
                                                  tenant=principal.owner)
            await _send_result(exchange, result)

    async def execute_stream(self, request: Request, exchange: Exchange, principal: Principal) -> None:
        body = _json_body(api.decode_execute, request.body)
        _one_body_session(request.body)
        _one_session(request.query.get("sessionId"), body.session_id)
        options = self._prepare(body.request, body.options)
        # Refuse a bad request with a 400 before the 200 of the event stream goes out (the plan is the
        # engine's own validation: pure, no I/O).
        plan_execution(body.request, options, session=body.session_id is not None)
        async with self._slot(principal):
            async with self._engine(principal, options, body.session_id) as (engine, session_id):
                await exchange.start_stream(200, sse.CONTENT_TYPE, sse.HEADERS)
                events = _events(engine, body.request, session_id, principal.owner)
                async with contextlib.aclosing(events):
                    async for event in events:
                        await exchange.send_chunk(sse.frame(api.encode(event)))
            await exchange.end_stream()

    async def execute_ws(self, request: Request, exchange: Exchange, principal: Principal) -> None:
        problem = websocket.handshake_error(request.headers)
        if problem is not None:
            raise HTTPError(400, problem)
        ws = await exchange.accept_websocket(websocket.accept_headers(request.headers))
        await _WsRun(self, ws, principal, request.query.get("sessionId")).serve(self.ws_idle_s)

    # ------------------------------------------------------------------------------------ files

    def _session(self, principal: Principal, session_id: object):
        record = self.sessions.find(principal.owner, session_id) if isinstance(session_id, str) else None
        if record is None:
            raise HTTPError(404, "Session not found", kind=errors.SESSION_NOT_FOUND)
        return record

    async def put_file(self, request: Request, exchange: Exchange, principal: Principal) -> None:
        body = _json_body(api.decode_file_upload, request.body)
        _one_body_session(request.body)
        _one_session(request.query.get("sessionId"), body.session_id)
        if not body.session_id or not body.path or body.content is None:
            raise HTTPError(400, "Missing sessionId, path or content")
        try:
            data = base64.b64decode(body.content, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("content: not valid base64") from None
        record = self._session(principal, body.session_id)
        async with self._slot(principal), self.sessions.use(record):
            await record.engine.put_file(body.path, data, session_id=record.engine_sid)
        await exchange.respond(200, api.OK)

    async def get_file(self, request: Request, exchange: Exchange, principal: Principal) -> None:
        session_id, path = request.query.get("sessionId"), request.query.get("path")
        if not session_id or not path:
            raise HTTPError(400, "Missing sessionId or path")
        record = self._session(principal, session_id)
        async with self._slot(principal):
            async with self.sessions.use(record):
                data = await record.engine.get_file(path, session_id=record.engine_sid)
            # Base64 a slice at a time, straight to the client: the file is the only whole copy held.
            await exchange.respond_pieces(200, encode_file_content(data))

    # ------------------------------------------------------------------------------------ sessions

    async def list_sessions(self, request: Request, exchange: Exchange, principal: Principal) -> None:
        await exchange.respond(200, api.encode(api.SessionsBody(sessions=self.sessions.list(principal.owner))))

    async def delete_session(self, request: Request, exchange: Exchange, principal: Principal, session_id: str) -> None:
        # {"ok": true} for a session that is not (or no longer) there too, as the reference answers: the
        # caller wants it gone, and it is. (Another key's session is left alone: to this key it does not
        # exist.)
        _one_session(request.query.get("sessionId"), session_id)
        removed = await self.sessions.close(principal.owner, session_id)
        await exchange.respond(200, api.encode(api.SessionDeleted(ok=True, removed=removed)))

    async def cleanup(self, request: Request, exchange: Exchange, principal: Principal) -> None:
        _master(principal)
        # As the reference: images too unless the body says {"images": false} (an empty body is {}).
        body = _json_body(api.decode_cleanup, request.body) if request.body.strip() else api.CleanupRequest()
        removed, errors_ = await self.sessions.close_all()
        sessions = api.CleanupReport(removed=removed, failed=len(errors_), errors=errors_)
        before = set(self.engines.containers)
        containers = api.CleanupReport()
        try:
            await self.engines.prune(force=True)
            if self._sweep is not None:
                containers.removed += await self._sweep()
        except Isol8Error as exc:  # reported, as the reference does, rather than failing the request
            containers.failed += 1
            containers.errors.append(str(exc))
        containers.removed += len(before - set(self.engines.containers))
        images = None
        if body.images:
            report = await self._remove_images()
            images = api.CleanupReport(removed=report["removed"], failed=report["failed"],
                                       errors=list(report["errors"]))
        answer = api.CleanupBody(ok=True, sessions=sessions, containers=containers, images=images)
        await exchange.respond(200, api.encode(answer))

    # ------------------------------------------------------------------------------------ keys

    def _store(self, principal: Principal) -> KeyIndex:
        _master(principal)
        if self.keys is None:
            raise HTTPError(404, "API key management is not enabled on this server")
        return self.keys

    def _new_key_fields(self, tenant_id: str | None, ttl_ms: int | None) -> tuple[str | None, int | None]:
        """The tenant and lifetime of a new key: the reference's defaults when the client names none
        (tenant "default", the server's key TTL)."""
        if tenant_id is not None and (not tenant_id or len(tenant_id) > MAX_NAME):
            raise InvalidRequest(f"tenantId: must be a non-empty string of at most {MAX_NAME} characters")
        if ttl_ms is not None and not 0 < ttl_ms <= MAX_TTL_MS:
            raise InvalidRequest("ttlMs: must be a positive number of milliseconds (at most 100 years)")
        if ttl_ms is None:
            ttl_ms = self.key_ttl_ms or None  # 0: keys made without a ttlMs never expire
        return tenant_id if tenant_id is not None else self.default_tenant, ttl_ms

    async def create_key(self, request: Request, exchange: Exchange, principal: Principal) -> None:
        store = self._store(principal)
        body = _json_body(api.decode_key_create, request.body)
        if not body.name.strip() or len(body.name) > MAX_NAME:
            raise InvalidRequest(f"name: must be a non-empty string of at most {MAX_NAME} characters")
        tenant_id, ttl_ms = self._new_key_fields(body.tenant_id, body.ttl_ms)
        record, key = await store.create(body.name, tenant_id, ttl_ms)
        created = api.KeyCreated(id=record.id, key=key, name=record.name, key_prefix=record.key_prefix,
                                   tenant_id=record.tenant_id, expires_at=iso(record.expires_at))
        await exchange.respond(201, api.encode(created))

    async def login(self, request: Request, exchange: Exchange, principal: Principal) -> None:
        """The reference's ``POST /auth/login``: the master key buys a short-lived key (a key like any
        other: listed, revocable, no master rights)."""
        store = self._store(principal)
        body = _json_body(api.decode_login, request.body) if request.body.strip() else api.LoginRequest()
        name = body.name if body.name is not None else f"login-{iso(time.time())}"
        if not name.strip() or len(name) > MAX_NAME:
            raise InvalidRequest(f"name: must be a non-empty string of at most {MAX_NAME} characters")
        tenant_id, ttl_ms = self._new_key_fields(body.tenant_id, body.ttl_ms)
        record, key = await store.create(name, tenant_id, ttl_ms)
        answer = api.LoginBody(token=key, expires_at=iso(record.expires_at), key_id=record.id)
        await exchange.respond(200, api.encode(answer))

    async def list_keys(self, request: Request, exchange: Exchange, principal: Principal) -> None:
        store = self._store(principal)
        tenant_id = request.query.get("tenantId") or None  # absent or empty: every tenant
        keys = [api.KeyInfo(id=r.id, name=r.name, key_prefix=r.key_prefix, tenant_id=r.tenant_id,
                              created_at=iso(r.created_at), expires_at=iso(r.expires_at),
                              last_used_at=iso(store.last_used(r.id)))
                for r in reversed(store.records()) if tenant_id is None or r.tenant_id == tenant_id]
        await exchange.respond(200, api.encode(api.KeysBody(keys=keys)))

    async def revoke_key(self, request: Request, exchange: Exchange, principal: Principal, key_id: str) -> None:
        if not await self._store(principal).revoke(key_id):
            raise HTTPError(404, "API key not found")
        await exchange.respond(200, api.encode(api.KeyRevoked(ok=True, id=key_id)))


_HEALTH = api.encode(api.HealthBody(status="ok", version=__version__))


async def _send_result(exchange: Exchange, result: ExecutionResult) -> None:
    answer = encode_result(result)
    if isinstance(answer, bytes):
        await exchange.respond(200, answer)
    else:
        await exchange.respond_pieces(200, answer)


def _not_allowed(method: str, allowed: tuple[str, ...]) -> HTTPError:
    return HTTPError(405, f"Method {method} not allowed", [(b"Allow", ", ".join(allowed).encode())])


def _allow(method: str, allowed: tuple[str, ...]) -> None:
    if method not in allowed:
        raise _not_allowed(method, allowed)


def _master(principal: Principal) -> None:
    if not principal.is_master:
        raise HTTPError(403, "Master key required for this operation")


def _one_session(queried: str | None, named: object) -> None:
    """A request that names its session twice (``queried``: its query's sessionId) names it alike. The load
    balancer (deploy/haproxy.cfg) routes on the query's sessionId first, and this server acts on the body's,
    the path's or the WebSocket's execute message's: two names sent the request to one session's node and
    made or closed the other there, splitting a session over two nodes."""
    if queried is not None and queried != named:
        raise HTTPError(400, "sessionId: the query and the request name different sessions")


def _one_body_session(body: bytes | str) -> None:
    """A JSON body names its session at most once: HAProxy's json_query reads the first ``sessionId`` key,
    this server's decoder keeps the last, so two were two sessions again. Only a body with the key's text
    twice is parsed again (a string value "sessionId" may be the second)."""
    data = body.encode() if isinstance(body, str) else body
    if data.count(b'"sessionId"') < 2:
        return
    import json

    keys: list[list[str]] = []
    try:
        json.loads(data, object_pairs_hook=lambda pairs: keys.append([key for key, _ in pairs]) or {})
    except ValueError:
        return  # not JSON: the decoder refuses it on its own
    if keys and keys[-1].count("sessionId") > 1:  # the outermost object is the last one closed
        raise HTTPError(400, "sessionId: named more than once in the body")


async def _events(engine: DockerIsol8, request: ExecutionRequest, session_id: str | None, tenant: str,
                  control: RunControl | None = None) -> AsyncIterator[StreamEvent]:
    """A run's events; a failure once the stream has started becomes its last event, of type error.
    ``tenant``: the caller pooled containers are bound to (see DockerIsol8.execute)."""
    try:
        async with contextlib.aclosing(engine.execute_stream(request, session_id=session_id, control=control,
                                                             tenant=tenant)) as events:
            async for event in events:
                yield event
    except Isol8Error as exc:
        _status, _kind, message, _ = error_answer(exc)
        yield StreamEvent(type="error", data=message)


def _error_event(message: str) -> str:
    return api.encode(StreamEvent(type="error", data=message)).decode()


class _WsRun:
    """One WebSocket execution: the client's messages in, the run's events out."""

    def __init__(self, app: App, ws: WebSocket, principal: Principal, queried: str | None = None) -> None:
        self.app = app
        self.ws = ws
        self.principal = principal
        #: The upgrade request's sessionId, on which the load balancer routed this connection.
        self.queried = queried
        self.control: RunControl | None = None

    async def _next(self) -> api.WsExecute | api.WsStdin | api.WsSignal | None:
        """The next well-formed message; None when the client closed (or sent bad JSON: then the
        connection has been closed 1003). Unknown types are answered and skipped."""
        while True:
            data = await self.ws.receive()
            if data is None:
                return None
            try:
                kind = api.decode_ws_envelope(data).type
            except (msgspec.DecodeError, msgspec.ValidationError):
                await self.ws.send_text(_error_event("Invalid JSON message"))
                await self.ws.close(websocket.UNSUPPORTED_DATA, "Invalid JSON")
                return None
            if kind not in api.WS_TYPES:
                await self.ws.send_text(_error_event(f"Unknown message type: {kind}"))
                continue
            try:
                return api.decode_ws_message(data)
            except msgspec.ValidationError as exc:
                await self.ws.send_text(_error_event(f"Invalid {kind} message: {exc}"))
                if kind == "execute":
                    await self.ws.close(websocket.UNSUPPORTED_DATA, "Invalid execute message")
                    return None

    async def serve(self, idle_s: float) -> None:
        """Wait for the execute message (at most ``idle_s``: an idle socket is closed), then run it."""
        message: api.WsExecute | api.WsStdin | api.WsSignal | None = None
        with trio.move_on_after(idle_s):
            while True:
                message = await self._next()
                if message is None:
                    return
                if isinstance(message, api.WsExecute):
                    break
                await self.ws.send_text(_error_event("No execution in progress: send an execute message first"))
        if not isinstance(message, api.WsExecute):
            text = f"No execute message within {idle_s:g} s"
            await self.ws.send_text(_error_event(text))
            await self.ws.close(websocket.POLICY_VIOLATION, text)
            return
        await self._run(message)

    async def _run(self, message: api.WsExecute) -> None:
        app = self.app
        try:
            _one_session(self.queried, message.session_id)
            options = app._prepare(message.request, message.options)
            plan_execution(message.request, options, session=message.session_id is not None)
            async with app._slot(self.principal, app.limits.deadline()), \
                    app._engine(self.principal, options, message.session_id) as (engine, session_id):
                self.control = RunControl()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read, nursery.cancel_scope)
                    async with contextlib.aclosing(_events(engine, message.request, session_id,
                                                           self.principal.owner, self.control)) as events:
                        async for event in events:
                            await self.ws.send_text(api.encode(event).decode())
                    nursery.cancel_scope.cancel()
        except Exception as exc:  # noqa: BLE001 - refused before the run started
            status, _kind, text, _ = error_answer(exc)
            await self.ws.send_text(_error_event(text))
            code = websocket.POLICY_VIOLATION if status in (401, 403) else (
                websocket.UNSUPPORTED_DATA if status < 500 else websocket.INTERNAL_ERROR)
            await self.ws.close(code, text[:120])
            return
        await self.ws.close(websocket.NORMAL, "Execution complete")

    async def _read(self, run_scope: trio.CancelScope) -> None:
        """The client's messages during the run: stdin and signals. Its leaving cancels the run."""
        control = self.control
        while True:
            message = await self._next()
            if message is None:
                run_scope.cancel()
                return
            try:
                if isinstance(message, api.WsStdin):
                    await control.write_stdin(message.data)
                    if message.eof:
                        await control.close_stdin()
                elif isinstance(message, api.WsSignal):
                    await control.signal(message.signal)
                else:
                    await self.ws.send_text(_error_event("An execution is already in progress"))
            except InvalidRequest as exc:
                await self.ws.send_text(_error_event(str(exc)))
