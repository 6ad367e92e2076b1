"""Fixtures of the Docker client's tests: recorded daemon traffic, a replaying fake daemon, and (for the
integration tests) a client of the real daemon that cleans up after itself."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h11
import pytest
import trio

from isol8rt.docker import ContainerSpec, DockerClient, HostConfig, NotFound
from isol8rt.images.catalog import BASE_IMAGE

from ..conftest import needs_docker

RECORDINGS = Path(__file__).resolve().parent / "recordings"

#: The image the integration tests run (needs sh, cat, sleep): by default isol8rt's base, which
#: `isol8rt setup` builds on every machine (the recordings name the prototype's images; they are bytes,
#: not run), or ISOL8RT_TEST_IMAGE.
TEST_IMAGE = os.environ.get("ISOL8RT_TEST_IMAGE", BASE_IMAGE)

#: Every container and image the tests make carries this label; the ``docker`` fixture removes them.
TEST_LABELS = {"isol8rt.test": "docker-client"}


@dataclass(frozen=True)
class Recording:
    """One exchange recorded by ``record.py``: what the client sent, and what the daemon sent back,
    read by read."""

    request: bytes
    reads: list[bytes]

    @property
    def response(self) -> bytes:
        return b"".join(self.reads)


def load_recording(name: str) -> Recording:
    sizes = json.loads((RECORDINGS / "reads.json").read_text())[name]
    response = (RECORDINGS / f"{name}.response.bin").read_bytes()
    assert sum(sizes) == len(response), f"reads.json does not match {name}.response.bin"
    reads, offset = [], 0
    for size in sizes:
        reads.append(response[offset : offset + size])
        offset += size
    return Recording((RECORDINGS / f"{name}.request.bin").read_bytes(), reads)


@pytest.fixture
def recording():
    return load_recording


# --------------------------------------------------------------------------------------------------
# a fake daemon that answers each request with the next canned response


@dataclass
class Canned:
    """A response to send as is; ``close`` hangs up after it, ``hold`` sends it and then keeps the
    connection open without reading (a hijacked stream, or an answer that never completes)."""

    data: bytes
    close: bool = False
    hold: bool = False


@dataclass
class ReplayDaemon:
    path: str
    responses: list[Canned] = field(default_factory=list)
    requests: list[tuple[h11.Request, bytes]] = field(default_factory=list)
    connections: int = 0
    #: Bytes received after a hijacking answer, per connection.
    hijacked: list[bytearray] = field(default_factory=list)

    def answer(self, data: bytes, *, close: bool = False, hold: bool = False) -> None:
        self.responses.append(Canned(data, close, hold))

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        leftover = b""
        async with stream:
            while self.responses:
                request = await _read_request(stream, leftover)
                if request is None:
                    return
                event, body, leftover = request
                self.requests.append((event, body))
                canned = self.responses.pop(0)
                await stream.send_all(canned.data)
                if canned.hold:
                    received = bytearray(leftover)
                    self.hijacked.append(received)
                    while data := await _receive(stream):
                        received += data
                    return
                if canned.close:
                    return


async def _receive(stream: trio.SocketStream) -> bytes:
    try:
        return await stream.receive_some(65536)
    except trio.BrokenResourceError:
        return b""


async def _read_request(stream: trio.SocketStream, leftover: bytes):
    conn = h11.Connection(h11.SERVER)
    if leftover:  # (b"" would mean EOF to h11)
        conn.receive_data(leftover)
    request, body = None, bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await _receive(stream)
            if not data and request is None:
                return None
            conn.receive_data(data)
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body), conn.trailing_data[0]
        else:
            raise AssertionError(f"unexpected {event!r}")


@pytest.fixture
async def replay_daemon(tmp_path, nursery):
    daemon = ReplayDaemon(str(tmp_path / "docker.sock"))
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(daemon.path)
    sock.listen()
    nursery.start_soon(trio.serve_listeners, daemon.handle, [trio.SocketListener(sock)])
    return daemon


# --------------------------------------------------------------------------------------------------
# the real daemon


async def remove_test_objects(client: DockerClient) -> None:
    for container in await client.list_containers(labels=TEST_LABELS):
        with contextlib.suppress(NotFound):
            await client.remove_container(container.id)
    for image in await client.list_images(labels=TEST_LABELS):
        with contextlib.suppress(NotFound):  # gone with an image removed before it
            await client.remove_image(image.id, force=True)


@pytest.fixture
@needs_docker
async def docker():
    """A client of the real daemon (the root conftest fails the test when there is none); removes every
    labelled container and image the test left behind."""
    client = DockerClient()
    try:
        yield client
    finally:
        await remove_test_objects(client)
        await client.aclose()


@pytest.fixture
async def image(docker):
    try:
        await docker.inspect_image(TEST_IMAGE)
    except NotFound:
        pytest.fail(f"test image {TEST_IMAGE} is not present: run `isol8rt setup` (or set ISOL8RT_TEST_IMAGE to an "
                    "image with sh and cat)", pytrace=False)
    return TEST_IMAGE


@pytest.fixture
def make_spec(image):
    """Build a labelled, network-less ContainerSpec of the test image (or of ``image=``) that
    attaches stdout and stderr, and stdin too with ``stdin=True`` (closed by the stream's EOF)."""

    def make(
        cmd: list[str], *, stdin: bool = False, labels: dict[str, str] | None = None, image: str = image
    ) -> ContainerSpec:
        return ContainerSpec(
            image=image,
            cmd=cmd,
            labels={**TEST_LABELS, **(labels or {})},
            open_stdin=stdin or None,
            stdin_once=stdin or None,
            attach_stdin=stdin or None,
            attach_stdout=True,
            attach_stderr=True,
            host_config=HostConfig(network_mode="none"),
        )

    return make
