"""The server's App through its Exchange seam: requests in, answers recorded, engines on the in-memory
backend (no sockets, no Docker; trio's mock clock where time matters)."""

from __future__ import annotations

import base64
import contextlib
import functools
from dataclasses import dataclass, field

import msgspec
import pytest
import trio

from isol8rt import DockerIsol8, Isol8Options
from isol8rt.server import engines as engines_module
from isol8rt.server._http_server import Request
from isol8rt.server.app import App
from isol8rt.server.auth import Authenticator
from isol8rt.server.engines import EngineSet
from isol8rt.server.keys import KeyStore
from isol8rt.server.limits import KeyLimits
from isol8rt.server.sessions import SessionRegistry
from isol8rt.server.slots import RunSlots
from isol8rt.testing import AgentScript, MemoryBackend, RunReply, open_memory_backend
from isol8rt.wire import errors

MASTER = "the-master-key"
TTL = 600.0


def _echo(run) -> RunReply:
    """The fake agent runs nothing: it prints the program back, or crashes when the program says so;
    ``sleep N`` takes N seconds of trio's clock."""
    code = run.code or b""
    seconds = float(code.split()[1]) if code.startswith(b"sleep ") else 0.0
    return RunReply(stdout=code, crash=code == b"crash", exit_code=3 if code == b"fail" else 0, seconds=seconds)


@dataclass
class Answer:
    """What an Exchange was asked to send."""

    status: int | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    content_type: bytes | None = None
    chunks: list[bytes] = field(default_factory=list)
    ended: bool = False

    def json(self):
        return msgspec.json.decode(self.body)

    def events(self) -> list[dict]:
        return [msgspec.json.decode(chunk.removeprefix(b"data: ").rstrip(b"\n")) for chunk in self.chunks]


class Exchange:
    def __init__(self) -> None:
        self.answer = Answer()

    async def respond(self, status, body, headers=None) -> None:
        self.answer.status, self.answer.body, self.answer.headers = status, body, headers or []
        if status >= 400:  # every error answer, whatever route it came from, says what kind it is
            kind = msgspec.json.decode(body)["kind"]
            assert errors.KINDS[kind][0] == status or (status, kind) == (431, errors.TOO_LARGE), (status, kind)

    async def respond_pieces(self, status, body) -> None:
        self.answer.status, self.answer.body = status, b"".join(body.pieces)
        assert len(self.answer.body) == body.length  # the length announced before the pieces

    async def start_stream(self, status, content_type, headers) -> None:
        self.answer.status, self.answer.content_type, self.answer.headers = status, content_type, headers

    async def send_chunk(self, data) -> None:
        self.answer.chunks.append(data)

    async def end_stream(self) -> None:
        self.answer.ended = True

    async def accept_websocket(self, headers):
        raise AssertionError("no WebSocket in these tests")


@dataclass
class Server:
    app: App
    backend: MemoryBackend
    keys: KeyStore

    async def call(self, method: str, path: str, body: dict | bytes | None = None, *, key: str | None = MASTER,
                   query: dict[str, str] | None = None) -> Answer:
        headers = [(b"authorization", f"Bearer {key}".encode())] if key is not None else []
        data = msgspec.json.encode(body) if isinstance(body, dict) else (body or b"")
        exchange = Exchange()
        # As the connection does: admit the head, then hand over the request with its body.
        try:
            call = self.app.admit(Request(method, path, query or {}, tuple(headers)))
            await self.app.wait_turn(call)  # a queued request waits here, its body unread
        except Exception as exc:  # noqa: BLE001 - what admit() and wait_turn() raise, refuse() answers
            await self.app.refuse(exc, exchange)
            return exchange.answer
        call.request = Request(method, path, query or {}, tuple(headers), data)
        try:
            await self.app.handle(call, exchange)
        finally:
            self.app.release(call)
        return exchange.answer


@pytest.fixture
def serve(monkeypatch, tmp_path):
    """``async with serve(rate_limit=...) as server``: an App whose engines run on the in-memory backend."""

    @contextlib.asynccontextmanager
    async def start(*, rate=0.0, concurrency=0, queue_depth=0, queue_wait_s=0.0, key_runs=None,
                    options: Isol8Options | None = None):
        options = options or Isol8Options(pool_size=1)
        async with open_memory_backend(AgentScript(run=_echo)) as backend:
            # EngineSet makes its engines itself; here they get the in-memory backend.
            monkeypatch.setattr(engines_module, "DockerIsol8", functools.partial(DockerIsol8, backend=backend))
            keys = KeyStore(tmp_path / "keys.db")
            keys.open()
            engines = EngineSet(options)
            await engines.start()
            sessions = SessionRegistry(engines, ttl_s=TTL)
            app = App(options=options, auth=Authenticator(MASTER, keys), engines=engines, sessions=sessions,
                      limits=KeyLimits(rate=rate, concurrency=concurrency, queue_depth=queue_depth,
                                       queue_wait_s=queue_wait_s),
                      slots=RunSlots(max(1, options.max_concurrent), key_runs or max(1, options.max_concurrent)),
                      keys=keys, remove_images=fake_remove_images)
            try:
                yield Server(app, backend, keys)
            finally:
                await sessions.close_all()
                await engines.stop()
                keys.close()

    return start


async def fake_remove_images() -> dict:
    """Stands in for DockerIsol8.cleanup_images: these tests never touch the machine's images."""
    return {"removed": 3, "failed": 1, "errors": ["isol8rt:deno: in use"]}


def execute(code: str, **fields) -> dict:
    return {"request": {"code": code}, **fields}


# --------------------------------------------------------------------------------------------------
# routes, authentication, errors


async def test_health_needs_no_key_and_unknown_routes_are_404_or_405(serve):
    async with serve() as server:
        health = await server.call("GET", "/health", key=None)
        assert health.status == 200 and health.json()["status"] == "ok"
        missing = await server.call("GET", "/nowhere")
        assert (missing.status, missing.json()) == (404, {"error": "Not found", "kind": "not_found"})
        wrong = await server.call("GET", "/execute")
        assert wrong.status == 405 and (b"Allow", b"POST") in wrong.headers


async def test_keys_are_checked(serve):
    async with serve() as server:
        anonymous = await server.call("POST", "/execute", execute("1"), key=None)
        assert (anonymous.status, anonymous.json()) == (401, {"error": "Missing Authorization header", "kind": "unauthorized"})
        assert (b"WWW-Authenticate", b"Bearer") in anonymous.headers
        wrong = await server.call("POST", "/execute", execute("1"), key="guess")
        assert (wrong.status, wrong.json()) == (403, {"error": "Invalid API key", "kind": "forbidden"})


async def test_only_the_master_key_manages_keys_and_cleans_up(serve):
    async with serve() as server:
        created = await server.call("POST", "/auth/keys", {"name": "ci", "tenantId": "acme"})
        assert created.status == 201
        key = created.json()["key"]
        listed = await server.call("GET", "/auth/keys")
        assert [k["name"] for k in listed.json()["keys"]] == ["ci"] and "key" not in listed.json()["keys"][0]
        for method, path in (("GET", "/auth/keys"), ("POST", "/cleanup")):
            refused = await server.call(method, path, key=key)
            assert (refused.status, refused.json()) == (403, {"error": "Master key required for this operation", "kind": "forbidden"})
        ran = await server.call("POST", "/execute", execute("print(1)"), key=key)
        assert ran.status == 200
        revoked = await server.call("DELETE", f"/auth/keys/{created.json()['id']}")
        assert revoked.status == 200
        assert (await server.call("POST", "/execute", execute("1"), key=key)).status == 403


@pytest.mark.parametrize(("body", "status", "kind", "error"), [
    (b"{not json", 400, "invalid_request", "Invalid JSON"),
    (b'{"request": {"runtime": "ruby", "code": "1"}}', 400, "invalid_request", "Invalid request body"),
    (b'{"request": {"code": "1", "workdir": "/etc"}}', 400, "invalid_request",
     "workdir: '/etc' resolves to /etc, outside /sandbox"),
    (b'{"request": {"code": "1"}, "options": {"network": "host"}}', 403, "option_not_allowed",
     "Option not allowed: network"),
    (b'{"request": {"code": "1", "timeoutMs": 99999999}}', 403, "option_not_allowed", "timeoutMs"),
])
async def test_refusals_are_json_errors(serve, body, status, kind, error):
    async with serve() as server:
        answer = await server.call("POST", "/execute", body)
        assert (answer.status, answer.json()["kind"]) == (status, kind) and error in answer.json()["error"]
        assert server.backend.containers == {} or all(
            not any(type(m).__name__ == "Run" for m in c.agent.received) for c in server.backend.containers.values())


# --------------------------------------------------------------------------------------------------
# runs


async def test_execute_answers_the_result(serve):
    async with serve() as server:
        answer = await server.call("POST", "/execute", execute("print('hi')"))
        assert answer.status == 200
        result = answer.json()
        assert (result["stdout"], result["exitCode"], result["runtime"]) == ("print('hi')", 0, "python")
        assert result["containerId"] in server.backend.containers
        failed = (await server.call("POST", "/execute", execute("fail"))).json()
        assert failed["exitCode"] == 3  # the program's failure is a result, not an error


async def test_a_container_that_fails_is_a_500_with_its_reason(serve):
    async with serve() as server:
        answer = await server.call("POST", "/execute", execute("crash"))
        assert (answer.status, answer.json()["kind"]) == (500, "sandbox_failed")
        assert "the agent exited" in answer.json()["error"]
        assert (await server.call("POST", "/execute", execute("after"))).json()["stdout"] == "after"


async def test_execute_stream_is_server_sent_events(serve):
    async with serve() as server:
        answer = await server.call("POST", "/execute/stream", execute("streamed"))
        assert (answer.status, answer.content_type, answer.ended) == (200, b"text/event-stream", True)
        assert answer.events() == [{"type": "stdout", "data": "streamed", "phase": "code"},
                                   {"type": "exit", "data": "0", "phase": "code"}]


async def test_a_bad_streamed_request_is_refused_before_the_stream_starts(serve):
    async with serve() as server:
        answer = await server.call("POST", "/execute/stream", execute("1", request={"cmd": "x", "code": "y"}))
        assert (answer.status, answer.content_type, answer.chunks) == (400, None, [])
        assert answer.json() == {"error": "give exactly one of code and cmd", "kind": "invalid_request"}


async def test_a_failure_after_the_stream_started_is_its_last_event(serve):
    async with serve() as server:
        answer = await server.call("POST", "/execute/stream", execute("crash"))
        assert answer.status == 200 and answer.ended
        [event] = answer.events()
        assert event["type"] == "error" and "the agent exited" in event["data"]


# --------------------------------------------------------------------------------------------------
# sessions and files


async def test_session_files_round_trip_and_sessions_are_listed_and_deleted(serve):
    async with serve() as server:
        ran = await server.call("POST", "/execute", execute("x = 1", sessionId="work"))
        assert ran.status == 200
        content = base64.b64encode(b"\x00binary\xff").decode()
        put = await server.call("POST", "/file", {"sessionId": "work", "path": "/sandbox/data.bin", "content": content})
        assert (put.status, put.json()) == (200, {"ok": True})
        got = await server.call("GET", "/file", query={"sessionId": "work", "path": "/sandbox/data.bin"})
        assert got.json() == {"content": content}
        missing = await server.call("GET", "/file", query={"sessionId": "work", "path": "/sandbox/none"})
        assert (missing.status, missing.json()["kind"]) == (404, "file_not_found")
        listed = (await server.call("GET", "/sessions")).json()["sessions"]
        assert [s["id"] for s in listed] == ["work"]
        deleted = await server.call("DELETE", "/session/work")
        assert (deleted.status, deleted.json()) == (200, {"ok": True, "removed": True})
        # Gone already: still ok, as the reference answers (a client that deletes twice does not fail).
        assert (await server.call("DELETE", "/session/work")).json() == {"ok": True, "removed": False}


async def test_sessions_belong_to_their_owner(serve):
    async with serve() as server:
        other = (await server.call("POST", "/auth/keys", {"name": "other"})).json()["key"]
        await server.call("POST", "/execute", execute("mine", sessionId="main"))
        answer = await server.call("GET", "/file", query={"sessionId": "main", "path": "a"}, key=other)
        assert answer.status == 404 and answer.json() == {"error": "Session not found", "kind": "session_not_found"}
        # Deleting it is "ok" and removes nothing: to the other key it does not exist.
        assert (await server.call("DELETE", "/session/main", key=other)).json() == {"ok": True, "removed": False}
        assert [s["id"] for s in (await server.call("GET", "/sessions")).json()["sessions"]] == ["main"]
        assert (await server.call("GET", "/sessions", key=other)).json()["sessions"] == []


async def test_a_session_idle_past_its_ttl_is_gone(serve, autojump_clock):
    async with serve() as server:
        await server.call("POST", "/execute", execute("x = 1", sessionId="brief"))
        await trio.sleep(TTL - 1)
        assert await server.app.sessions.prune() == 0
        await trio.sleep(2)
        assert await server.app.sessions.prune() == 1
        gone = await server.call("GET", "/file", query={"sessionId": "brief", "path": "a"})
        assert gone.status == 404


async def test_a_session_keeps_the_options_it_started_with(serve):
    async with serve() as server:
        await server.call("POST", "/execute", execute("1", sessionId="s"))
        other = await server.call("POST", "/execute", execute("1", sessionId="s", options={"memoryLimit": "256m"}))
        assert other.status == 409 and "other options" in other.json()["error"]


# --------------------------------------------------------------------------------------------------
# limits


async def test_the_rate_limit_answers_429_with_retry_after_and_refills(serve, autojump_clock):
    async with serve(rate=1.0) as server:  # bursts of 2
        statuses = [(await server.call("GET", "/sessions")).status for _ in range(3)]
        assert statuses == [200, 200, 429]
        limited = await server.call("GET", "/sessions")
        assert (b"Retry-After", b"1") in limited.headers and "Rate limit exceeded" in limited.json()["error"]
        await trio.sleep(1)
        assert (await server.call("GET", "/sessions")).status == 200


async def test_concurrent_requests_per_key_are_capped(serve):
    async with serve(concurrency=1) as server:
        with server.app.limits.admit("master"):  # a request of the master key in flight
            answer = await server.call("GET", "/sessions")
        assert answer.status == 429 and "Too many concurrent requests" in answer.json()["error"]
        assert (await server.call("GET", "/sessions")).status == 200


async def fan_out(server, count: int, code: str, **fields) -> list:
    """``count`` requests of one key at once, as a fan-out client sends them."""
    answers: list = [None] * count

    async def one(index: int) -> None:
        answers[index] = await server.call("POST", "/execute", execute(code, **fields))

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(one, index)
    return answers


async def test_fifty_concurrent_requests_of_one_key_all_run(serve, autojump_clock):
    """The reference queues requests behind maxConcurrent; so does the server, behind the key's places
    (4 in flight, 2 running at once here) with the other 46 waiting their turn."""
    async with serve(concurrency=4, queue_depth=46, queue_wait_s=600, key_runs=2) as server:
        started = trio.current_time()
        answers = await fan_out(server, 50, "sleep 1")
        assert [a.status for a in answers] == [200] * 50
        assert all(a.json()["stdout"] == "sleep 1" for a in answers)
        # Two at a time: the queue really held them (and nobody was refused for it).
        assert trio.current_time() - started >= 25
        assert server.app.limits.waiting("master") == 0 and server.app.slots.in_use == 0


async def test_past_the_queue_depth_the_overflow_gets_429_with_retry_after(serve, autojump_clock):
    async with serve(concurrency=4, queue_depth=40, queue_wait_s=600, key_runs=2) as server:
        answers = await fan_out(server, 50, "sleep 1")
        refused = [a for a in answers if a.status != 200]
        assert len(refused) == 6 and all(a.status == 429 for a in refused)
        assert all((b"Retry-After", b"1") in a.headers and a.json()["kind"] == "rate_limited" for a in refused)
        assert "Too many concurrent requests" in refused[0].json()["error"]
        # The overflow was turned away, not the queue: the key is served again at once.
        assert (await server.call("POST", "/execute", execute("again"))).status == 200


async def test_the_wait_for_a_turn_is_bounded(serve, autojump_clock):
    """One place, runs of 4 s, a 10 s bound: the second and third get their turn (at 4 s and 8 s),
    the others would get it at 12 s or later, so they are answered 429 at 10 s."""
    async with serve(concurrency=1, queue_depth=10, queue_wait_s=10) as server:
        answers = await fan_out(server, 6, "sleep 4")
        assert sorted(a.status for a in answers) == [200, 200, 200, 429, 429, 429]
        late = next(a for a in answers if a.status == 429)
        assert "waited 10 s" in late.json()["error"] and (b"Retry-After", b"1") in late.headers


async def test_the_wait_for_a_run_slot_is_bounded_too(serve, autojump_clock):
    async with serve(queue_wait_s=10, key_runs=1) as server:  # no per-key queue: the run slots queue
        answers = await fan_out(server, 6, "sleep 4")
        assert sorted(a.status for a in answers) == [200, 200, 200, 429, 429, 429]
        assert server.app.slots.in_use == 0 and not server.app.slots._waiting


async def test_is_active_means_a_run_is_executing_now(serve, autojump_clock):
    async with serve() as server:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.call, "POST", "/execute", execute("sleep 10", sessionId="busy"))
            await trio.sleep(5)
            listed = (await server.call("GET", "/sessions")).json()["sessions"]
            assert [(s["id"], s["isActive"]) for s in listed] == [("busy", True)]
        listed = (await server.call("GET", "/sessions")).json()["sessions"]
        assert [(s["id"], s["isActive"]) for s in listed] == [("busy", False)]
        assert listed[0]["lastAccessedAt"].endswith("Z")


async def test_cleanup_answers_a_report_per_part_and_removes_images_by_default(serve):
    async with serve() as server:
        await server.call("POST", "/execute", execute("1", sessionId="a"))
        cleaned = await server.call("POST", "/cleanup")  # no body: {} (images default true, as the reference)
        report = {"removed": 3, "failed": 1, "errors": ["isol8rt:deno: in use"]}
        body = cleaned.json()
        assert (cleaned.status, body["ok"], body["images"]) == (200, True, report)
        assert body["sessions"] == {"removed": 1, "failed": 0, "errors": []}
        assert set(body["containers"]) == {"removed", "failed", "errors"}
        without = (await server.call("POST", "/cleanup", {"images": False})).json()
        assert "images" not in without and without["sessions"]["removed"] == 0


async def test_keys_get_the_reference_defaults_and_are_listed_by_tenant(serve):
    async with serve() as server:
        plain = (await server.call("POST", "/auth/keys", {"name": "plain"})).json()
        assert plain["tenantId"] == "default" and plain["expiresAt"].endswith("Z")
        acme = (await server.call("POST", "/auth/keys", {"name": "acme", "tenantId": "acme", "ttlMs": 1000})).json()
        listed = (await server.call("GET", "/auth/keys")).json()["keys"]
        assert [k["name"] for k in listed] == ["acme", "plain"]  # newest first, as the reference
        assert set(listed[0]) == {"id", "name", "keyPrefix", "tenantId", "createdAt", "expiresAt", "lastUsedAt",
                                  "revoked"}
        assert listed[0]["revoked"] is False and listed[0]["lastUsedAt"] is None
        only = (await server.call("GET", "/auth/keys", query={"tenantId": "acme"})).json()["keys"]
        assert [k["id"] for k in only] == [acme["id"]]
        assert (await server.call("GET", "/auth/keys", query={"tenantId": "nobody"})).json() == {"keys": []}
        await server.call("GET", "/sessions", key=plain["key"])
        used = (await server.call("GET", "/auth/keys", query={"tenantId": "default"})).json()["keys"]
        assert used[0]["lastUsedAt"].endswith("Z")
        revoked = await server.call("DELETE", f"/auth/keys/{acme['id']}")
        assert (revoked.status, revoked.json()) == (200, {"ok": True, "id": acme["id"]})


async def test_login_hands_out_a_short_lived_key(serve):
    async with serve() as server:
        login = await server.call("POST", "/auth/login", {"ttlMs": 60000})
        assert login.status == 200 and set(login.json()) == {"token", "expiresAt", "keyId"}
        token = login.json()["token"]
        assert (await server.call("GET", "/sessions", key=token)).status == 200
        refused = await server.call("GET", "/auth/keys", key=token)  # no master rights
        assert refused.status == 403
        listed = (await server.call("GET", "/auth/keys")).json()["keys"]
        assert listed[0]["id"] == login.json()["keyId"] and listed[0]["name"].startswith("login-")
        assert (await server.call("POST", "/auth/login", {"ttlMs": -1})).status == 400


async def test_a_session_named_differently_in_the_query_and_the_request_is_refused(serve):
    # Attack: HAProxy routes on the query's sessionId before the body's (or the path's), the server acted on
    # the body's: the request made or closed the other session on the first one's node, split over two nodes.
    async with serve() as server:
        for method, path, body in (("POST", "/execute", execute("x = 1", sessionId="b")),
                                   ("POST", "/execute/stream", execute("x = 1", sessionId="b")),
                                   ("POST", "/file", {"sessionId": "b", "path": "/sandbox/f", "content": ""}),
                                   ("DELETE", "/session/b", None)):
            answer = await server.call(method, path, body, query={"sessionId": "a"})
            assert answer.status == 400 and b"name different sessions" in answer.body, (path, answer)
        same = await server.call("POST", "/execute", execute("x = 1", sessionId="a"), query={"sessionId": "a"})
        assert same.status == 200
        # The body alone, naming it twice: HAProxy's json_query reads the first, the decoder kept the last.
        twice = b'{"request": {"code": "x = 1", "runtime": "python"}, "sessionId": "a", "sessionId": "b"}'
        for path in ("/execute", "/execute/stream"):
            answer = await server.call("POST", path, twice)
            assert answer.status == 400 and b"named more than once" in answer.body, (path, answer)
        # The key's text as a value is not a second name.
        worded = await server.call("POST", "/execute", execute("'sessionId'", sessionId="a", env={"K": "sessionId"}))
        assert worded.status == 200, worded.body


class _OneMessageSocket:
    """A WebSocket whose client sends one message, then waits; what the server sends is kept."""

    def __init__(self, message: dict) -> None:
        self.incoming = [msgspec.json.encode(message)]
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None

    async def receive(self):
        return self.incoming.pop(0) if self.incoming else None

    async def send_text(self, text: str) -> None:
        self.sent.append(text)

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = (code, reason)


async def test_a_websocket_whose_execute_names_another_session_than_its_query_is_refused(serve):
    # The same attack over the WebSocket: routed on the upgrade's ?sessionId, run on the message's.
    from isol8rt.server.app import _WsRun
    from isol8rt.server.auth import MASTER as MASTER_PRINCIPAL
    from isol8rt.wire import websocket

    async with serve() as server:
        ws = _OneMessageSocket({"type": "execute", "request": {"code": "x = 1"}, "sessionId": "b"})
        await _WsRun(server.app, ws, MASTER_PRINCIPAL, "a").serve(5)
        assert "name different sessions" in ws.sent[0] and ws.closed[0] == websocket.UNSUPPORTED_DATA
        assert ws.closed[0] != websocket.NORMAL
        assert (await server.call("GET", "/sessions")).body.count(b'"id"') == 0  # nothing made for "b"
