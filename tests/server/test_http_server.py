"""The server's side of HTTP, sans-io: request bytes in (cut anywhere), heads and capped bodies out, answers
as bytes."""

from __future__ import annotations

import pytest

from isol8rt.server import _http_server as _http


def test_requests_split_anywhere_and_bodies_are_capped():
    conn = _http.ServerConnection(max_body=10)
    raw = b"POST /file?sessionId=a%20b&path=x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    head_end = raw.index(b"\r\n\r\n") + 4
    for byte in raw[:head_end - 1]:
        conn.receive_data(bytes([byte]))
        assert conn.next_head() is _http.NEED_DATA
    conn.receive_data(raw[head_end - 1:head_end])
    head = conn.next_head()
    assert (head.method, head.path, head.query, head.body) == ("POST", "/file", {"sessionId": "a b", "path": "x"}, b"")
    assert head.header(b"host") == b"h" and conn.body_unread
    for byte in raw[head_end:-1]:
        conn.receive_data(bytes([byte]))
        assert conn.next_body() is _http.NEED_DATA
    conn.receive_data(raw[-1:])
    assert conn.next_body() == b"hello" and not conn.body_unread

    big = _http.ServerConnection(max_body=10)
    big.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n")
    with pytest.raises(_http.ProtocolError) as caught:
        big.next_head()  # refused by its declared length: nothing of the body is read
    assert caught.value.status == 413

    chunked = _http.ServerConnection(max_body=10)
    chunked.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"8\r\n12345678\r\n8\r\n12345678\r\n")
    assert isinstance(chunked.next_head(), _http.Request)
    with pytest.raises(_http.ProtocolError) as caught:
        chunked.next_body()
    assert caught.value.status == 413


def test_100_continue_only_when_the_server_asks_for_the_body():
    """A client that waits for 100 Continue gets it only once the server decided to hear the request
    (after the key is checked), and a request answered from its head leaves the body unread."""
    conn = _http.ServerConnection(max_body=1 << 20)
    conn.receive_data(b"POST /execute HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n"
                      b"Expect: 100-continue\r\n\r\n")
    assert isinstance(conn.next_head(), _http.Request)
    assert conn.next_body() is _http.NEED_DATA
    assert conn.take_continue().startswith(b"HTTP/1.1 100")
    assert conn.take_continue() == b""  # once

    refused = _http.ServerConnection(max_body=1 << 20)
    refused.receive_data(b"POST /execute HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n"
                         b"Expect: 100-continue\r\n\r\n")
    refused.next_head()
    answer = refused.response(401, b"{}", close=refused.body_unread)
    assert answer.startswith(b"HTTP/1.1 401") and b"connection: close" in answer.lower()
    assert refused.body_unread and not refused.start_next_cycle()


def test_an_answer_in_pieces_has_its_length_up_front():
    conn = _http.ServerConnection(max_body=10)
    conn.receive_data(b"GET /file HTTP/1.1\r\nHost: h\r\n\r\n")
    conn.next_head()
    assert conn.next_body() == b""
    data = conn.start_body(200, _http.JSON, 6) + conn.chunk(b"abc") + conn.chunk(b"def") + conn.end_stream()
    assert b"Content-Length: 6\r\n" in data and data.endswith(b"\r\n\r\nabcdef")
    assert conn.start_next_cycle()


def test_oversized_heads_are_431_and_garbage_400():
    conn = _http.ServerConnection(max_body=10)
    conn.receive_data(b"GET / HTTP/1.1\r\nX: " + b"a" * (_http.MAX_HEAD + 10))
    with pytest.raises(_http.ProtocolError) as caught:
        conn.next_head()
    assert (caught.value.status, caught.value.kind) == (431, "too_large")
    garbage = _http.ServerConnection(max_body=10)
    garbage.receive_data(b"\x16\x03\x01 tls hello\r\n\r\n")
    with pytest.raises(_http.ProtocolError) as caught:
        garbage.next_head()
    assert (caught.value.status, caught.value.kind) == (400, "invalid_request")
