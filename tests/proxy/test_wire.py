"""stdin/stdout lines and relayed headers, sans-io."""

from __future__ import annotations

import json

import msgspec
import pytest

from isol8rt.agent.proxy_protocol import LineSplitter, ResetConnections, SetPolicy, control_decoder, encoder
from isol8rt_proxy import headers
from isol8rt_proxy.exchange import Exchange, text

HOSTILE_PATH = b'/a"b\\c\nd\re\x00f\x1b[31m\xff\xfe\xc3\xa9\xed\xa0\x80'


def test_request_log_escapes_everything():
    exchange = Exchange("run-1", b"GET")
    exchange.host, exchange.port, exchange.path = "example.com", 80, text(HOSTILE_PATH)
    exchange.add_in(10)
    exchange.add_out(3)
    exchange.status = 200
    line = encoder.encode(exchange.log())
    assert b"\n" not in line and b"\x00" not in line and b"\r" not in line
    record = json.loads(line)
    # Valid UTF-8 survives as text, each invalid byte (a lone surrogate's encoding too) as \xNN.
    assert record["path"] == '/a"b\\c\nd\re\x00f\x1b[31m\\xff\\xfeé\\xed\\xa0\\x80'
    assert record["type"] == "request"
    assert record["run"] == "run-1"
    assert (record["method"], record["host"], record["port"]) == ("GET", "example.com", 80)
    assert (record["action"], record["status"], record["bytes_in"], record["bytes_out"]) == ("ALLOW", 200, 10, 3)
    assert "reason" not in record and "error" not in record
    assert record["timestamp"].endswith("Z") and record["timestamp"][10] == "T"
    assert record["duration_ms"] >= 0


def test_blocked_log_has_reason_and_no_path_for_connect():
    exchange = Exchange(None, b"CONNECT")
    exchange.host, exchange.port = "evil.test", 443
    exchange.block(403, "blocked by deny list")
    record = json.loads(encoder.encode(exchange.log()))
    assert record["action"] == "BLOCK" and record["reason"] == "blocked by deny list" and record["status"] == 403
    assert "path" not in record
    assert record["run"] is None


def test_control_messages():
    policy = control_decoder.decode(b'{"type": "policy", "run": "r", "allow": ["a"], "allow_private": ["10.0.0.0/8"]}')
    assert policy == SetPolicy(run="r", allow=["a"], deny=[], allow_private=["10.0.0.0/8"], connect_ports=[443, 80])
    assert control_decoder.decode(b'{"type": "reset"}') == ResetConnections()
    for bad in (b'{"type": "policy", "alow": []}', b'{"type": "nope"}', b'{"type": "policy", "deny": "x"}', b"{"):
        with pytest.raises(msgspec.DecodeError):
            control_decoder.decode(bad)


def test_line_splitter():
    lines = LineSplitter(limit=10)
    assert lines.feed(b"ab") == []
    assert lines.feed(b"c\nde\n\nf") == [b"abc", b"de", b""]
    assert lines.feed(b"g\n") == [b"fg"]
    # An over-long line is reported once, as None, and dropped whole, however it arrives.
    assert lines.feed(b"x" * 11) == [None]
    assert lines.feed(b"x" * 30) == []
    assert lines.feed(b"x\nok\n") == [b"ok"]
    assert lines.feed(b"y" * 12 + b"\nok\n") == [None, b"ok"]


def test_request_headers_drop_hop_by_hop():
    raw = [
        (b"Host", b"wrong.example"),
        (b"Connection", b"keep-alive, X-Secret"),
        (b"Proxy-Connection", b"keep-alive"),
        (b"Proxy-Authorization", b"Basic Zm9v"),
        (b"X-Secret", b"1"),
        (b"Keep-Alive", b"timeout=5"),
        (b"TE", b"trailers"),
        (b"Upgrade", b"websocket"),
        (b"Accept", b"*/*"),
        (b"Content-Length", b"3"),
    ]
    assert headers.request_headers(raw, b"example.com:8080") == [
        (b"Host", b"example.com:8080"),
        (b"Accept", b"*/*"),
        (b"Content-Length", b"3"),
    ]


def test_content_length_dropped_beside_transfer_encoding():
    raw = [(b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked"), (b"Accept", b"*/*")]
    assert headers.request_headers(raw, b"h") == [
        (b"Host", b"h"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Accept", b"*/*"),
    ]
    assert headers.response_headers(raw) == [(b"Transfer-Encoding", b"chunked"), (b"Accept", b"*/*")]


def test_response_headers_keep_framing():
    raw = [(b"Transfer-Encoding", b"chunked"), (b"Connection", b"close"), (b"Set-Cookie", b"a=b")]
    assert headers.response_headers(raw) == [(b"Transfer-Encoding", b"chunked"), (b"Set-Cookie", b"a=b")]


def test_refusal():
    assert headers.refusal(403, "port 22 not allowed") == (
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n"
        b"Connection: close\r\n\r\nport 22 not allowed\n"
    )
