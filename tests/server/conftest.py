"""Fixtures for the server's tests: a real server on loopback (in this process, or as an `isol8rt serve`
subprocess), real containers, and a raw HTTP helper for checking bytes on the wire."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import h11
import msgspec
import pytest
import trio

from isol8rt import Isol8Options
from isol8rt.client import RemoteIsol8
from isol8rt.server import Server, ServerConfig

from ..conftest import needs_docker

MASTER = "test-master-key"


def pytest_configure(config):
    config.addinivalue_line("markers", "load: many requests through a server (1000 at concurrency 16)")


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def json(self):
        return msgspec.json.decode(self.body)


class Live:
    """A running server: its URL and raw access to it."""

    def __init__(self, server: Server | None, port: int) -> None:
        self.server = server
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def client(self, key: str | None = MASTER, **kwargs) -> RemoteIsol8:
        return RemoteIsol8(self.url, key, **kwargs)

    async def request(self, method: str, path: str, body: bytes | dict | None = None, *, key: str | None = MASTER,
                      headers: list[tuple[bytes, bytes]] | None = None) -> Answer:
        return await raw_request(self.port, method, path, body, key=key, headers=headers)


async def raw_request(port: int, method: str, path: str, body: bytes | dict | None = None, *,
                      key: str | None = MASTER, headers: list[tuple[bytes, bytes]] | None = None) -> Answer:
    """One request on a fresh connection, answered in full."""
    if isinstance(body, dict):
        body = msgspec.json.encode(body)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    conn = h11.Connection(h11.CLIENT)
    headers = list(headers or [])
    head = headers if any(name.lower() == b"host" for name, _ in headers) else [(b"Host", b"127.0.0.1"), *headers]
    if key is not None:
        head.append((b"Authorization", f"Bearer {key}".encode()))
    if body is not None:
        head.append((b"Content-Length", str(len(body)).encode()))
    async with stream:
        data = conn.send(h11.Request(method=method, target=path, headers=head))
        if body:
            data += conn.send(h11.Data(data=body))
        await stream.send_all(data + conn.send(h11.EndOfMessage()))
        response, parts = None, []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
    return Answer(response.status_code, dict(response.headers), b"".join(parts))


def config(tmp_path: Path, **fields) -> ServerConfig:
    fields.setdefault("options", Isol8Options(pool_size=1))
    return ServerConfig(port=0, api_key=MASTER, keys_db=tmp_path / "keys.db", state_dir=tmp_path / "state",
                        drain_s=5, **fields)


@pytest.fixture
@needs_docker
async def start_server(tmp_path):
    """Start servers inside a test: ``live = await start_server(rate_limit=2)``; all stopped at the end."""
    async with trio.open_nursery() as nursery:
        servers = []

        async def start(**fields) -> Live:
            server = Server(config(tmp_path, **fields))
            port = await nursery.start(server.run)
            servers.append(server)
            return Live(server, port)

        yield start
        for server in servers:
            server.stop()


@pytest.fixture
async def live(start_server) -> Live:
    return await start_server()


async def engine_containers(engine_ids) -> list[str]:
    """Containers (running or not) of these engines, straight from Docker."""
    from isol8rt.docker import DockerClient
    from isol8rt.runtimes import LABEL_ENGINE

    found = []
    async with DockerClient() as client:
        for engine_id in engine_ids:
            found += [c.id for c in await client.list_containers(all=True, labels={LABEL_ENGINE: engine_id})]
    return found


class ServerProcess:
    """`isol8rt serve` in a subprocess (for signals, kill -9 and memory measurements)."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.state_dir = tmp_path / "state"
        command = [sys.executable, "-m", "isol8rt", "serve", "--port", "0", "--key", MASTER,
                   "--keys-db", str(tmp_path / "keys.db"), "--state-dir", str(self.state_dir), *args]
        self.proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.port = self._wait_for_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _wait_for_port(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        seen = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stderr], [], [], 0.5)
            if ready:
                line = self.proc.stderr.readline()
                seen += line
                if b"serving on http://" in line:
                    return int(line.rsplit(b":", 1)[1])
            if self.proc.poll() is not None:
                break
        self.proc.kill()
        raise AssertionError(f"isol8rt serve did not start: {seen.decode(errors='replace')}")

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def engine_ids(self) -> list[str]:
        ids = []
        for path in self.state_dir.glob("*.json"):
            ids += msgspec.json.decode(path.read_bytes())["engines"]
        return ids

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture
@needs_docker
def spawn_server(tmp_path):
    processes = []

    def spawn(*args: str) -> ServerProcess:
        process = ServerProcess(tmp_path, *args)
        processes.append(process)
        return process

    yield spawn
    for process in processes:
        process.stop()
