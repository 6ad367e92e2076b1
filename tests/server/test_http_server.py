"""The sans-io layers on their own (bytes in, events out) and `isol8rt serve`'s argument handling."""

from __future__ import annotations

import subprocess
import sys

import pytest

from isol8rt.cli.serve import resolve_port
from isol8rt.server import _http_server as _http
from isol8rt.wire import sse as _sse, websocket as _websocket


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
    assert caught.value.status == 431
    garbage = _http.ServerConnection(max_body=10)
    garbage.receive_data(b"\x16\x03\x01 tls hello\r\n\r\n")
    with pytest.raises(_http.ProtocolError) as caught:
        garbage.next_head()
    assert caught.value.status == 400


def test_sse_frames_round_trip_through_the_parser():
    parser = _sse.EventParser()
    stream = _sse.frame(b'{"a":1}') + b": comment\n\n" + _sse.frame(b'{"b":2}') + b"data: x\ndata: y\n\n"
    events = []
    for i in range(0, len(stream), 3):
        events += parser.feed(stream[i:i + 3])
    assert events == [b'{"a":1}', b'{"b":2}', b"x\ny"]


def test_websocket_accept_token_is_the_rfc_example():
    # RFC 6455, section 1.3.
    assert _websocket.accept_token(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert _websocket.handshake_error([(b"connection", b"keep-alive, Upgrade"), (b"sec-websocket-version", b"13"),
                                       (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ==")]) is None
    assert "Version" in _websocket.handshake_error([(b"connection", b"upgrade")])


def test_websocket_messages_fragments_pings_and_size_cap():
    client = _websocket.MessageConnection(client=True)
    server = _websocket.MessageConnection(client=False, max_message=8)
    server.receive_data(client.send_text("hi"))
    assert server.events() == [_websocket.Message("hi")]
    server.receive_data(client.send_text("far too long"))
    with pytest.raises(_websocket.MessageTooBig):
        server.events()
    server = _websocket.MessageConnection(client=False)
    server.receive_data(client.close(1000, "bye"))
    [closed] = server.events()
    assert (closed.code, closed.reason) == (1000, "bye") and closed.reply


def test_port_precedence():
    assert resolve_port(8080, {"ISOL8_PORT": "1", "PORT": "2"}) == 8080
    assert resolve_port(None, {"ISOL8_PORT": "1", "PORT": "2"}) == 1
    assert resolve_port(None, {"PORT": "2"}) == 2
    assert resolve_port(None, {}) == 3000


def test_serve_refuses_to_start_without_a_key(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "isol8rt", "serve", "--port", "0"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "isol8rt: serve needs an API key: pass --key or set ISOL8_API_KEY (or --no-auth, for a trusted loopback only)"]
