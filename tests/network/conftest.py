"""Filtered-network tests: local HTTP and HTTPS origins on the Docker bridge's gateway address, and test
host names mapped to it inside the sandbox (ExtraHosts). Nothing reaches the internet."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import subprocess
import threading

import pytest
from pyroute2 import IPRoute

from isol8rt import DockerIsol8, Isol8Options, NetworkFilter

from ..conftest import needs_docker


def bridge_gateway() -> str:
    """The host's address on Docker's default bridge (docker0), which containers on it can reach: asked of
    the kernel over netlink (pyroute2), not read from `ip`'s text output (nor is iproute2 needed)."""
    with IPRoute() as netlink:
        for index in netlink.link_lookup(ifname="docker0"):
            for address in netlink.get_addr(index=index, family=socket.AF_INET):
                return str(address.get_attr("IFA_ADDRESS"))
    pytest.fail("no docker0 bridge address: is dockerd running with its default bridge?")


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every GET with JSON naming the path and the Host header: enough to see what arrived."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        body = json.dumps({"path": self.path, "host": self.headers.get("Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Origins:
    def __init__(self, address: str, http_port: int, https_port: int, certificate: str) -> None:
        self.address = address
        self.http_port = http_port
        self.https_port = https_port
        self.certificate = certificate

    def options(self, **fields) -> Isol8Options:
        """Filtered options with test host names mapped to the origins and the gateway allowed."""
        network_filter = fields.pop("network_filter", None) or NetworkFilter()
        network_filter.allow_private = network_filter.allow_private or [f"{self.address}/32"]
        network_filter.connect_ports = network_filter.connect_ports or [self.http_port, self.https_port]
        hosts = {name: self.address for name in ("allowed.test", "denied.test", "other.test", "api.test")}
        return Isol8Options(network="filtered", network_filter=network_filter, extra_hosts=hosts, **fields)


@pytest.fixture(scope="session")
@needs_docker
def origins(tmp_path_factory):
    address = bridge_gateway()
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=allowed.test",
                    "-addext", "subjectAltName=DNS:allowed.test,DNS:denied.test,DNS:api.test"],
                   check=True, capture_output=True)
    plain = http.server.ThreadingHTTPServer((address, 0), _Echo)
    secure = http.server.ThreadingHTTPServer((address, 0), _Echo)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in (plain, secure)]
    for thread in threads:
        thread.start()
    yield Origins(address, plain.server_address[1], secure.server_address[1], cert.read_text())
    for server in (plain, secure):
        server.shutdown()
        server.server_close()


@pytest.fixture
@needs_docker
async def filtered(origins):
    """An engine in filtered mode that allows only allowed.test and api.test, logging requests."""
    options = origins.options(network_filter=NetworkFilter(whitelist=[r"^allowed\.test$", r"^api\.test$"]),
                              log_network=True, pool_size=1)
    async with DockerIsol8(options) as engine:
        yield engine


__all__ = ["Origins", "socket"]
