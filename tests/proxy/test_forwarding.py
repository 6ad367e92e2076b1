"""Plain HTTP and CONNECT through a real proxy process, to local origins, and what the log says."""

from __future__ import annotations

import json

import h11
import trio

from proxy_support import exchange, open_tunnel, receive_exactly, receive_until_eof, request, running_proxy


def local(*ports: int) -> list[str]:
    """Arguments that let the proxy reach origins on these ports of 127.0.0.1."""
    return ["--allow-private", "127.0.0.1/32", *(f"--connect-port={port}" for port in ports)]


async def test_get(origin):
    async with running_proxy(*local(origin.port)) as proxy:
        reply = await request(proxy.port, "GET", f"http://127.0.0.1:{origin.port}/hello?x=1",
                              headers=[("Proxy-Connection", "keep-alive"), ("X-Test", "yes")])  # fmt: skip
        assert reply.status == 200
        echo = reply.json()
        assert (echo["method"], echo["target"]) == ("GET", "/hello?x=1")
        sent = {name.lower(): value for name, value in echo["headers"]}
        assert sent["host"] == f"127.0.0.1:{origin.port}"
        assert sent["x-test"] == "yes"
        assert "proxy-connection" not in sent and "connection" not in sent

        log = await proxy.expect("request")
        assert log["method"] == "GET" and log["host"] == "127.0.0.1" and log["port"] == origin.port
        assert log["path"] == "/hello?x=1"
        assert log["action"] == "ALLOW" and log["status"] == 200 and "reason" not in log
        assert (log["bytes_in"], log["bytes_out"]) == (len(reply.body), 0)
        assert log["duration_ms"] > 0 and log["run"] is None


async def test_post_with_body_and_chunked_upload(origin):
    body = bytes(range(256)) * 400
    async with running_proxy(*local(origin.port), "--run", "r7") as proxy:
        url = f"http://127.0.0.1:{origin.port}/upload"
        reply = await request(proxy.port, "POST", url, body=body)
        assert reply.status == 200 and reply.json()["body_length"] == len(body)
        log = await proxy.expect("request")
        assert (log["method"], log["bytes_out"], log["bytes_in"], log["run"]) == (
            "POST",
            len(body),
            len(reply.body),
            "r7",
        )

        reply = await request(proxy.port, "PUT", url, body=body, chunked=True)
        assert reply.status == 200 and reply.json()["body_length"] == len(body)
        assert (await proxy.expect("request"))["bytes_out"] == len(body)


async def test_streamed_and_chunked_responses_and_keep_alive(origin):
    async with running_proxy(*local(origin.port)) as proxy:
        base = f"http://127.0.0.1:{origin.port}"
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            conn = h11.Connection(h11.CLIENT)
            with trio.fail_after(10):
                big = await exchange(conn, stream, "GET", f"{base}/size/5000000")
                assert big.status == 200 and big.body == b"x" * 5_000_000
                conn.start_next_cycle()
                chunked = await exchange(conn, stream, "GET", f"{base}/chunked")
                assert chunked.body == b"one,two,three"
                assert chunked.headers.get("transfer-encoding") == "chunked"
                conn.start_next_cycle()
                head = await exchange(conn, stream, "HEAD", f"{base}/size/100")
                assert head.headers["content-length"] == "100" and head.body == b""
        logs = [await proxy.expect("request") for _ in range(3)]
        assert [(log["method"], log["path"], log["bytes_in"]) for log in logs] == [
            ("GET", "/size/5000000", 5_000_000),
            ("GET", "/chunked", 13),
            ("HEAD", "/size/100", 0),
        ]


async def test_log_stays_json_with_quotes_and_backslashes_in_the_path(origin):
    async with running_proxy(*local(origin.port)) as proxy:
        path = '/q"uo\\te/"\\"?x="y\\"'
        reply = await request(proxy.port, "GET", f"http://127.0.0.1:{origin.port}{path}")
        assert reply.json()["target"] == path
        log = await proxy.expect("request")  # parsed with json.loads
        assert log["path"] == path


async def test_origin_that_closes_without_answering_is_502(origin):
    async with running_proxy(*local(origin.port)) as proxy:
        reply = await request(proxy.port, "GET", f"http://127.0.0.1:{origin.port}/close")
        assert reply.status == 502
        log = await proxy.expect("request")
        assert log["action"] == "ALLOW" and log["status"] == 502 and "origin closed" in log["error"]


async def test_refused_connection_is_502():
    with trio.socket.socket() as unused:
        await unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, not listening: connections are refused
        async with running_proxy(*local(port)) as proxy:
            reply = await request(proxy.port, "GET", f"http://127.0.0.1:{port}/")
            assert reply.status == 502 and reply.body.startswith(b"connect failed")
            log = await proxy.expect("request")
            assert (log["action"], log["status"]) == ("ALLOW", 502) and log["error"].startswith("connect failed")


async def test_bad_requests_are_400():
    async with running_proxy() as proxy:
        reply = await request(proxy.port, "GET", "http://user@example.com/")
        assert reply.status == 400 and b"credentials" in reply.body
        log = await proxy.expect("request")
        assert (log["action"], log["status"]) == ("BLOCK", 400) and log["reason"].startswith("bad request")

        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            await stream.send_all(b"GET /not-absolute HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await receive_until_eof(stream)).startswith(b"HTTP/1.1 400 ")
        assert (await proxy.expect("request"))["reason"] == "bad request: absolute URL required"

        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            await stream.send_all(b"\x16\x03\x01 this is not http\r\n\r\n")
            assert (await receive_until_eof(stream)).startswith(b"HTTP/1.1 400 ")
        log = await proxy.expect("request")
        assert (log["method"], log["host"], log["status"]) == (None, None, 400)


async def test_connect_tls(tls_port, client_tls):
    async with running_proxy(*local(tls_port)) as proxy:
        with trio.fail_after(10):
            status, stream, head = await open_tunnel(proxy.port, f"127.0.0.1:{tls_port}")
            assert status == 200 and head == b"HTTP/1.1 200 Connection established\r\n\r\n"
            tls = trio.SSLStream(stream, client_tls, server_hostname="localhost")
            await tls.send_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            response = await receive_until_eof(tls)
            assert response.startswith(b"HTTP/1.1 200 OK") and response.endswith(b"secure")
            await trio.aclose_forcefully(tls)
        log = await proxy.expect("request")
        assert (log["method"], log["host"], log["port"], log["action"], log["status"]) == (
            "CONNECT", "127.0.0.1", tls_port, "ALLOW", 200)  # fmt: skip
        assert "path" not in log
        assert log["bytes_in"] > 100 and log["bytes_out"] > 100  # a TLS handshake went through


async def test_connect_byte_counts_and_half_close(echo_port):
    async with running_proxy(*local(echo_port)) as proxy:
        with trio.fail_after(10):
            status, stream, _ = await open_tunnel(proxy.port, f"127.0.0.1:{echo_port}")
            assert status == 200
            async with stream:
                payload = bytes(range(256)) * 1000
                await stream.send_all(payload[:1000])
                assert await receive_exactly(stream, 1000) == payload[:1000]
                await stream.send_all(payload[1000:])
                await stream.send_eof()  # the echo origin sees EOF and half-closes back
                assert await receive_until_eof(stream) == payload[1000:]
        log = await proxy.expect("request")
        assert (log["method"], log["status"], log["bytes_in"], log["bytes_out"]) == ("CONNECT", 200, 256000, 256000)


async def test_connect_sent_with_early_data(echo_port):
    # A client may send its first bytes right behind the CONNECT head, in the same segment.
    async with running_proxy(*local(echo_port)) as proxy:
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            head = f"CONNECT 127.0.0.1:{echo_port} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            await stream.send_all(head + b"early")
            established = b"HTTP/1.1 200 Connection established\r\n\r\n"
            with trio.fail_after(10):
                assert await receive_exactly(stream, len(established) + 5) == established + b"early"
        assert (await proxy.expect("request"))["bytes_out"] == 5


async def test_origin_connection_reused_for_replayable_requests(origin):
    async with running_proxy(*local(origin.port)) as proxy:
        base = f"http://127.0.0.1:{origin.port}"
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            conn = h11.Connection(h11.CLIENT)

            async def send(method, path, **kwargs):
                reply = await exchange(conn, stream, method, base + path, **kwargs)
                conn.start_next_cycle()
                return reply

            with trio.fail_after(10):
                first = (await send("GET", "/a")).json()["connection"]
                assert (await send("GET", "/b")).json()["connection"] == first  # reused
                # A request with a body is not sent on a reused connection (it could not be resent).
                posted = (await send("POST", "/c", body=b"data")).json()["connection"]
                assert posted != first
                # The origin drops a reused connection on receipt of the request: sent again on a new one.
                dropped = await send("GET", "/drop-reused")
                assert dropped.status == 200 and dropped.json()["connection"] not in (first, posted)
                # ...and that new connection, which ended cleanly, is the one kept.
                assert (await send("GET", "/d")).json()["connection"] == dropped.json()["connection"]
        logs = [await proxy.expect("request") for _ in range(5)]
        assert [(log["path"], log["status"], log.get("error")) for log in logs] == [
            (path, 200, None) for path in ("/a", "/b", "/c", "/drop-reused", "/d")
        ]


async def test_kept_origin_connection_obeys_a_policy_change(origin):
    async with running_proxy(*local(origin.port)) as proxy:
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            conn = h11.Connection(h11.CLIENT)
            with trio.fail_after(10):
                reply = await exchange(conn, stream, "GET", f"http://127.0.0.1:{origin.port}/")
                assert reply.status == 200
                await proxy.expect("request")
                # 127.0.0.1 is no longer allowed: the kept connection to it must not serve the next request.
                answer = await proxy.set_policy(run="strict", connect_ports=[origin.port])
                assert answer["type"] == "policy_ok"
                conn.start_next_cycle()
                reply = await exchange(conn, stream, "GET", f"http://127.0.0.1:{origin.port}/")
                assert reply.status == 403
        log = await proxy.expect("request")
        assert log["reason"] == "private address 127.0.0.1 not allowed (loopback)" and log["run"] == "strict"


async def test_expect_100_continue(origin):
    async with running_proxy(*local(origin.port)) as proxy:
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            conn = h11.Connection(h11.CLIENT)
            url = f"http://127.0.0.1:{origin.port}/upload"
            headers = [("Host", "x"), ("Expect", "100-continue"), ("Content-Length", "5")]
            await stream.send_all(conn.send(h11.Request(method="PUT", target=url, headers=headers)))
            with trio.fail_after(10):
                # The body is held back until the origin's 100 Continue has come through the proxy.
                while (event := conn.next_event()) is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                assert isinstance(event, h11.InformationalResponse) and event.status_code == 100
                await stream.send_all(conn.send(h11.Data(data=b"hello")) + conn.send(h11.EndOfMessage()))
                reply = await next_response(conn, stream)
        assert reply.status_code == 200
        assert (await proxy.expect("request"))["bytes_out"] == 5


async def next_response(conn: h11.Connection, stream: trio.SocketStream) -> h11.Response:
    """The next final response head (interim ones skipped)."""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Response):
            return event


async def test_pipelined_requests_and_http_1_0(origin):
    async with running_proxy(*local(origin.port)) as proxy:
        base = f"http://127.0.0.1:{origin.port}"
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            # Two requests in one write; the second asks to close, so the answers end with EOF.
            await stream.send_all(
                f"GET {base}/size/3 HTTP/1.1\r\nHost: x\r\n\r\n"
                f"GET {base}/size/4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
            )
            with trio.fail_after(10):
                received = await receive_until_eof(stream)
        first, second = received.split(b"HTTP/1.1 200 ")[1:]
        assert first.endswith(b"\r\n\r\nxxx") and second.endswith(b"\r\n\r\nxxxx")

        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            await stream.send_all(f"GET {base}/chunked HTTP/1.0\r\n\r\n".encode())
            with trio.fail_after(10):
                received = await receive_until_eof(stream)
        # An HTTP/1.0 client cannot read chunked: the body is sent plain and ends with the connection.
        assert received.startswith(b"HTTP/1.1 200 ") and received.endswith(b"\r\n\r\none,two,three")
        assert b"transfer-encoding" not in received.lower()
        paths = [(await proxy.expect("request"))["path"] for _ in range(3)]
        assert paths == ["/size/3", "/size/4", "/chunked"]


async def test_no_smuggling_with_both_framing_headers(origin):
    async with running_proxy(*local(origin.port)) as proxy:
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            await stream.send_all(
                f"POST http://127.0.0.1:{origin.port}/ HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n".encode()
            )
            with trio.fail_after(10):
                received = await receive_until_eof(stream)
        echo = json.loads(received.partition(b"\r\n\r\n")[2])
        sent = {name.lower() for name, _ in echo["headers"]}
        assert echo["body_length"] == 3 and "content-length" not in sent and "transfer-encoding" in sent
        assert (await proxy.expect("request"))["bytes_out"] == 3
