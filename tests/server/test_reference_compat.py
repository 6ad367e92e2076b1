"""The reference's documented requests, sent to a real `isol8rt serve` (a subprocess, real containers),
and its documented answers checked field by field: every field the reference names is there, with the
same JSON type and the same nesting, and every field isol8rt adds is one docs/server.md ("Against the
reference") lists as an extension.

Where each example comes from: the seeds (../shared/seeds/: 001 for ExecutionRequest, ExecutionResult
and the clean-up report, 002 and 004 for the streaming and session examples, 004 for the REST table),
the facts in ../shared/notes/seed-reference.md (envelopes, error answers, the WebSocket, keys), and the
reference's server documentation (one page per route) for the examples the seeds do not show. The
values below are ours; only their shapes, and the values the reference fixes (messages, status codes,
``"ok": true``, the exit event's data), are checked.

One server serves the whole module, with small concurrency limits so the fan-out case queues.
``POST /cleanup`` is only ever sent with ``"images": false`` here: its default (as in the reference)
removes the sandbox images, which other tests on this machine are using.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
import trio
from wsproto.events import AcceptConnection

from ..conftest import needs_docker
from .conftest import MASTER, ServerProcess, raw_request
from .test_websocket import WsClient


@dataclass(frozen=True)
class MapOf:
    """An object whose keys are data (paths, names), each value of the shape ``value``."""

    value: Any


UUID = "3b0d6f54-3b4c-4b8e-9f52-0d6f0a1d2c33"
STAMP = "2026-01-01T00:00:00.000Z"

# ---------------------------------------------------------------------------------------------------
# The reference's answers, as documented (values ours, shapes theirs)

#: seed 004's REST table and the notes: GET /health.
HEALTH = {"status": "ok", "version": "0.20.0"}
#: seed 001, "ExecutionResult fields" (files and resourceUsage when asked for and available).
RESULT = {"stdout": "1\n", "stderr": "", "exitCode": 0, "durationMs": 42, "truncated": False,
          "executionId": UUID, "runtime": "python", "timestamp": STAMP, "containerId": "0123456789ab",
          "resourceUsage": {"cpuPercent": 1.5, "memoryMB": 10.2, "peakMemoryMB": 10.2, "networkBytesIn": 0,
                            "networkBytesOut": 0}}
RESULT_WITH_FILES = {**RESULT, "files": MapOf("cmVzdWx0")}
#: The notes' StreamEvent: type, data, and phase (setup or code).
EVENT = {"type": "stdout", "data": "0\n", "phase": "code"}
#: The notes: POST /file, DELETE /session/:id.
OK = {"ok": True}
#: The notes: GET /file.
CONTENT = {"content": "aGk="}
#: The notes and the reference's GET /sessions page.
SESSIONS = {"sessions": [{"id": "my-session", "isActive": True, "lastAccessedAt": STAMP}]}
#: seed 001's clean-up helper ({removed, failed, errors}) and the notes: POST /cleanup.
REPORT = {"removed": 2, "failed": 0, "errors": ["an error"]}
CLEANUP = {"ok": True, "sessions": REPORT, "containers": REPORT}
#: The notes and the reference's key pages: POST /auth/keys (201), GET /auth/keys, DELETE, login.
KEY_CREATED = {"id": UUID, "key": "isol8_4f3c8a1b", "name": "ci-runner", "keyPrefix": "isol8_4f3c",
               "tenantId": "team-infra", "expiresAt": STAMP}
KEYS = {"keys": [{"id": UUID, "name": "ci-runner", "keyPrefix": "isol8_4f3c", "tenantId": "team-infra",
                  "createdAt": STAMP, "expiresAt": STAMP, "lastUsedAt": STAMP, "revoked": False}]}
KEY_REVOKED = {"ok": True, "id": UUID}
LOGIN = {"token": "isol8_9f2e8d7c", "expiresAt": STAMP, "keyId": UUID}
#: The notes: every error is {"error": message}.
ERROR = {"error": "Session not found"}

#: What isol8rt adds (docs/server.md, "Against the reference"), by path in the answer.
EXTENSIONS = frozenset({
    "$.kind",  # every error body
    "$.resourceUsage.cpuTimeMs",  # POST /execute: CPU time, besides the reference's percentage
    "$.removed",  # DELETE /session/:id
    "$.sessions[].runtime", "$.sessions[].containerId",  # GET /sessions
})


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: JSON's true is not a number
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def shape_errors(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """How ``actual`` differs in shape from ``expected``: missing fields, fields the reference does not
    have (unless listed in EXTENSIONS), and values of another JSON type, at any depth."""
    if isinstance(expected, MapOf):
        if not isinstance(actual, dict):
            return [f"{path}: an object expected, got {_kind(actual)}"]
        return [e for key, value in actual.items() for e in shape_errors(expected.value, value, f"{path}{{}}")]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: an object expected, got {_kind(actual)}"]
        errors = [f"{path}.{name}: missing" for name in expected if name not in actual]
        errors += [f"{path}.{name}: not in the reference" for name in actual
                   if name not in expected and f"{path}.{name}" not in EXTENSIONS]
        for name, value in expected.items():
            if name in actual:
                errors += shape_errors(value, actual[name], f"{path}.{name}")
        return errors
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: an array expected, got {_kind(actual)}"]
        return [e for item in actual for e in shape_errors(expected[0], item, f"{path}[]")] if expected else []
    if _kind(expected) != _kind(actual):
        return [f"{path}: {_kind(expected)} expected, got {_kind(actual)} ({actual!r:.60})"]
    return []


def assert_shape(expected: Any, actual: Any) -> None:
    errors = shape_errors(expected, actual)
    assert not errors, "\n".join(errors)


def test_the_shape_check_sees_what_it_must():
    """The checker itself: names both ways, types (a boolean is not a number), nesting, arrays, maps."""
    assert shape_errors(REPORT, {"removed": 1, "failed": 0, "errors": []}) == []
    assert shape_errors(REPORT, {"removed": True, "failed": 0, "errors": []}) == [
        "$.removed: number expected, got boolean (True)"]
    assert shape_errors(CLEANUP, {"ok": True, "sessions": 2, "containers": REPORT}) == [
        "$.sessions: an object expected, got number"]
    assert shape_errors(SESSIONS, {"sessions": [{"id": "a", "isActive": True}]}) == [
        "$.sessions[].lastAccessedAt: missing"]
    assert shape_errors(OK, {"ok": True, "extra": 1}) == ["$.extra: not in the reference"]
    assert shape_errors(RESULT_WITH_FILES, {**RESULT, "files": {"/a": 1}}) == [
        "$.files{}: string expected, got number (1)"]
    assert shape_errors(ERROR, {"error": "x", "kind": "not_found"}) == []  # an extension


# ---------------------------------------------------------------------------------------------------
# The server


@pytest.fixture(scope="module")
@needs_docker
def server(tmp_path_factory):
    """`isol8rt serve` with small limits: 4 runs at once, 2 per key, 2 requests per key in flight, the
    rest queued (the reference's defaults would let a fan-out through without queueing at all)."""
    process = ServerProcess(tmp_path_factory.mktemp("compat"), "--prewarm", "python,bash", "--pool-size", "2",
                            "--max-concurrent", "4", "--key-runs", "2", "--key-concurrency", "2",
                            "--queue-depth", "64", "--timeout", "20000")
    yield process
    assert process.stop(timeout=60) == 0


async def call(server, method: str, path: str, body=None, *, key: str | None = MASTER, status: int = 200):
    answer = await raw_request(server.port, method, path, body, key=key)
    assert answer.status == status, (method, path, answer.status, answer.body[:300])
    assert answer.headers[b"content-type"].startswith(b"application/json")
    return answer.json()


# ---------------------------------------------------------------------------------------------------
# The cases


async def test_health(server):
    body = await call(server, "GET", "/health", key=None)
    assert_shape(HEALTH, body)
    assert body["status"] == "ok"


async def test_execute(server):
    # seed 001: execute({code: "print(1)", runtime: "python"}).
    body = await call(server, "POST", "/execute", {"request": {"code": "print(1)", "runtime": "python"}})
    assert_shape(RESULT, body)
    assert (body["stdout"], body["exitCode"], body["runtime"], body["truncated"]) == ("1\n", 0, "python", False)
    assert body["timestamp"].endswith("Z") and len(body["executionId"]) == 36


async def test_execute_with_files_and_the_request_fields_of_seed_001(server):
    request = {"code": "import os, sys\nopen('/sandbox/out.txt', 'w').write(open('in.txt').read() + "
                       "os.environ['GREETING'] + sys.stdin.read())",
               "runtime": "python", "timeoutMs": 10000, "env": {"GREETING": " hi"}, "stdin": "!",
               "files": {"/sandbox/in.txt": "data"}, "outputPaths": ["/sandbox/out.txt"],
               "metadata": {"requestedBy": "compat"}}
    body = await call(server, "POST", "/execute", {"request": request, "options": {"timeoutMs": 15000}})
    assert_shape(RESULT_WITH_FILES, body)
    assert body["files"] == {"/sandbox/out.txt": "ZGF0YSBoaSE="}  # base64 of "data hi!"


async def test_execute_stream_is_sse_of_stream_events(server):
    # seeds 002 and 004: executeStream({code: 'for i in range(5): print(i)', runtime: "python"}).
    answer = await raw_request(server.port, "POST", "/execute/stream",
                               {"request": {"code": "for i in range(5): print(i)", "runtime": "python"}})
    assert answer.status == 200 and answer.headers[b"content-type"] == b"text/event-stream"
    frames = answer.body.split(b"\n\n")
    assert frames[-1] == b"" and all(frame.startswith(b"data: ") for frame in frames[:-1])
    events = [json.loads(frame[len(b"data: "):]) for frame in frames[:-1]]
    for event in events:
        assert_shape(EVENT, event)
    assert "".join(e["data"] for e in events if e["type"] == "stdout") == "0\n1\n2\n3\n4\n"
    assert (events[-1]["type"], events[-1]["data"]) == ("exit", "0")  # the exit code, as a string


async def test_websocket(server):
    # The notes: {"type": "execute", request}, then StreamEvents, then a 1000 "Execution complete" close.
    client, accepted = await WsClient.connect(server.port)
    assert isinstance(accepted, AcceptConnection)
    await client.send({"type": "execute", "request": {"code": "echo ws", "runtime": "bash"}})
    items = await client.run_to_close()
    for event in items[:-1]:
        assert_shape(EVENT, event)
    assert items[-2]["type"] == "exit" and items[-1] == ("close", 1000, "Execution complete")
    client, _ = await WsClient.connect(server.port)
    await client.send({"type": "mystery"})
    assert (await client.receive()) == {"type": "error", "data": "Unknown message type: mystery"}
    await client.send("not json")
    items = await client.run_to_close()
    assert items[0]["type"] == "error" and items[-1][:2] == ("close", 1003)


async def test_a_session_its_files_and_its_listing(server):
    # seed 003's multi-turn state, over the wire: sessionId makes the run persistent.
    first = {"request": {"code": "x = 41", "runtime": "python"}, "sessionId": "my-session"}
    assert_shape(RESULT, await call(server, "POST", "/execute", first))
    upload = {"sessionId": "my-session", "path": "/sandbox/in.txt", "content": "MQ=="}  # "1"
    assert await call(server, "POST", "/file", upload) == OK
    second = {"request": {"code": "print(x + int(open('in.txt').read()))", "runtime": "python"},
              "sessionId": "my-session"}
    assert (await call(server, "POST", "/execute", second))["stdout"] == "42\n"
    content = await call(server, "GET", "/file?sessionId=my-session&path=/sandbox/in.txt")
    assert_shape(CONTENT, content)
    assert content == {"content": "MQ=="}

    listed = await call(server, "GET", "/sessions")
    assert_shape(SESSIONS, listed)
    assert [(s["id"], s["isActive"]) for s in listed["sessions"]] == [("my-session", False)]  # nothing running

    deleted = await call(server, "DELETE", "/session/my-session")
    assert_shape(OK, deleted)
    assert deleted["ok"] is True
    again = await call(server, "DELETE", "/session/my-session")  # unknown now: still ok, as the reference
    assert_shape(OK, again)
    assert again["ok"] is True
    assert await call(server, "GET", "/sessions") == {"sessions": []}


async def test_is_active_while_a_run_executes_in_the_session(server):
    """isActive: true while a run is executing in the session, false once it has finished."""
    client, _ = await WsClient.connect(server.port)
    # It runs until told to stop (a session's Python reads no stdin from the socket: a signal ends it).
    code = "import time\nprint('ready', flush=True)\ntime.sleep(60)"
    await client.send({"type": "execute", "request": {"code": code, "runtime": "python"}, "sessionId": "busy"})
    with trio.fail_after(30):
        while True:
            event = await client.receive()
            if isinstance(event, dict) and event["type"] == "stdout" and "ready" in event["data"]:
                break
    running = await call(server, "GET", "/sessions")
    assert_shape(SESSIONS, running)
    assert [(s["id"], s["isActive"]) for s in running["sessions"]] == [("busy", True)]
    await client.send({"type": "signal", "signal": "SIGINT"})
    items = await client.run_to_close()
    assert items[-1] == ("close", 1000, "Execution complete")
    assert items[-2]["type"] == "exit" and items[-2]["data"] != "0"  # interrupted, not finished by itself
    finished = await call(server, "GET", "/sessions")
    assert [(s["id"], s["isActive"]) for s in finished["sessions"]] == [("busy", False)]
    await call(server, "DELETE", "/session/busy")


async def test_the_reference_error_answers(server):
    cases = [
        ("GET", "/file?sessionId=x", None, MASTER, 400, "Missing sessionId or path"),
        ("GET", "/file?sessionId=nope&path=a.txt", None, MASTER, 404, "Session not found"),
        ("POST", "/file", {"sessionId": "nope", "path": "a.txt", "content": "AA=="}, MASTER, 404, "Session not found"),
        ("POST", "/execute", {"request": {"code": "1"}}, None, 401, "Missing Authorization header"),
        ("POST", "/execute", {"request": {"code": "1"}}, "wrong", 403, "Invalid API key"),
    ]
    for method, path, body, key, status, message in cases:
        answer = await call(server, method, path, body, key=key, status=status)
        assert_shape(ERROR, answer)
        assert answer["error"] == message


async def test_cleanup_without_images(server):
    await call(server, "POST", "/execute", {"request": {"code": "1", "runtime": "python"}, "sessionId": "doomed"})
    held = len((await call(server, "GET", "/sessions"))["sessions"])  # "doomed", and any a failed test left
    body = await call(server, "POST", "/cleanup", {"images": False})
    assert_shape(CLEANUP, body)
    assert body["ok"] is True and body["sessions"] == {"removed": held, "failed": 0, "errors": []}
    assert "images" not in body
    assert await call(server, "GET", "/sessions") == {"sessions": []}


async def test_key_management(server):
    # The reference's key pages: create with a tenant and TTL, list (filtered), log in, revoke.
    created = await call(server, "POST", "/auth/keys", {"name": "ci-runner", "tenantId": "team-infra",
                                                         "ttlMs": 86400000}, status=201)
    assert_shape(KEY_CREATED, created)
    assert created["key"].startswith("isol8_") and created["key"].startswith(created["keyPrefix"])
    await call(server, "GET", "/sessions", key=created["key"])  # so that it has a lastUsedAt

    defaulted = await call(server, "POST", "/auth/keys", {"name": "plain"}, status=201)
    assert_shape(KEY_CREATED, defaulted)
    assert defaulted["tenantId"] == "default"  # and a 24 h lifetime, as the reference

    listed = await call(server, "GET", "/auth/keys?tenantId=team-infra")
    assert_shape(KEYS, listed)
    assert [k["id"] for k in listed["keys"]] == [created["id"]]
    assert created["key"] not in json.dumps(listed)

    login = await call(server, "POST", "/auth/login", {"name": "ci-job-42", "ttlMs": 600000})
    assert_shape(LOGIN, login)
    refused = await call(server, "GET", "/auth/keys", key=login["token"], status=403)
    assert_shape(ERROR, refused)
    assert refused["error"] == "Master key required for this operation"

    for key_id in (created["id"], defaulted["id"], login["keyId"]):
        revoked = await call(server, "DELETE", f"/auth/keys/{key_id}")
        assert_shape(KEY_REVOKED, revoked)
        assert revoked == {"ok": True, "id": key_id}


async def test_a_fan_out_of_fifty_from_one_key_all_run(server):
    """The reference queues requests beyond maxConcurrent and never answers 429: 50 at once from one
    key, against 2 in flight per key and 4 runs at once, all succeed."""
    answers: dict[int, Any] = {}

    async def one(index: int) -> None:
        answers[index] = await raw_request(server.port, "POST", "/execute",
                                           {"request": {"code": f"echo {index}", "runtime": "bash"}})

    with trio.fail_after(180):
        async with trio.open_nursery() as nursery:
            for index in range(50):
                nursery.start_soon(one, index)
    assert sorted(a.status for a in answers.values()) == [200] * 50
    for index, answer in answers.items():
        assert_shape(RESULT, answer.json())
        assert answer.json()["stdout"] == f"{index}\n"
