"""The control channel: policy changes and resets without a restart, answered on stdout."""

from __future__ import annotations

import os
import signal

import h11
import trio

from proxy_support import exchange, open_tunnel, receive_exactly, receive_until_eof, request, running_proxy


def local_policy(run: str, *ports: int, **fields) -> dict:
    return {"run": run, "allow_private": ["127.0.0.1/32"], "connect_ports": list(ports), **fields}


async def test_policy_change_applies_to_the_next_request(origin):
    async with running_proxy() as proxy:
        url = f"http://127.0.0.1:{origin.port}/"
        assert (await request(proxy.port, "GET", url)).status == 403  # port and address both refused
        assert (await proxy.expect("request"))["reason"] == f"port {origin.port} not allowed"

        assert await proxy.set_policy(**local_policy("run-1", origin.port)) == {"type": "policy_ok", "run": "run-1"}
        assert (await request(proxy.port, "GET", url)).status == 200
        log = await proxy.expect("request")
        assert (log["action"], log["run"]) == ("ALLOW", "run-1")

        answer = await proxy.set_policy(**local_policy("run-2", origin.port, deny=[r"^127\.0\.0\.1$"]))
        assert answer == {"type": "policy_ok", "run": "run-2"}
        reply = await request(proxy.port, "GET", url)
        assert (reply.status, reply.body) == (403, b"blocked by deny list\n")
        log = await proxy.expect("request")
        assert (log["action"], log["reason"], log["run"]) == ("BLOCK", "blocked by deny list", "run-2")


async def test_invalid_policy_is_refused_and_the_old_one_stays(origin):
    async with running_proxy() as proxy:
        await proxy.set_policy(**local_policy("good", origin.port))
        answer = await proxy.set_policy(**local_policy("bad", origin.port, deny=["(unclosed"]))
        assert answer["type"] == "error" and answer["run"] == "bad"
        assert answer["message"].startswith("invalid regex '(unclosed'")
        answer = await proxy.set_policy(**local_policy("bad-cidr", origin.port, allow_private=["127.0.0.1/99"]))
        assert answer["type"] == "error" and "invalid CIDR" in answer["message"]
        await proxy.send({"type": "policy", "run": "typo", "alow": ["x"]})
        assert "unknown field" in (await proxy.expect("error"))["message"]
        await proxy.process.stdin.send_all(b"not json\n")
        assert (await proxy.expect("error"))["message"].startswith("bad control line")

        assert (await request(proxy.port, "GET", f"http://127.0.0.1:{origin.port}/")).status == 200
        assert (await proxy.expect("request"))["run"] == "good"


async def test_reset_closes_open_tunnels_and_connections(echo_port, origin):
    args = ["--allow-private", "127.0.0.1/32", "--connect-port", str(echo_port), "--connect-port", str(origin.port)]
    async with running_proxy(*args) as proxy:
        with trio.fail_after(10):
            status, tunnel, _ = await open_tunnel(proxy.port, f"127.0.0.1:{echo_port}")
            assert status == 200
            await tunnel.send_all(b"hello")
            assert await receive_exactly(tunnel, 5) == b"hello"
            # A kept-alive connection between requests is closed too.
            kept = await trio.open_tcp_stream("127.0.0.1", proxy.port)
            reply = await exchange(h11.Connection(h11.CLIENT), kept, "GET", f"http://127.0.0.1:{origin.port}/")
            assert reply.status == 200 and "close" not in reply.headers.get("connection", "")
            assert (await proxy.expect("request"))["method"] == "GET"

            await proxy.send({"type": "reset"})
            log = await proxy.expect("request")  # the tunnel's line comes before reset_ok
            assert (log["method"], log["bytes_in"], log["bytes_out"]) == ("CONNECT", 5, 5)
            await proxy.expect("reset_ok")
            assert await receive_until_eof(tunnel) == b""
            assert await receive_until_eof(kept) == b""
            await tunnel.aclose()
            await kept.aclose()

            # The proxy serves on as before.
            status, tunnel, _ = await open_tunnel(proxy.port, f"127.0.0.1:{echo_port}")
            await tunnel.aclose()
            assert status == 200


async def test_reset_refuses_what_waits_in_the_backlog(origin):
    """Connections that a run left waiting to be accepted, with complete requests in them, are refused
    unread by the reset: none is served or logged after reset_ok (that is, under the next run). The proxy
    is stopped while they connect, so they wait in its backlog, and the reset line is sent before it goes
    on: what it does first after that is up to its scheduler, and either order must hold."""
    async with running_proxy("--allow-private", "127.0.0.1/32", "--connect-port", str(origin.port)) as proxy:
        os.kill(proxy.process.pid, signal.SIGSTOP)
        try:
            leftovers = []
            for number in range(5):
                stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)  # the kernel completes the handshake
                target = f"http://127.0.0.1:{origin.port}/leftover-{number}"
                await stream.send_all(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                leftovers.append(stream)
            await proxy.send({"type": "reset"})
        finally:
            os.kill(proxy.process.pid, signal.SIGCONT)
        served_before = []
        while (line := await proxy.line())["type"] != "reset_ok":
            assert line["type"] == "request", line
            served_before.append(line["path"])
        assert line.get("refused", 0) + line.get("closed", 0) >= 5 - len(served_before), line
        # Whatever was not served before reset_ok never will be: its client was refused.
        for stream in leftovers:
            with trio.fail_after(10):
                try:
                    answer = await receive_until_eof(stream)
                except trio.BrokenResourceError:  # reset by the proxy (RST)
                    answer = b""
            assert answer == b"" or answer.startswith(b"HTTP/1.1 200"), answer
            await stream.aclose()
        reply = await request(proxy.port, "GET", f"http://127.0.0.1:{origin.port}/after-reset")
        assert reply.status == 200
        assert (await proxy.expect("request"))["path"] == "/after-reset"


async def test_stdin_eof_stops_the_proxy_with_open_tunnels(echo_port):
    async with running_proxy("--allow-private", "127.0.0.1/32", "--connect-port", str(echo_port)) as proxy:
        status, tunnel, _ = await open_tunnel(proxy.port, f"127.0.0.1:{echo_port}")
        assert status == 200
        await proxy.process.stdin.aclose()
        with trio.fail_after(10):
            assert (await proxy.expect("request"))["method"] == "CONNECT"  # flushed on the way out
            assert await proxy.process.wait() == 0
            assert await receive_until_eof(tunnel) == b""
        await tunnel.aclose()
