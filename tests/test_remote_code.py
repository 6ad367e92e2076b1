"""Fetching programs from URLs: against local HTTP(S) servers only (127.0.0.1 allowed explicitly)."""

from __future__ import annotations

import hashlib
import http.server
import ssl
import subprocess
import threading

import pytest

from isol8rt import DockerIsol8, ExecutionRequest, InvalidRequest, Isol8Options
from isol8rt.remote_code import RemoteCodeError, fetch_code, gist_url, github_url
from isol8rt.types import RemoteCodeConfig

PROGRAM = b"print('fetched and run')\n"
ROUTES = {
    "/ok.py": (200, {}, PROGRAM),
    "/redirect-ok": (302, {"Location": "/ok.py"}, b""),
    "/redirect-private": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
    "/redirect-rfc1918": (302, {"Location": "https://10.1.2.3/x.py"}, b""),
    "/big.py": (200, {}, b"#" * 5000),
    "/nul.py": (200, {}, b"print(1)\x00"),
    "/latin1.py": (200, {}, "print('é')".encode("latin-1")),
    "/missing": (404, {}, b"no"),
}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        status, headers, body = ROUTES.get(self.path, (404, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    directory = tmp_path_factory.mktemp("code-tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    secure = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(str(cert), str(key))
    secure.socket = server_context.wrap_socket(secure.socket, server_side=True)
    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    for server in (secure, plain):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    client_context = ssl.create_default_context(cafile=str(cert))
    yield f"https://127.0.0.1:{secure.server_address[1]}", f"http://127.0.0.1:{plain.server_address[1]}", client_context
    for server in (secure, plain):
        server.shutdown()


def policy(**fields) -> RemoteCodeConfig:
    return RemoteCodeConfig(enabled=True, allow_private=["127.0.0.1/32"], **fields)


async def test_fetch_with_matching_hash(servers):
    https, _, context = servers
    digest = hashlib.sha256(PROGRAM).hexdigest()
    assert await fetch_code(f"{https}/ok.py", policy(), expected_sha256=digest, ssl_context=context) == PROGRAM.decode()
    assert await fetch_code(f"{https}/redirect-ok", policy(), ssl_context=context) == PROGRAM.decode()


async def test_hash_mismatch_is_refused(servers):
    https, _, context = servers
    with pytest.raises(RemoteCodeError, match="sha256 mismatch"):
        await fetch_code(f"{https}/ok.py", policy(), expected_sha256="0" * 64, ssl_context=context)


@pytest.mark.parametrize("route", ["/redirect-private", "/redirect-rfc1918"])
async def test_redirect_to_a_private_address_is_refused(servers, route):
    https, _, context = servers
    with pytest.raises(RemoteCodeError, match="not public"):
        await fetch_code(f"{https}{route}", policy(allowed_schemes=["https", "http"]), allow_insecure=True,
                         ssl_context=context)


async def test_private_address_refused_unless_allowed(servers):
    https, _, context = servers
    with pytest.raises(RemoteCodeError, match=r"127\.0\.0\.1 \(loopback\)"):
        await fetch_code(f"{https}/ok.py", RemoteCodeConfig(enabled=True), ssl_context=context)


async def test_size_cap_nul_and_encoding(servers):
    https, _, context = servers
    with pytest.raises(RemoteCodeError, match="maxCodeSize"):
        await fetch_code(f"{https}/big.py", policy(max_code_size=1000), ssl_context=context)
    with pytest.raises(RemoteCodeError, match="NUL"):
        await fetch_code(f"{https}/nul.py", policy(), ssl_context=context)
    with pytest.raises(RemoteCodeError, match="not UTF-8"):
        await fetch_code(f"{https}/latin1.py", policy(), ssl_context=context)
    with pytest.raises(RemoteCodeError, match="answered 404"):
        await fetch_code(f"{https}/missing", policy(), ssl_context=context)


async def test_schemes_hosts_and_switches(servers):
    https, http_url, context = servers
    with pytest.raises(RemoteCodeError, match="disabled"):
        await fetch_code(f"{https}/ok.py", None)
    with pytest.raises(RemoteCodeError, match="http is refused"):
        await fetch_code(f"{http_url}/ok.py", policy())
    with pytest.raises(RemoteCodeError, match="http is refused"):  # allowed by config but not by the request
        await fetch_code(f"{http_url}/ok.py", policy(allowed_schemes=["https", "http"]))
    assert await fetch_code(f"{http_url}/ok.py", policy(allowed_schemes=["https", "http"]), allow_insecure=True)
    with pytest.raises(RemoteCodeError, match="blocked"):
        await fetch_code(f"{https}/ok.py", policy(blocked_hosts=[r"^127\."]), ssl_context=context)
    with pytest.raises(RemoteCodeError, match="allowedHosts"):
        await fetch_code(f"{https}/ok.py", policy(allowed_hosts=[r"\.example\.com$"]), ssl_context=context)
    with pytest.raises(RemoteCodeError, match="requireHash"):
        await fetch_code(f"{https}/ok.py", policy(require_hash=True), ssl_context=context)


def test_shorthands():
    assert github_url("user/repo/main/src/x.py") == "https://raw.githubusercontent.com/user/repo/main/src/x.py"
    assert gist_url("abc123/run.py") == "https://gist.githubusercontent.com/raw/abc123/run.py"
    with pytest.raises(InvalidRequest):
        github_url("user/repo")


@pytest.mark.docker
async def test_engine_runs_code_from_a_url(servers):
    _, http_url, _ = servers
    options = Isol8Options(pool_size=0, remote_code=policy(allowed_schemes=["https", "http"]))
    async with DockerIsol8(options) as engine:
        result = await engine.execute(ExecutionRequest(code_url=f"{http_url}/ok.py", allow_insecure_code_url=True,
                                                       code_hash=hashlib.sha256(PROGRAM).hexdigest()))
        assert result.stdout == "fetched and run\n", result.stderr
        with pytest.raises(InvalidRequest, match="sha256 mismatch"):
            await engine.execute(ExecutionRequest(code_url=f"{http_url}/ok.py", allow_insecure_code_url=True,
                                                  code_hash="1" * 64))
    async with DockerIsol8(Isol8Options(pool_size=0)) as engine:
        with pytest.raises(InvalidRequest, match="disabled"):
            await engine.execute(ExecutionRequest(code_url=f"{http_url}/ok.py"))
