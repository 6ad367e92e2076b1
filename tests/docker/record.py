"""Record real Docker Engine API traffic as test fixtures (run by hand, never in CI).

    .venv/bin/python tests/docker/record.py [--image proto/py:1] [--base proto/base:1]

A man-in-the-middle on a temporary unix socket forwards every byte between a DockerClient and the real
daemon (``/var/run/docker.sock``) and writes, for each scenario below, into ``recordings/``:

- ``NAME.request.bin``: every byte the client sent, as sent;
- ``NAME.response.bin``: every byte the daemon sent, as received;
- ``reads.json``: for each scenario, the size of each read of the daemon's side, so tests can replay
  the daemon's own byte boundaries (a 101 head and its first frames in one read, a frame split across
  two).

Each scenario runs on a client of its own and must use exactly one connection. A few scenarios hold
back the first read from the daemon for a moment so that what the daemon wrote meanwhile arrives
together, as it does on a loaded machine; others read in small pieces to split frames. Re-recording
changes ids and dates in the fixtures; the tests do not depend on them.

Everything the scenarios create carries the label ``isol8rt.test=docker-client`` and is removed at the
end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from isol8rt.docker import (  # noqa: E402
    BuildError,
    ContainerSpec,
    DockerClient,
    DockerError,
    HostConfig,
    tar_stream,
)

HERE = Path(__file__).resolve().parent
RECORDINGS = HERE / "recordings"
UPSTREAM = "/var/run/docker.sock"
LABELS = {"isol8rt.test": "docker-client"}
NAME_TAKEN = "isol8rt-test-recorded-name"
TAG = "isol8rt-test/recorded:1"


@dataclass
class Recording:
    request: bytearray = field(default_factory=bytearray)
    reads: list[bytes] = field(default_factory=list)
    done: trio.Event = field(default_factory=trio.Event)


@dataclass
class Shaping:
    read_size: int = 65536
    #: Seconds to hold back the first read from the daemon.
    first_read_delay: float = 0.0


class Recorder:
    """The man in the middle: one recording per accepted connection, under the current scenario."""

    def __init__(self) -> None:
        self.current: list[Recording] = []
        self.shaping = Shaping()

    async def handle(self, client: trio.SocketStream) -> None:
        recording = Recording()
        self.current.append(recording)
        shaping = self.shaping
        upstream = await trio.open_unix_socket(UPSTREAM)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, client, upstream, Shaping(), recording.request.extend, nursery)
                nursery.start_soon(self._pump, upstream, client, shaping, recording.reads.append, nursery)
        finally:
            await upstream.aclose()
            await client.aclose()
            recording.done.set()

    @staticmethod
    async def _pump(source, sink, shaping: Shaping, record, nursery) -> None:
        first = True
        try:
            while True:
                if first and shaping.first_read_delay:
                    await trio.sleep(shaping.first_read_delay)
                first = False
                data = await source.receive_some(shaping.read_size)
                if not data:
                    await sink.send_eof()
                    return
                record(bytes(data))
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            nursery.cancel_scope.cancel()


Scenario = Callable[[DockerClient, DockerClient], Awaitable[None]]
SCENARIOS: list[tuple[str, Shaping, Scenario]] = []


def scenario(name: str, **shaping: float) -> Callable[[Scenario], Scenario]:
    def register(function: Scenario) -> Scenario:
        SCENARIOS.append((name, Shaping(**shaping), function))
        return function

    return register


def container(image: str, cmd: list[str], **extra: object) -> ContainerSpec:
    return ContainerSpec(image=image, cmd=cmd, labels=LABELS, host_config=HostConfig(network_mode="none"), **extra)


IMAGE = "proto/py:1"
BASE = "proto/base:1"

# Each scenario gets (recorded, direct): the client whose one exchange is recorded, and a client on
# the real socket for setting things up.


@scenario("ping")
async def _ping(recorded: DockerClient, direct: DockerClient) -> None:
    await recorded.ping()


@scenario("version")
async def _version(recorded: DockerClient, direct: DockerClient) -> None:
    await recorded.version()


@scenario("create_201")
async def _create(recorded: DockerClient, direct: DockerClient) -> None:
    await recorded.create_container(container(IMAGE, ["true"]))


@scenario("inspect_404")
async def _inspect_missing(recorded: DockerClient, direct: DockerClient) -> None:
    try:
        await recorded.inspect_container("isol8rt-test-no-such-container")
    except DockerError:
        return
    raise AssertionError("expected a 404")


@scenario("create_409")
async def _create_conflict(recorded: DockerClient, direct: DockerClient) -> None:
    await direct.create_container(container(IMAGE, ["true"]), name=NAME_TAKEN)
    try:
        await recorded.create_container(container(IMAGE, ["true"]), name=NAME_TAKEN)
    except DockerError:
        return
    raise AssertionError("expected a 409")


@scenario("wait_chunked")
async def _wait(recorded: DockerClient, direct: DockerClient) -> None:
    cid = await direct.create_container(container(IMAGE, ["sh", "-c", "exit 3"]))
    await direct.start_container(cid)
    await recorded.wait_container(cid)


def _context(dockerfile: str) -> list[bytes]:
    return list(tar_stream([("Dockerfile", dockerfile.encode(), 0o644), ("hello.txt", b"hello\n", 0o644)]))


@scenario("build_stream")
async def _build(recorded: DockerClient, direct: DockerClient) -> None:
    dockerfile = f"FROM {BASE}\nCOPY hello.txt /hello.txt\nLABEL isol8rt.test=docker-client\n"
    async with recorded.build_image(_context(dockerfile), tag=TAG, nocache=True) as events:
        async for _ in events:
            pass


@scenario("build_error")
async def _build_error(recorded: DockerClient, direct: DockerClient) -> None:
    dockerfile = f"FROM {BASE}\nLABEL isol8rt.test=docker-client\nRUN echo about to fail && false\n"
    try:
        async with recorded.build_image(_context(dockerfile), tag=TAG, nocache=True) as events:
            async for _ in events:
                pass
    except BuildError:
        return
    raise AssertionError("expected a BuildError")


@scenario("attach_101_merged", first_read_delay=0.5)
async def _attach_merged(recorded: DockerClient, direct: DockerClient) -> None:
    # A running container that keeps writing: by the time the delayed first read happens, the 101 head
    # and several frames of both streams wait in the socket together.
    ticker = "i=0; while [ $i -lt 200 ]; do echo tick $i; echo tock $i >&2; i=$((i+1)); sleep 0.01; done"
    spec = container(IMAGE, ["sh", "-c", ticker], attach_stdout=True, attach_stderr=True)
    cid = await direct.create_container(spec)
    await direct.start_container(cid)
    async with await recorded.attach_container(cid, stdin=False) as stream:
        assert await stream.receive()
    await direct.kill_container(cid)


async def _exec_in_a_sleeper(recorded: DockerClient, direct: DockerClient, cmd: list[str]) -> None:
    cid = await direct.create_container(container(IMAGE, ["sleep", "60"]))
    await direct.start_container(cid)
    exec_id = await direct.exec_create(cid, cmd)
    async with await recorded.exec_start(exec_id) as stream:
        while await stream.receive():
            pass
    await direct.kill_container(cid)


@scenario("exec_101_merged", first_read_delay=0.5)
async def _exec_merged(recorded: DockerClient, direct: DockerClient) -> None:
    await _exec_in_a_sleeper(recorded, direct, ["sh", "-c", "echo out; echo err >&2"])


@scenario("exec_split_frames", read_size=1000)
async def _exec_split(recorded: DockerClient, direct: DockerClient) -> None:
    script = "head -c 3000 /dev/zero | tr '\\0' a; echo; echo bye >&2"
    await _exec_in_a_sleeper(recorded, direct, ["sh", "-c", script])


@scenario("import_stream")
async def _import(recorded: DockerClient, direct: DockerClient) -> None:
    rootfs = list(tar_stream([("hello", b"#!/bin/true\n", 0o755)]))
    changes = ["LABEL isol8rt.test=docker-client"]
    await recorded.import_image(rootfs, repo="isol8rt-test/imported", tag="1", changes=changes)


async def cleanup(direct: DockerClient) -> None:
    for summary in await direct.list_containers(labels=LABELS):
        await direct.remove_container(summary.id)
    for summary in await direct.list_images(labels=LABELS):
        await direct.remove_image(summary.id, force=True)


async def main(image: str, base: str) -> None:
    global IMAGE, BASE
    IMAGE, BASE = image, base
    RECORDINGS.mkdir(exist_ok=True)
    reads_index: dict[str, list[int]] = {}
    recorder = Recorder()
    with tempfile.TemporaryDirectory() as tmp:
        proxy_path = os.path.join(tmp, "docker.sock")
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await sock.bind(proxy_path)
        sock.listen()
        async with DockerClient() as direct, trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, recorder.handle, [trio.SocketListener(sock)])
            try:
                for name, shaping, run in SCENARIOS:
                    recorder.current, recorder.shaping = [], shaping
                    async with DockerClient(f"unix://{proxy_path}") as recorded:
                        await run(recorded, direct)
                    with trio.fail_after(10):
                        for recording in recorder.current:
                            await recording.done.wait()
                    if len(recorder.current) != 1:
                        raise SystemExit(f"{name}: {len(recorder.current)} connections, expected 1")
                    recording = recorder.current[0]
                    (RECORDINGS / f"{name}.request.bin").write_bytes(recording.request)
                    (RECORDINGS / f"{name}.response.bin").write_bytes(b"".join(recording.reads))
                    reads_index[name] = [len(read) for read in recording.reads]
                    print(f"{name}: {len(recording.request)} bytes sent, {reads_index[name]} read")
            finally:
                await cleanup(direct)
                nursery.cancel_scope.cancel()
    (RECORDINGS / "reads.json").write_text(json.dumps(reads_index, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=IMAGE, help="an image with sh, sleep, head and tr")
    parser.add_argument("--base", default=BASE, help="the FROM of the recorded builds")
    args = parser.parse_args()
    trio.run(main, args.image, args.base)
