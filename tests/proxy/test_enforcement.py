"""The policy enforced by a real proxy process. Every refusal here happens before any connection is
made (names are refused before resolution, addresses before connecting), so the hosts need not exist."""

from __future__ import annotations

import pytest
import trio

from proxy_support import open_tunnel, receive_until_eof, request, running_proxy


async def refused_tunnel(proxy, authority: str) -> tuple[int, bytes, dict]:
    """CONNECT that must be refused: (status, body, its log line)."""
    with trio.fail_after(10):
        status, stream, received = await open_tunnel(proxy.port, authority)
        async with stream:
            received += await receive_until_eof(stream)  # a refusal closes the connection
    log = await proxy.expect("request")
    assert log["method"] == "CONNECT" and log["action"] == "BLOCK" and log["status"] == status
    return status, received.partition(b"\r\n\r\n")[2], log


async def test_denied_host():
    async with running_proxy("--deny", r"(^|\.)blocked\.example$") as proxy:
        status, body, log = await refused_tunnel(proxy, "api.blocked.example:443")
        assert (status, body) == (403, b"blocked by deny list\n")
        assert (log["host"], log["port"], log["reason"]) == ("api.blocked.example", 443, "blocked by deny list")
        assert "path" not in log and (log["bytes_in"], log["bytes_out"]) == (0, 0)


async def test_deny_beats_allow():
    async with running_proxy("--allow", r"example$", "--deny", r"^secret\.example$") as proxy:
        status, body, _ = await refused_tunnel(proxy, "secret.example:443")
        assert (status, body) == (403, b"blocked by deny list\n")


async def test_host_not_in_allow_list():
    async with running_proxy("--allow", r"^allowed\.example$") as proxy:
        status, body, log = await refused_tunnel(proxy, "other.example:443")
        assert (status, body) == (403, b"not in allow list\n")
        reply = await request(proxy.port, "GET", "http://other.example/x")
        assert (reply.status, reply.body) == (403, b"not in allow list\n")
        log = await proxy.expect("request")
        assert (log["method"], log["path"], log["action"], log["reason"]) == ("GET", "/x", "BLOCK", "not in allow list")


async def test_allow_list_lets_a_listed_host_through(echo_port):
    args = ["--allow", "^localhost$", "--allow-private", "127.0.0.1/32", "--connect-port", str(echo_port)]
    async with running_proxy(*args) as proxy:
        status, stream, _ = await open_tunnel(proxy.port, f"LocalHost:{echo_port}")
        await stream.aclose()
        assert status == 200
        assert (await proxy.expect("request"))["host"] == "localhost"


@pytest.mark.parametrize(
    ("authority", "reason"),
    [
        ("127.0.0.1:443", "private address 127.0.0.1 not allowed (loopback)"),
        ("169.254.169.254:80", "private address 169.254.169.254 not allowed (link-local)"),
        ("localhost:443", "private address 127.0.0.1 not allowed (loopback)"),  # by what it resolves to
        ("[::1]:443", "private address ::1 not allowed (loopback)"),
        ("[::ffff:127.0.0.1]:443", "private address ::ffff:7f00:1 not allowed (loopback, in IPv6)"),
        ("2130706433:443", "private address 127.0.0.1 not allowed (loopback)"),  # a decimal spelling
        ("10.0.0.1:443", "private address 10.0.0.1 not allowed (RFC 1918)"),
    ],
)
async def test_private_destinations_refused(authority, reason):
    async with running_proxy() as proxy:
        status, body, log = await refused_tunnel(proxy, authority)
        assert (status, body, log["reason"]) == (403, reason.encode() + b"\n", reason)


async def test_metadata_service_refused_over_plain_http():
    async with running_proxy() as proxy:
        reply = await request(proxy.port, "GET", "http://169.254.169.254/latest/meta-data/")
        assert reply.status == 403
        log = await proxy.expect("request")
        assert (log["host"], log["path"], log["action"]) == ("169.254.169.254", "/latest/meta-data/", "BLOCK")
        assert log["reason"] == "private address 169.254.169.254 not allowed (link-local)"


async def test_allow_private_is_per_network(echo_port):
    async with running_proxy("--allow-private", "127.0.0.2/32", "--connect-port", str(echo_port)) as proxy:
        status, _, log = await refused_tunnel(proxy, f"127.0.0.1:{echo_port}")
        assert status == 403 and log["reason"].startswith("private address 127.0.0.1")


async def test_ports():
    async with running_proxy() as proxy:
        status, body, log = await refused_tunnel(proxy, "example.com:22")
        assert (status, body, log["reason"]) == (403, b"port 22 not allowed\n", "port 22 not allowed")
        reply = await request(proxy.port, "GET", "http://example.com:8080/")
        assert (reply.status, reply.body) == (403, b"port 8080 not allowed\n")
        assert (await proxy.expect("request"))["port"] == 8080
