"""Round trips of 64 bytes through an attached ``cat`` container: the hot path of every run.

    .venv/bin/python bench/bench_attach_roundtrip.py [-n 2000] [--image proto/py:1]

One round trip is ``HijackedStream.send_all`` of 64 bytes, then ``receive()`` until they are back. For
scale, the same round trips are also timed on a bare blocking socket that did the same attach by hand:
the difference is the client's own overhead (trio, the demuxer). Prints n, p50, p90, p99 and max in ms.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from isol8rt.docker import ContainerSpec, DockerClient, FrameDemuxer, HostConfig  # noqa: E402

PAYLOAD = b"x" * 64
WARMUP = 100
LABELS = {"isol8rt.bench": "attach-roundtrip"}


def cat_spec(image: str) -> ContainerSpec:
    return ContainerSpec(
        image=image,
        cmd=["cat"],
        labels=LABELS,
        open_stdin=True,
        stdin_once=True,
        attach_stdin=True,
        attach_stdout=True,
        attach_stderr=True,
        host_config=HostConfig(network_mode="none"),
    )


async def time_round_trips(n: int, round_trip) -> list[float]:
    timings = []
    for i in range(WARMUP + n):
        start = time.perf_counter_ns()
        await round_trip()
        if i >= WARMUP:
            timings.append((time.perf_counter_ns() - start) / 1e6)
    return timings


async def client_round_trips(docker: DockerClient, image: str, n: int) -> list[float]:
    container_id = await docker.create_container(cat_spec(image))
    try:
        async with await docker.attach_container(container_id) as stream:
            await docker.start_container(container_id)

            async def round_trip() -> None:
                await stream.send_all(PAYLOAD)
                received = 0
                while received < len(PAYLOAD):
                    for _, payload in await stream.receive():
                        received += len(payload)

            return await time_round_trips(n, round_trip)
    finally:
        await docker.remove_container(container_id)


def bare_attach(container_id: str) -> socket.socket:
    """Attach by hand on a blocking socket: no pool, no h11, no trio."""
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://"))
    sock.sendall(
        f"POST /v1.41/containers/{container_id}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n"
        "Host: docker\r\nContent-Length: 0\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    # The container is not started yet, so nothing can have followed the 101 head.
    assert head.startswith(b"HTTP/1.1 101") and head.endswith(b"\r\n\r\n"), head
    return sock


async def bare_round_trips(docker: DockerClient, image: str, n: int) -> list[float]:
    container_id = await docker.create_container(cat_spec(image))
    try:
        with bare_attach(container_id) as sock:
            await docker.start_container(container_id)
            demuxer = FrameDemuxer()

            async def round_trip() -> None:  # blocking calls: nothing else runs meanwhile
                sock.sendall(PAYLOAD)
                received = 0
                while received < len(PAYLOAD):
                    for _, payload in demuxer.feed(sock.recv(65536)):
                        received += len(payload)

            return await time_round_trips(n, round_trip)
    finally:
        await docker.remove_container(container_id)


def report(name: str, timings: list[float]) -> None:
    cuts = statistics.quantiles(timings, n=100, method="inclusive")
    print(
        f"{name:7} n={len(timings)} p50={cuts[49]:.3f} ms p90={cuts[89]:.3f} ms "
        f"p99={cuts[98]:.3f} ms max={max(timings):.3f} ms"
    )


async def main(n: int, image: str) -> None:
    async with DockerClient() as docker:
        report("client", await client_round_trips(docker, image, n))
        report("bare", await bare_round_trips(docker, image, n))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help=f"round trips to time (after {WARMUP} of warm-up)")
    parser.add_argument("--image", default=os.environ.get("ISOL8RT_TEST_IMAGE", "proto/py:1"), help="an image with cat")
    args = parser.parse_args()
    trio.run(main, args.n, args.image)
