"""RemoteIsol8 against a real server on loopback: the engine's methods, its errors mapped back into
isol8rt.errors, and `isol8rt run --host` going through it."""

from __future__ import annotations

import functools
import os
import sys

import pytest
import trio

from isol8rt import (
    EngineUnavailable,
    ExecutionRequest,
    InvalidRequest,
    Isol8Error,
    Isol8Options,
    SandboxError,
    SessionError,
)
from isol8rt.client import AccessDenied, RateLimited, RemoteIsol8, error_for
from isol8rt.wire import errors

from .server.conftest import MASTER, start_server  # noqa: F401 - the fixture `live` uses


@pytest.fixture
async def live(start_server):  # noqa: F811 - start_server is the imported fixture
    return await start_server()


def test_error_mapping_goes_by_kind_and_never_reads_the_message():
    assert isinstance(error_for(401, b'{"error":"x","kind":"unauthorized"}'), AccessDenied)
    assert isinstance(error_for(403, b'{"error":"x","kind":"option_not_allowed"}'), AccessDenied)
    assert isinstance(error_for(400, b'{"error":"x","kind":"invalid_request"}'), InvalidRequest)
    assert isinstance(error_for(404, b'{"error":"x","kind":"session_not_found"}'), SessionError)
    assert isinstance(error_for(404, b'{"error":"x","kind":"file_not_found"}'), FileNotFoundError)
    # The message says "session", the kind says otherwise: the kind wins.
    not_found = error_for(404, b'{"error":"Session not found","kind":"not_found"}')
    assert type(not_found) is Isol8Error and str(not_found) == "Session not found"
    assert isinstance(error_for(409, b'{"error":"switch","kind":"session_conflict"}'), SessionError)
    limited = error_for(429, b'{"error":"slow down","kind":"rate_limited"}', [(b"retry-after", b"3")])
    assert isinstance(limited, RateLimited) and limited.retry_after == 3
    assert isinstance(error_for(503, b'{"error":"x","kind":"shutting_down"}'), EngineUnavailable)
    assert isinstance(error_for(500, b'{"error":"x","kind":"sandbox_failed"}'), SandboxError)


def test_every_kind_maps_to_an_exception_of_the_library():
    for kind, (status, _) in errors.KINDS.items():
        exc = error_for(status, errors.encode_error(kind, "why"))
        assert isinstance(exc, (Isol8Error, FileNotFoundError)) and str(exc) == "why"


def test_a_body_without_a_kind_is_mapped_by_its_status_alone():
    """The reference server sends no kind; nor does a proxy in between."""
    assert isinstance(error_for(403, b'{"error":"Invalid API key"}'), AccessDenied)
    assert isinstance(error_for(413, b'{"error":"too big"}'), InvalidRequest)
    assert type(error_for(404, b'{"error":"Session not found"}')) is Isol8Error
    assert isinstance(error_for(409, b'{"error":"switch"}'), SessionError)
    assert isinstance(error_for(503, b'{"error":"docker down"}'), EngineUnavailable)
    assert isinstance(error_for(418, b'{"error":"teapot","kind":"from_a_newer_server"}'), InvalidRequest)
    assert isinstance(error_for(500, b"<html>oops</html>"), SandboxError)
    assert str(error_for(500, b"")) == "HTTP 500"


async def test_execute_stream_and_keep_alive(live):
    async with live.client(options=Isol8Options(timeout_ms=5000)) as remote:
        for i in range(3):
            result = await remote.execute(ExecutionRequest(code=f"print({i})"))
            assert (result.stdout, result.exit_code) == (f"{i}\n", 0)
        assert len(remote._idle) == 1  # one connection carried all three
        events = [e async for e in remote.execute_stream(ExecutionRequest(code="echo a; exit 4", runtime="bash"))]
        assert events[-1].type == "exit" and events[-1].data == "4"
        assert "".join(e.data for e in events if e.type == "stdout") == "a\n"


async def test_sessions_files_and_stop(live):
    remote = live.client(session_id="client-session")
    async with remote:
        await remote.execute(ExecutionRequest(code="open('/sandbox/out.txt', 'w').write('made here')"))
        assert await remote.get_file("/sandbox/out.txt") == b"made here"
        await remote.put_file("/sandbox/in.txt", b"\x00binary\xff")
        result = await remote.execute(ExecutionRequest(code="print(open('/sandbox/in.txt', 'rb').read())"))
        assert result.stdout == "b'\\x00binary\\xff'\n"
        assert await remote.get_file("in.txt") == b"\x00binary\xff"
        with pytest.raises(FileNotFoundError):
            await remote.get_file("missing.txt")
        with pytest.raises(SessionError, match="cannot switch"):
            await remote.execute(ExecutionRequest(code="echo", runtime="bash"))
        assert [s.id for s in await remote.list_sessions()] == ["client-session"]
    # stop() ended the session on the server.
    async with live.client() as other:
        assert await other.list_sessions() == []
        assert await other.delete_session("client-session") is False
        with pytest.raises(SessionError, match="session_id"):
            await other.put_file("x.txt", b"x")


async def test_put_file_before_a_session_s_first_run_goes_with_that_run(live):
    """The server makes a session at its first run; a file put before it is staged by the client and sent
    with that run, as the local engine stages it (so put_file-then-execute works on either)."""
    async with live.client(session_id="never-ran") as remote:
        await remote.put_file("x.txt", b"\x00x")
        assert await remote.get_file("x.txt") == b"\x00x"
        assert await remote.list_sessions() == []  # nothing on the server yet
        result = await remote.execute(ExecutionRequest(code="print(open('x.txt', 'rb').read())"))
        assert result.stdout == "b'\\x00x'\n"
        assert [s.id for s in await remote.list_sessions()] == ["never-ran"]
        assert await remote.get_file("x.txt") == b"\x00x"  # now from the server
    async with live.client() as remote:
        await remote.put_file("y.txt", "staged", session_id="dropped")
        assert await remote.close_session("dropped") is True  # it existed, staged, as a local one would
        assert await remote.close_session("dropped") is False


async def test_refusals_become_errors(live):
    async with live.client("wrong-key") as remote:
        with pytest.raises(AccessDenied, match="Invalid API key"):
            await remote.execute(ExecutionRequest(code="1"))
    async with live.client(options={"network": "host"}) as remote:
        with pytest.raises(AccessDenied, match="network"):
            await remote.execute(ExecutionRequest(code="1"))
        with pytest.raises(AccessDenied, match="network"):
            async for _ in remote.execute_stream(ExecutionRequest(code="1")):
                pass
    async with live.client() as remote:
        with pytest.raises(InvalidRequest, match="exactly one"):
            await remote.execute(ExecutionRequest(code="1", cmd="2"))


async def test_unreachable_server():
    with pytest.raises(EngineUnavailable, match="cannot reach"):
        async with RemoteIsol8("http://127.0.0.1:9", "k"):
            pass
    with pytest.raises(InvalidRequest):
        RemoteIsol8("ftp://example.com", "k")


async def test_cli_run_with_host_goes_through_the_server(live):
    env = {**os.environ, "ISOL8_API_KEY": MASTER}
    done = await trio.run_process(
        [sys.executable, "-m", "isol8rt", "run", "--host", live.url, "-e", "import sys; print('remote'); sys.exit(3)"],
        capture_stdout=True, capture_stderr=True, check=False, env=env)
    assert (done.stdout, done.returncode) == (b"remote\n", 3), done.stderr
    assert live.server.engines.base.containers  # it ran on the server's engine
    refused = await trio.run_process(
        [sys.executable, "-m", "isol8rt", "run", "--host", live.url, "--key", "nope", "--no-stream", "-e", "1"],
        capture_stdout=True, capture_stderr=True, check=False)
    assert refused.returncode == 2 and b"Invalid API key" in refused.stderr


ALL_BYTES = bytes(range(256)) * 4 + b"\x00\xff\xfe"


async def test_binary_round_trips_in_both_directions(live):
    """Bytes stay bytes through the server, every byte value, both ways: a request's files in, its
    outputPaths out, put_file in and get_file out; text files stay text."""
    code = ("import sys\n"
            "data = open('/sandbox/in.bin', 'rb').read()\n"
            "print(len(data), data == bytes(range(256)) * 4 + b'\\x00\\xff\\xfe', open('/sandbox/t.txt').read())\n"
            "open('/sandbox/out.bin', 'wb').write(data[::-1])\n")
    async with live.client(session_id="bytes") as remote:
        result = await remote.execute(ExecutionRequest(code=code, files={"/sandbox/in.bin": ALL_BYTES,
                                                                          "/sandbox/t.txt": "tekst ✓"},
                                                       output_paths=["/sandbox/out.bin"]))
        assert result.stdout == f"{len(ALL_BYTES)} True tekst ✓\n", result.stderr
        assert result.files == {"/sandbox/out.bin": ALL_BYTES[::-1]}
        await remote.put_file("/sandbox/put.bin", bytearray(ALL_BYTES))
        assert await remote.get_file("/sandbox/put.bin") == ALL_BYTES
        assert await remote.get_file("/sandbox/out.bin") == ALL_BYTES[::-1]
        checked = await remote.execute(ExecutionRequest(code="print(open('/sandbox/put.bin', 'rb').read()[:3])"))
        assert checked.stdout == "b'\\x00\\x01\\x02'\n"


async def test_the_references_file_shapes_still_work(live):
    """What the reference's clients send: text as a string, bytes as Node's Buffer.toJSON(); and the
    extension RemoteIsol8 now uses, {"base64": ...}."""
    answer = await live.request("POST", "/execute", {"request": {
        "code": "print([open(f'/sandbox/{n}', 'rb').read() for n in ('a', 'b', 'c')])",
        "files": {"/sandbox/a": "AAE=", "/sandbox/b": {"type": "Buffer", "data": [0, 1, 255]},
                  "/sandbox/c": {"base64": "AAH/"}}}})
    assert answer.status == 200
    assert answer.json()["stdout"] == "[b'AAE=', b'\\x00\\x01\\xff', b'\\x00\\x01\\xff']\n"


async def test_a_session_s_requests_carry_its_id_in_the_query_for_a_load_balancer(nursery):
    """deploy/haproxy.cfg routes by the query's sessionId before the body's: a WebSocket's id is only
    in its first message, and a large body's may lie past what the balancer reads."""
    import h11

    targets: list[bytes] = []

    async def answer(stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        while type(event := conn.next_event()) is not h11.EndOfMessage:
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                targets.append(event.target)
        body = b'{"error": "no", "kind": "invalid_request"}'
        await stream.send_all(conn.send(h11.Response(status_code=400, headers=[("Content-Length", str(len(body)))]))
                              + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
        await stream.aclose()

    [listener] = await nursery.start(functools.partial(trio.serve_tcp, answer, 0, host="127.0.0.1"))
    url = f"http://127.0.0.1:{listener.socket.getsockname()[1]}"
    remote = RemoteIsol8(url, "k", session_id="a b/é")
    request = ExecutionRequest(code="1")
    with pytest.raises(InvalidRequest):
        await remote.execute(request)
    for transport in ("sse", "ws"):
        with pytest.raises(InvalidRequest):
            async for _ in remote.execute_stream(request, transport=transport):
                pass
    with pytest.raises(InvalidRequest):
        await remote.put_file("f", b"x")
    with pytest.raises(InvalidRequest):
        await remote.execute(ExecutionRequest(code="1"), session_id=None)  # the client's own session
    query = b"?sessionId=a%20b%2F%C3%A9"
    assert targets == [b"/execute" + query, b"/execute/stream" + query, b"/execute/ws" + query,
                       b"/file" + query, b"/execute" + query]
    with pytest.raises(InvalidRequest):
        await RemoteIsol8(url, "k").execute(request)
    assert targets[-1] == b"/execute"  # no session: no query


async def test_a_websocket_cut_without_a_close_frame_is_an_error(nursery):
    """A server that dies mid-run (or a proxy in front of it that cuts the stream) sends no close frame:
    the run's end is unknown, so the stream raises instead of ending as if the run had."""
    import h11

    from isol8rt.wire import websocket

    async def accept_then_die(stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        while not isinstance(event := conn.next_event(), h11.Request):
            conn.receive_data(await stream.receive_some(65536))
        key = dict(event.headers)[b"sec-websocket-key"]
        await stream.send_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              b"Sec-WebSocket-Accept: " + websocket.accept_token(key) + b"\r\n\r\n")
        await stream.receive_some(65536)  # the execute message
        await stream.aclose()

    [listener] = await nursery.start(functools.partial(trio.serve_tcp, accept_then_die, 0, host="127.0.0.1"))
    remote = RemoteIsol8(f"http://127.0.0.1:{listener.socket.getsockname()[1]}", "k")
    with pytest.raises(EngineUnavailable, match="closed the WebSocket before the run ended"):
        async for _ in remote.execute_stream(ExecutionRequest(code="1"), transport="ws"):
            pass
