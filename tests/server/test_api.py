"""The REST API over real HTTP on loopback, real containers: the reference server's cases, and its
request and response shapes replayed from fixtures."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import trio

from isol8rt import __version__

from .conftest import MASTER, raw_request

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


async def test_health_needs_no_key(live):
    answer = await live.request("GET", "/health", key=None)
    assert answer.status == 200
    assert answer.json() == {"status": "ok", "version": __version__}
    assert answer.headers[b"content-type"] == b"application/json"


async def test_auth_missing_and_wrong_key(live):
    missing = await live.request("POST", "/execute", {"request": {"code": "print(1)"}}, key=None)
    assert (missing.status, missing.json()) == (401, {"error": "Missing Authorization header", "kind": "unauthorized"})
    wrong = await live.request("POST", "/execute", {"request": {"code": "print(1)"}}, key="nope")
    assert (wrong.status, wrong.json()) == (403, {"error": "Invalid API key", "kind": "forbidden"})
    for path in ("/sessions", "/file?sessionId=a&path=b"):
        assert (await live.request("GET", path, key=None)).status == 401
        assert (await live.request("GET", path, key=MASTER + "x")).status == 403
    basic = await live.request("GET", "/sessions", key=None, headers=[(b"Authorization", b"Basic " + MASTER.encode())])
    assert basic.status == 403


async def test_execute_replays_the_reference_request(live):
    answer = await live.request("POST", "/execute", fixture("execute_request.json"))
    assert answer.status == 200, answer.body
    result = answer.json()
    expected = fixture("execute_response.json")
    assert result["stdout"] == expected["stdout"]
    assert result["exitCode"] == 0 and result["runtime"] == "python" and result["truncated"] is False
    assert base64.b64decode(result["files"]["/sandbox/out.txt"]) == b"result"
    # Every key the reference answers with is there, with the same JSON type.
    for key in ("stdout", "stderr", "exitCode", "durationMs", "truncated", "executionId", "runtime", "timestamp",
                "containerId", "files", "resourceUsage"):
        assert key in result, key
        assert isinstance(result[key], (int, float)) == isinstance(expected[key], (int, float)), key
        assert isinstance(result[key], str) == isinstance(expected[key], str), key


async def test_resource_usage_keys_match_the_reference(live):
    answer = await live.request("POST", "/execute", {"request": {"code": "print(1)"}})
    assert set(fixture("execute_response.json")["resourceUsage"]) <= set(answer.json()["resourceUsage"])


async def test_program_failure_is_a_result_not_an_error(live):
    answer = await live.request("POST", "/execute", {"request": {"code": "import sys; sys.exit(7)"}})
    assert answer.status == 200 and answer.json()["exitCode"] == 7


async def test_stream_is_sse_frames_of_stream_events(live):
    answer = await live.request("POST", "/execute/stream", fixture("stream_request.json"))
    assert answer.status == 200
    assert answer.headers[b"content-type"] == b"text/event-stream"
    frames = answer.body.split(b"\n\n")
    assert frames[-1] == b""
    events = []
    for frame in frames[:-1]:
        assert frame.startswith(b"data: ")
        events.append(json.loads(frame[6:]))
    assert {"type": "stdout", "data": "out\n", "phase": "code"} in events
    assert {"type": "stderr", "data": "err\n", "phase": "code"} in events
    assert events[-1] == {"type": "exit", "data": "3", "phase": "code"}


async def test_stream_refuses_a_bad_request_before_streaming(live):
    answer = await live.request("POST", "/execute/stream", {"request": {"code": "x", "cmd": "y"}})
    assert answer.status == 400
    assert "exactly one of code and cmd" in answer.json()["error"]


async def test_sessions_files_and_delete(live):
    first, second = fixture("session_requests.json")
    assert (await live.request("POST", "/execute", first)).status == 200
    answer = await live.request("POST", "/execute", second)
    assert answer.json()["stdout"] == "42\n"

    upload = fixture("file_upload.json")
    assert (await live.request("POST", "/file", upload)).json() == {"ok": True}
    download = await live.request("GET", "/file?sessionId=fixture-session&path=%2Fsandbox%2Fupload.bin")
    assert download.status == 200 and download.json() == {"content": upload["content"]}
    missing_file = await live.request("GET", "/file?sessionId=fixture-session&path=/sandbox/nope")
    assert missing_file.status == 404 and "File not found" in missing_file.json()["error"]

    listed = (await live.request("GET", "/sessions")).json()["sessions"]
    assert [(s["id"], s["isActive"]) for s in listed] == [("fixture-session", False)]  # no run executing
    assert isinstance(listed[0]["lastAccessedAt"], str)

    assert (await live.request("DELETE", "/session/fixture-session")).json() == {"ok": True, "removed": True}
    assert (await live.request("GET", "/sessions")).json() == {"sessions": []}
    assert (await live.request("DELETE", "/session/fixture-session")).json() == {"ok": True, "removed": False}
    assert live.server.engines.containers == [c for c in live.server.engines.containers if c]  # still sane


async def test_file_errors(live):
    missing = await live.request("GET", "/file?sessionId=x")
    assert (missing.status, missing.json()) == (400, {"error": "Missing sessionId or path", "kind": "invalid_request"})
    unknown = await live.request("GET", "/file?sessionId=nope&path=a.txt")
    assert (unknown.status, unknown.json()) == (404, {"error": "Session not found", "kind": "session_not_found"})
    upload = await live.request("POST", "/file", {"sessionId": "nope", "path": "a.txt", "content": "AA=="})
    assert (upload.status, upload.json()) == (404, {"error": "Session not found", "kind": "session_not_found"})
    assert (await live.request("POST", "/file", {"path": "a.txt"})).status == 400
    await live.request("POST", "/execute", {"request": {"code": "1"}, "sessionId": "s"})
    bad = await live.request("POST", "/file", {"sessionId": "s", "path": "a.txt", "content": "%%%"})
    assert bad.status == 400 and "base64" in bad.json()["error"]
    outside = await live.request("POST", "/file", {"sessionId": "s", "path": "/etc/passwd", "content": "AA=="})
    assert outside.status == 400


async def test_bad_json_and_bad_shapes_are_400(live):
    bad = await live.request("POST", "/execute", b"{not json")
    assert bad.status == 400 and bad.json()["error"].startswith("Invalid JSON")
    shape = await live.request("POST", "/execute", {"request": {"code": 5}})
    assert shape.status == 400 and "$.request.code" in shape.json()["error"]
    runtime = await live.request("POST", "/execute", {"request": {"code": "1", "runtime": "cobol"}})
    assert runtime.status == 400
    session = await live.request("POST", "/execute", {"request": {"code": "1"}, "sessionId": ""})
    assert session.status == 400


async def test_unknown_route_method_and_runtime_switch(live):
    assert (await live.request("GET", "/nope")).json() == {"error": "Not found", "kind": "not_found"}
    wrong = await live.request("GET", "/execute")
    assert wrong.status == 405 and wrong.headers[b"allow"] == b"POST"
    await live.request("POST", "/execute", {"request": {"code": "1"}, "sessionId": "py"})
    switch = await live.request("POST", "/execute", {"request": {"code": "echo", "runtime": "bash"}, "sessionId": "py"})
    assert switch.status == 409 and "cannot switch" in switch.json()["error"]


async def test_body_limit_is_413(start_server):
    live = await start_server(max_body=1024)
    big = await live.request("POST", "/execute", {"request": {"code": "#" * 2000}})
    assert (big.status, big.json()) == (413, {"error": "Request body too large (limit 1024 bytes)", "kind": "too_large"})
    # The server still answers afterwards.
    assert (await live.request("GET", "/health")).status == 200


async def test_keep_alive_and_pipelining_on_one_connection(live):
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    request = (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + MASTER.encode() + b"\r\n\r\n")
    async with stream:
        await stream.send_all(request)
        data = b""
        with trio.fail_after(10):
            while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b'{"sessions":[]}'):
                data += await stream.receive_some(65536)
    assert data.count(b"HTTP/1.1 200") == 2


async def test_malformed_http_is_answered_400(live):
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    async with stream:
        await stream.send_all(b"NOT HTTP AT ALL\r\n\r\n")
        data = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                data += chunk
    assert data.startswith(b"HTTP/1.1 400") and b'{"error":' in data


async def test_openapi_document(live):
    answer = await raw_request(live.port, "GET", "/openapi.json", key=None)
    doc = answer.json()
    assert doc["openapi"].startswith("3.1")
    assert {"/execute", "/execute/stream", "/execute/ws", "/file", "/sessions", "/session/{id}", "/cleanup",
            "/auth/keys", "/health"} <= set(doc["paths"])
    assert "ExecutionResult" in doc["components"]["schemas"]
    assert "timeoutMs" in doc["components"]["schemas"]["ExecutionRequest"]["properties"]


async def test_runs_in_one_session_are_serialized(live):
    slow = {"request": {"code": "import time\ntime.sleep(1)\nvalue = 'set by the first run'"}, "sessionId": "serial"}
    after = {"request": {"code": "print(value)"}, "sessionId": "serial"}
    answers = {}

    async def send(name, body, delay):
        await trio.sleep(delay)
        answers[name] = await live.request("POST", "/execute", body)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send, "slow", slow, 0)
        nursery.start_soon(send, "after", after, 0.3)
    assert answers["slow"].status == 200
    assert answers["after"].json()["stdout"] == "set by the first run\n"


async def test_a_large_upload_refused_midway_still_gets_its_413(start_server):
    live = await start_server(max_body=64 * 1024)
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    head = (b"POST /execute HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer "
            + MASTER.encode() + b"\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (16384, b"x" * 16384)
    answer = b""
    async with stream:
        await stream.send_all(head)
        with trio.move_on_after(5):
            try:
                for _ in range(64):  # 1 MiB, far past the limit
                    await stream.send_all(chunk)
            except trio.BrokenResourceError:
                pass
        with trio.fail_after(10):
            while data := await stream.receive_some(65536):
                answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
