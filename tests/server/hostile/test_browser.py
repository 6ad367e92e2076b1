"""Requests a web page makes a browser send: cross-origin POSTs and WebSockets (no preflight stops
either), and DNS rebinding (the attacker's name resolving to 127.0.0.1). They matter most with
``--no-auth`` on loopback, where any page the operator visits could otherwise run code."""

from __future__ import annotations

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request as WsRequest

from isol8rt.server.origins import BrowserGuard, origin_key, safe_host, split_host
from isol8rt.server._http_server import HTTPError

from ..conftest import raw_request
from .conftest import connect

RUN = {"request": {"code": "print('ran')"}}


def test_origin_and_host_rules():
    guard = BrowserGuard(["https://app.example"], open_access=False)
    guard.check(None, b"127.0.0.1:3000")  # no Origin: not a browser
    guard.check(b"https://app.example", b"api.example")  # allowed
    guard.check(b"https://APP.example:443", b"api.example")  # the same origin, spelled otherwise
    guard.check(b"http://api.example:3000", b"api.example:3000")  # same origin as the server
    for origin in (b"https://evil.example", b"http://app.example", b"null", b"https://app.example:8443"):
        with pytest.raises(HTTPError) as caught:
            guard.check(origin, b"api.example")
        assert caught.value.status == 403 and "Origin not allowed" in caught.value.message
    guard.check(None, b"rebound.evil.example")  # with a key, any Host: the page has no key to send

    open_guard = BrowserGuard([], open_access=True)
    for host in (b"127.0.0.1:3000", b"localhost:3000", b"[::1]:3000", b"10.1.2.3", b"my.localhost"):
        open_guard.check(None, host)
    with pytest.raises(HTTPError, match="Host not allowed: rebound.evil.example"):
        open_guard.check(None, b"rebound.evil.example:3000")
    # Rebinding is same-origin for the browser: Origin passes, Host does not.
    with pytest.raises(HTTPError, match="Host not allowed"):
        open_guard.check(b"http://rebound.evil.example:3000", b"rebound.evil.example:3000")
    BrowserGuard([], ["api.internal"], open_access=True).check(None, b"API.internal:3000")
    assert split_host("[::1]:80") == ("::1", 80) and split_host("Example.com.") == ("example.com", None)
    assert origin_key("HTTP://Example.com") == "http://example.com:80" and safe_host("::1")


async def test_cross_origin_posts_and_websockets_are_refused(live):
    for path in ("/execute", "/execute/stream"):
        answer = await live.request("POST", path, RUN, headers=[(b"Origin", b"https://evil.example")])
        assert answer.status == 403 and "Origin not allowed: https://evil.example" in answer.json()["error"]
    # Refused before the key is looked at: a page cannot even probe for one.
    probe = await live.request("GET", "/sessions", key=None, headers=[(b"Origin", b"https://evil.example")])
    assert probe.status == 403 and "Origin" in probe.json()["error"]
    stream = await connect(live.port)
    ws = WSConnection(ConnectionType.CLIENT)
    async with stream:
        await stream.send_all(ws.send(WsRequest(host="127.0.0.1", target="/execute/ws",
                                                extra_headers=[(b"Origin", b"https://evil.example")])))
        ws.receive_data(await stream.receive_some(65536))
        [refused, *_] = list(ws.events())
    assert isinstance(refused, RejectConnection) and refused.status_code == 403
    # Health stays open to everyone, and a client that is not a browser is not affected.
    assert (await live.request("GET", "/health", key=None, headers=[(b"Origin", b"https://evil.example")])).status == 200
    assert (await live.request("POST", "/execute", RUN)).json()["stdout"] == "ran\n"


async def test_allowed_origins_may_call(start_server):
    live = await start_server(allowed_origins=["https://console.example"])
    answer = await live.request("POST", "/execute", RUN, headers=[(b"Origin", b"https://console.example")])
    assert answer.status == 200 and answer.json()["stdout"] == "ran\n"


async def test_no_auth_server_refuses_rebound_hosts(start_server):
    live = await start_server(open_access=True)
    rebound = await raw_request(live.port, "POST", "/execute", RUN, key=None,
                                headers=[(b"Host", b"rebound.evil.example:3000")])
    assert rebound.status == 403 and "Host not allowed" in rebound.json()["error"]
    stream = await connect(live.port)
    ws = WSConnection(ConnectionType.CLIENT)
    async with stream:
        await stream.send_all(ws.send(WsRequest(host="rebound.evil.example", target="/execute/ws")))
        ws.receive_data(await stream.receive_some(65536))
        [refused, *_] = list(ws.events())
    assert isinstance(refused, RejectConnection) and refused.status_code == 403
    for host in (b"127.0.0.1:3000", b"localhost:3000"):
        answer = await raw_request(live.port, "POST", "/execute", RUN, key=None, headers=[(b"Host", host)])
        assert answer.status == 200, (host, answer.body)
    stream = await connect(live.port)
    ws = WSConnection(ConnectionType.CLIENT)
    async with stream:
        await stream.send_all(ws.send(WsRequest(host="localhost", target="/execute/ws")))
        ws.receive_data(await stream.receive_some(65536))
        [accepted, *_] = list(ws.events())
    assert isinstance(accepted, AcceptConnection)
