"""Request-target parsing, sans-io: strict, because the hostname decides the policy."""

from __future__ import annotations

import pytest

from isol8rt_proxy.target import BadRequest, Target, parse_absolute, parse_connect


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"http://Example.COM/a/b?c=d", Target("example.com", 80, b"/a/b?c=d", b"Example.COM")),
        (b"http://example.com", Target("example.com", 80, b"/", b"example.com")),
        (b"http://example.com?q", Target("example.com", 80, b"/?q", b"example.com")),
        (b"http://example.com:8080/x#frag", Target("example.com", 8080, b"/x", b"example.com:8080")),
        (b"HTTP://example.com./", Target("example.com", 80, b"/", b"example.com.")),
        (b"http://127.0.0.1:9/", Target("127.0.0.1", 9, b"/", b"127.0.0.1:9")),
        (b"http://[::1]:8080/", Target("::1", 8080, b"/", b"[::1]:8080")),
        (b"http://[0:0::1]/", Target("::1", 80, b"/", b"[0:0::1]")),
        (b'http://h/q"u\\o', Target("h", 80, b'/q"u\\o', b"h")),
    ],
)
def test_absolute(raw, expected):
    assert parse_absolute(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"example.com:443", Target("example.com", 443, b"", b"example.com:443")),
        (b"EXAMPLE.com.:443", Target("example.com", 443, b"", b"EXAMPLE.com.:443")),
        (b"[2606:4700::1]:443", Target("2606:4700::1", 443, b"", b"[2606:4700::1]:443")),
        (b"10.0.0.1:22", Target("10.0.0.1", 22, b"", b"10.0.0.1:22")),
    ],
)
def test_connect(raw, expected):
    assert parse_connect(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"/relative", "absolute URL required"),
        (b"*", "absolute URL required"),
        (b"https://example.com/", "use CONNECT"),
        (b"ftp://example.com/", "only http://"),
        (b"http://allowed.com@evil.com/", "credentials"),
        (b"http://user:pw@evil.com/", "credentials"),
        (b"http://ex%61mple.com/", "bad host"),
        (b"http://a..b/", "bad host"),
        (b"http:///path", "bad host"),
        (b"http://caf\xc3\xa9.com/", "non-ASCII"),
        (b"http://[::1/", "bad host"),
        (b"http://[fe80::1%25eth0]/", "bad host"),
        (b"http://[::1]x/", "bad host"),
        (b"http://[nope]/", "bad host"),
        (b"http://example.com:0/", "bad port"),
        (b"http://example.com:65536/", "bad port"),
        (b"http://example.com:/", "bad port"),
        (b"http://example.com:+80/", "bad port"),
        (b"http://" + b"a" * 254 + b"/", "bad host"),
    ],
)
def test_bad_absolute(raw, message):
    with pytest.raises(BadRequest, match=message):
        parse_absolute(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"example.com", "host:port"),
        (b"::1:443", "bad host"),
        (b"example.com:ssh", "bad port"),
        (b"a:b:443", "bad host"),
    ],
)
def test_bad_connect(raw, message):
    with pytest.raises(BadRequest, match=message):
        parse_connect(raw)
