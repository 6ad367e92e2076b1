"""The local engine client's HTTP: heads, lengths, chunks, split anywhere; anything else refused."""

from __future__ import annotations

import pytest

from isol8rt.local.http import Connection, ProtocolError


class Trickle:
    """A socket whose peer's answer arrives a few bytes at a time (every split point gets exercised)."""

    def __init__(self, answer: bytes, step: int = 1) -> None:
        self.answer, self.step, self.sent = answer, step, b""

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def recv(self, size: int) -> bytes:
        piece, self.answer = self.answer[:self.step], self.answer[self.step:]
        return piece


def _exchange(answer: bytes, step: int = 1) -> tuple[int, dict, bytes, Connection]:
    connection = Connection(Trickle(answer, step))  # type: ignore[arg-type]
    connection.send("POST", "/execute/stream", b'{"a":1}')
    status, headers = connection.head()
    return status, headers, b"".join(connection.body(headers)), connection


@pytest.mark.parametrize("step", [1, 3, 1000])
def test_a_chunked_answer_with_extensions_and_trailers(step):
    answer = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A:  b \r\n\r\n"
              b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n")
    status, headers, body, connection = _exchange(answer, step)
    assert (status, headers["x-a"], body, connection.reusable) == (200, "b", b"hello world", True)


def test_the_request_it_sends():
    connection = Connection(Trickle(b""))  # type: ignore[arg-type]
    connection.send("POST", "/execute", b"{}")
    assert connection.sock.sent == (b"POST /execute HTTP/1.1\r\nHost: localhost\r\nUser-Agent: isol8rt\r\n"
                                    b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")


def test_a_length_and_an_empty_body_and_connection_close():
    status, _, body, connection = _exchange(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nabc", 2)
    assert (status, body) == (403, b"abc")
    status, _, body, connection = _exchange(b"HTTP/1.1 204 X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert (status, body, connection.reusable) == (204, b"", False)


@pytest.mark.parametrize(("answer", "problem"), [
    (b"", "hung up"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "hung up"),
    (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.1 answer"),
    (b"HTTP/1.1 2xx OK\r\n\r\n", "not an HTTP/1.1 answer"),
    (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "a malformed header"),
    (b"HTTP/1.1 200 OK\r\n\r\nuntil close", "neither a length nor chunks"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "a malformed chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", "does not end with CRLF"),
    (b"HTTP/1.1 200 OK\r\n" + b"X: " + b"y" * 70000, "too long"),
])
def test_what_it_does_not_read_is_a_protocol_error(answer, problem):
    with pytest.raises(ProtocolError, match=problem):
        _exchange(answer, 4096)
