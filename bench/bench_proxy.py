"""What the egress proxy adds to a request: local GETs direct to an origin vs through the proxy.

    .venv/bin/python bench/bench_proxy.py [-n 2000]

The origin is a minimal keep-alive HTTP server in a process of its own (this file, ``--origin``); the
proxy is ``proxy/main.py`` as the agent starts it. The client is a blocking socket, kept alive in both
cases (and the proxy keeps its origin connection between the client's GETs). Also timed: 64-byte round
trips through a CONNECT tunnel to a local echo server, vs direct. Prints n, p50, p90, p99 and max in ms,
and the p50 the proxy adds. Three processes share the machine's cores: on a busy one the numbers move.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 200
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


# --------------------------------------------------------------------------------------------------
# the origin process


def serve_origin() -> None:
    import trio

    async def http(stream) -> None:
        buffer = b""
        async with stream:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                await stream.send_all(RESPONSE)
                if b"\r\nconnection: close" in head.lower():
                    return

    async def echo(stream) -> None:
        async with stream:
            while data := await stream.receive_some(65536):
                await stream.send_all(data)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            ports = []
            for handler in (http, echo):
                listeners = await nursery.start(trio.serve_tcp, handler, 0)
                ports.append(listeners[0].socket.getsockname()[1])
            print(json.dumps(ports), flush=True)

    trio.run(main)


# --------------------------------------------------------------------------------------------------
# the client


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return body


def time_requests(sock: socket.socket, request: bytes, n: int) -> list[float]:
    timings = []
    for i in range(WARMUP + n):
        start = time.perf_counter_ns()
        sock.sendall(request)
        assert read_response(sock) == b"ok"
        if i >= WARMUP:
            timings.append((time.perf_counter_ns() - start) / 1e6)
    return timings


def time_echoes(sock: socket.socket, n: int) -> list[float]:
    payload = b"x" * 64
    timings = []
    for i in range(WARMUP + n):
        start = time.perf_counter_ns()
        sock.sendall(payload)
        received = 0
        while received < len(payload):
            received += len(sock.recv(65536))
        if i >= WARMUP:
            timings.append((time.perf_counter_ns() - start) / 1e6)
    return timings


def open_tunnel(proxy_port: int, authority: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy_port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: nothing after the head may be swallowed
    assert head.startswith(b"HTTP/1.1 200 "), head
    return sock


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def summary(label: str, timings: list[float]) -> float:
    ordered = sorted(timings)
    q = statistics.quantiles(ordered, n=100)
    p50 = statistics.median(ordered)
    print(f"{label:<22} n={len(ordered)} p50={p50:.3f} p90={q[89]:.3f} p99={q[98]:.3f} max={ordered[-1]:.3f} ms")
    return p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--origin", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.origin:
        return serve_origin()

    origin = subprocess.Popen([sys.executable, __file__, "--origin"], stdout=subprocess.PIPE)
    http_port, echo_port = json.loads(origin.stdout.readline())
    proxy = subprocess.Popen(
        [sys.executable, "-I", "-B", str(ROOT / "proxy" / "main.py"), "--allow-private", "127.0.0.1/32",
         "--connect-port", str(http_port), "--connect-port", str(echo_port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        proxy_port = json.loads(proxy.stdout.readline())["port"]
        threading.Thread(target=proxy.stdout.read, daemon=True).start()  # drain the log lines

        direct_get = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{http_port}\r\n\r\n".encode()
        proxied_get = f"GET http://127.0.0.1:{http_port}/ HTTP/1.1\r\nHost: 127.0.0.1:{http_port}\r\n\r\n".encode()
        with connect(http_port) as sock:
            direct = summary("GET direct", time_requests(sock, direct_get, args.n))
        with connect(proxy_port) as sock:
            proxied = summary("GET via proxy", time_requests(sock, proxied_get, args.n))
        print(f"{'added p50':<22} {proxied - direct:.3f} ms")

        with connect(echo_port) as sock:
            direct = summary("echo direct", time_echoes(sock, args.n))
        with open_tunnel(proxy_port, f"127.0.0.1:{echo_port}") as sock:
            proxied = summary("echo via tunnel", time_echoes(sock, args.n))
        print(f"{'added p50':<22} {proxied - direct:.3f} ms")
    finally:
        proxy.stdin.close()
        proxy.wait(timeout=10)
        origin.kill()
        origin.wait()


if __name__ == "__main__":
    main()
