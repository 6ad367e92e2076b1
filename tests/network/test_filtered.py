"""Filtered networking end to end: the proxy's policy, the firewall under it, and the logs.

Each test states which layer it exercises: the proxy (hostname policy, private addresses, ports) or the
firewall (the sandbox user can reach nothing but loopback, whatever it does with HTTP_PROXY)."""

from __future__ import annotations

import json

import pytest

from isol8rt import DockerIsol8, ExecutionRequest, NetworkFilter

FETCH = """
import json, ssl, sys, urllib.request
context = ssl.create_default_context(cadata=open('ca.pem').read())
for url in sys.argv[1:] or {urls!r}:
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as response:
            print(url, response.status, json.loads(response.read())['path'])
    except Exception as exc:
        print(url, 'ERR', getattr(exc, 'code', None) or type(exc).__name__)
"""


def fetch(origins, *urls: str) -> ExecutionRequest:
    return ExecutionRequest(code=FETCH.format(urls=list(urls)), files={"ca.pem": origins.certificate}, timeout_ms=30_000)


async def test_allow_list_http_and_https(filtered, origins):
    """Proxy: an allowed host is reached over HTTP and through a CONNECT tunnel (HTTPS); others get 403."""
    result = await filtered.execute(fetch(
        origins,
        f"http://allowed.test:{origins.http_port}/plain",
        f"https://allowed.test:{origins.https_port}/tls",
        f"http://other.test:{origins.http_port}/nope",
        f"https://other.test:{origins.https_port}/nope",
    ))
    assert result.stdout.splitlines() == [
        f"http://allowed.test:{origins.http_port}/plain 200 /plain",
        f"https://allowed.test:{origins.https_port}/tls 200 /tls",
        f"http://other.test:{origins.http_port}/nope ERR 403",
        f"https://other.test:{origins.https_port}/nope ERR URLError",  # CONNECT answered 403
    ], result.stderr
    # A tunnel is logged when it closes, which may come after a later request's line: match, not order.
    logs = {(entry.method, entry.host): entry for entry in result.network_logs}
    assert len(result.network_logs) == 4
    assert {key: entry.action for key, entry in logs.items()} == {
        ("GET", "allowed.test"): "ALLOW", ("CONNECT", "allowed.test"): "ALLOW",
        ("GET", "other.test"): "BLOCK", ("CONNECT", "other.test"): "BLOCK"}
    get, connect = logs["GET", "allowed.test"], logs["CONNECT", "allowed.test"]
    blocked_get, blocked_connect = logs["GET", "other.test"], logs["CONNECT", "other.test"]
    assert get.path == "/plain" and get.port == origins.http_port and get.bytes_in > 0
    assert connect.path is None and connect.port == origins.https_port
    assert connect.bytes_in > 0 and connect.bytes_out > 0  # the TLS handshake went both ways
    assert blocked_get.reason == "not in allow list" and blocked_connect.reason == "not in allow list"


async def test_connect_to_denied_host_gets_403_and_deny_beats_allow(origins):
    """Proxy: a host on both lists is refused; the CONNECT answer is a 403."""
    options = origins.options(network_filter=NetworkFilter(whitelist=[r"\.test$"], blacklist=[r"^denied\."]),
                              log_network=True, pool_size=0)
    code = (f"import socket\ns = socket.create_connection(('127.0.0.1', 3128))\n"
            f"s.sendall(b'CONNECT denied.test:{origins.https_port} HTTP/1.1\\r\\nHost: denied.test\\r\\n\\r\\n')\n"
            "print(s.recv(100).split(b'\\r\\n')[0].decode())")
    async with DockerIsol8(options) as engine:
        result = await engine.execute(ExecutionRequest(code=code))
        allowed = await engine.execute(fetch(origins, f"http://allowed.test:{origins.http_port}/x"))
    assert result.stdout == "HTTP/1.1 403 Forbidden\n", result.stderr
    assert result.network_logs[0].reason == "blocked by deny list"
    assert allowed.stdout.split()[1] == "200"


FIREWALL = r"""
import socket, errno
def attempt(name, action):
    try:
        action()
        print(name, 'OPEN')
    except OSError as exc:
        print(name, 'blocked')
attempt('tcp direct', lambda: socket.create_connection(('{gateway}', {port}), timeout=3))
attempt('dns', lambda: socket.getaddrinfo('pypi.org', 443))
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b'x' * 64, ('{gateway}', 53))
    s.settimeout(2)
    s.recv(10)
attempt('udp', udp)
def ipv6():
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect(('2606:4700::1111', 443))
attempt('ipv6', ipv6)
attempt('raw', lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt('packet', lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
attempt('proxy port', lambda: socket.create_connection(('127.0.0.1', 3128), timeout=3).close())
"""


async def test_firewall_leaves_only_the_proxy(filtered, origins):
    """Firewall: no direct TCP, no DNS, no UDP, no IPv6, no raw sockets; only loopback (the proxy)."""
    result = await filtered.execute(ExecutionRequest(
        code=FIREWALL.format(gateway=origins.address, port=origins.http_port), timeout_ms=30_000))
    assert result.stdout.splitlines() == [
        "tcp direct blocked", "dns blocked", "udp blocked", "ipv6 blocked", "raw blocked", "packet blocked",
        "proxy port OPEN"], result.stderr


async def test_private_destinations_refused_unless_allowed(origins):
    """Proxy: loopback, the bridge gateway and the metadata address are refused after resolution."""
    options = origins.options(network_filter=NetworkFilter(allow_private=["10.255.255.255/32"]),
                              log_network=True, pool_size=0)
    code = ("import urllib.request\n"
            "for url in ['http://127.0.0.1:{port}/', 'http://allowed.test:{port}/', 'http://169.254.169.254/latest/meta-data/', 'http://localhost:{port}/']:\n"
            "    try:\n        urllib.request.urlopen(url, timeout=10)\n        print('OPEN')\n"
            "    except Exception as exc:\n        print(getattr(exc, 'code', type(exc).__name__))").format(port=origins.http_port)
    async with DockerIsol8(options) as engine:
        result = await engine.execute(ExecutionRequest(code=code, env={"NO_PROXY": "", "no_proxy": ""}, timeout_ms=30_000))
    assert result.stdout.splitlines() == ["403", "403", "403", "403"], result.stderr
    reasons = [entry.reason for entry in result.network_logs]
    assert all(reason and reason.startswith("private address") for reason in reasons), reasons


@pytest.mark.parametrize(
    ("runtime", "code"),
    [
        ("node", "const r = await fetch('http://allowed.test:{port}/node'); console.log(r.status, (await r.json()).path)"),
        ("bun", "const r = await fetch('http://allowed.test:{port}/bun'); console.log(r.status, (await r.json()).path)"),
        ("deno", "const r = await fetch('http://allowed.test:{port}/deno'); console.log(r.status, (await r.json()).path)"),
        ("bash", "curl -s http://allowed.test:{port}/curl | jq -r .path"),
    ],
)
async def test_every_runtime_goes_through_the_proxy(filtered, origins, runtime, code):
    """Proxy env: Node (NODE_USE_ENV_PROXY), Bun, Deno and curl send their requests to the proxy."""
    result = await filtered.execute(ExecutionRequest(code=code.format(port=origins.http_port), runtime=runtime,
                                                     timeout_ms=30_000))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split()[-1] == f"/{runtime if runtime != 'bash' else 'curl'}", result.stdout
    # Node's fetch tunnels plain HTTP through CONNECT too; the others send absolute-form GETs.
    assert [(e.host, e.action) for e in result.network_logs] == [("allowed.test", "ALLOW")]
    assert result.network_logs[0].method in ("GET", "CONNECT")


async def test_runs_stay_isolated(filtered, origins):
    """Pool + proxy: each of five runs in a row sees only its own requests in its log, and a per-run policy
    does not outlive its run."""
    for index in range(5):
        result = await filtered.execute(fetch(origins, f"http://allowed.test:{origins.http_port}/run{index}"))
        assert [entry.path for entry in result.network_logs] == [f"/run{index}"], result.stderr
    strict = await filtered.execute(ExecutionRequest(
        code=FETCH.format(urls=[f"http://allowed.test:{origins.http_port}/x"]), files={"ca.pem": origins.certificate},
        network_filter=NetworkFilter(whitelist=[r"^api\.test$"], allow_private=[f"{origins.address}/32"],
                                     connect_ports=[origins.http_port])))
    assert strict.stdout.split()[-1] == "403"
    after = await filtered.execute(fetch(origins, f"http://allowed.test:{origins.http_port}/after"))
    assert after.stdout.split()[1] == "200", after.stderr


async def test_log_lines_survive_quotes_and_newlines(filtered, origins):
    """Logging: a path with quotes, backslashes and a CR/LF pair still makes a valid log entry."""
    code = ("import socket\ns = socket.create_connection(('127.0.0.1', 3128))\n"
            f"s.sendall(b'GET http://allowed.test:{origins.http_port}/a\"b\\\\\\\\c%0d%0a?q=\"x\" HTTP/1.1\\r\\nHost: allowed.test\\r\\nConnection: close\\r\\n\\r\\n')\n"
            "print(s.recv(20)[:12])")
    result = await filtered.execute(ExecutionRequest(code=code))
    assert "200" in result.stdout, result.stderr
    (entry,) = result.network_logs
    assert entry.path.startswith('/a"b\\\\c') and '"x"' in entry.path
    assert json.loads(json.dumps(entry.path)) == entry.path


async def test_bad_policy_is_refused_before_anything_runs(filtered):
    from isol8rt import InvalidRequest

    with pytest.raises(InvalidRequest, match="not a valid regex"):
        await filtered.execute(ExecutionRequest(code="1", network_filter=NetworkFilter(whitelist=["(unclosed"])))
