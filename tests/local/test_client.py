"""The CLI's one call to the local engine, against a stand-in engine on a real Unix socket: nothing ran
until the engine began its answer (Refused: the CLI runs cold), a failure after that is the run's."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from isol8rt._version import __version__
from isol8rt.local import client
from isol8rt.local.paths import make_directory
from isol8rt.types import ExecutionRequest, Isol8Options, StreamEvent
from isol8rt.wire import api, errors, sse

def _health(version: str = __version__) -> bytes:
    body = api.encode(api.HealthBody(status="ok", version=version))
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


HEALTH = _health()


def _head(status: int, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class StandIn:
    """Accepts one connection on a private socket and answers its requests from a script: each item is
    the bytes sent once a request's head has arrived (None: say nothing, keep the connection open)."""

    def __init__(self, directory: Path, *answers: bytes | None, close_after: bool = True) -> None:
        make_directory(directory)
        self.path = directory / "engine.sock"
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self.listener.listen(4)
        self.answers = list(answers)
        self.close_after = close_after
        self.requests: list[bytes] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        buffer = b""
        for answer in self.answers:
            while b"\r\n\r\n" not in buffer:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(buffer) < length:
                buffer += conn.recv(65536)
            self.requests.append(head + b"\r\n\r\n" + buffer[:length])
            buffer = buffer[length:]
            if answer is None:
                self.done.wait()
                break
            conn.sendall(answer)
        if self.close_after:
            conn.close()
        self.done.wait()
        conn.close()

    def close(self) -> None:
        self.done.set()
        self.listener.close()
        self.thread.join(5)


REQUEST = ExecutionRequest(code="print(1)", stdin="in")
OPTIONS = Isol8Options(memory_limit="256m")


def _events(*events: StreamEvent) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head + b"".join(_chunk(sse.frame(api.encode(e))) for e in events) + b"0\r\n\r\n"


def test_the_run_streams_and_every_option_is_written(tmp_path):
    engine = StandIn(tmp_path / "d", HEALTH, _events(StreamEvent("stdout", "1\n"), StreamEvent("exit", "3")))
    try:
        events = list(client.stream(engine.path, REQUEST, OPTIONS))
    finally:
        engine.close()
    assert [(e.type, e.data) for e in events] == [("stdout", "1\n"), ("exit", "3")]
    assert engine.requests[0].startswith(b"GET /health ")
    sent = api.decode_execute(engine.requests[1].partition(b"\r\n\r\n")[2])
    assert sent.request == REQUEST
    # Defaults too: a field left out would be the engine's value, not this one.
    assert sent.options["memoryLimit"] == "256m" and sent.options["security"]["seccomp"] == "strict"
    assert "maxFileBytes" not in sent.options


def test_a_whole_result(tmp_path):
    result = b'{"stdout":"1\\n","stderr":"","exitCode":0,"durationMs":5,"truncated":false,"executionId":"x",' \
             b'"runtime":"python","timestamp":"t"}'
    engine = StandIn(tmp_path / "d", HEALTH, _head(200, result))
    try:
        done = client.execute(engine.path, REQUEST, OPTIONS)
    finally:
        engine.close()
    assert (done.stdout, done.exit_code) == ("1\n", 0)


def test_no_socket_and_a_dead_engines_socket_are_refused_at_once(tmp_path):
    with pytest.raises(client.NoEngine, match="no engine"):
        client.health(tmp_path / "engine.sock")
    make_directory(tmp_path / "d")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "d" / "engine.sock"))
    os.chmod(tmp_path / "d" / "engine.sock", 0o600)
    stale.close()
    with pytest.raises(client.NoEngine, match="does not answer"):
        client.stream(tmp_path / "d" / "engine.sock", REQUEST, OPTIONS)


def test_an_engine_that_does_not_answer_is_refused_after_the_health_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(client, "HEALTH_TIMEOUT_S", 0.2)
    engine = StandIn(tmp_path / "d", None)
    try:
        with pytest.raises(client.Refused, match="does not answer"):
            client.stream(engine.path, REQUEST, OPTIONS)
    finally:
        engine.close()


@pytest.mark.parametrize(("status", "kind"), [(403, errors.OPTION_NOT_ALLOWED), (429, errors.RATE_LIMITED),
                                              (503, errors.SHUTTING_DOWN), (400, errors.INVALID_REQUEST)])
def test_a_refusal_is_refused_with_its_reason(tmp_path, status, kind):
    engine = StandIn(tmp_path / "d", HEALTH, _head(status, errors.encode_error(kind, "Option not allowed: image")))
    try:
        with pytest.raises(client.Refused, match=f"refused the run \\({status}\\): Option not allowed: image"):
            client.stream(engine.path, REQUEST, OPTIONS)
    finally:
        engine.close()


def test_an_engine_lost_mid_run_is_the_runs_failure_not_a_refusal(tmp_path):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    engine = StandIn(tmp_path / "d", HEALTH, head + _chunk(sse.frame(api.encode(StreamEvent("stdout", "a")))))
    try:
        events = client.stream(engine.path, REQUEST, OPTIONS)
        assert next(events).data == "a"
        with pytest.raises(client.EngineLost, match="stopped answering"):
            next(events)
    finally:
        engine.close()


def test_a_whole_result_lost_is_not_refused_since_the_run_may_have_happened(tmp_path):
    engine = StandIn(tmp_path / "d", HEALTH, b"")
    try:
        with pytest.raises(client.EngineLost):
            client.execute(engine.path, REQUEST, OPTIONS)
    finally:
        engine.close()


def test_an_engine_of_another_release_is_refused(tmp_path):
    """It may know other options, or the same ones by other rules: the run goes cold until it is restarted."""
    engine = StandIn(tmp_path / "d", _health("0.0.1"))
    try:
        with pytest.raises(client.Refused, match=f"is isol8rt 0.0.1, this is {__version__}: restart it"):
            client.stream(engine.path, REQUEST, OPTIONS)
    finally:
        engine.close()
