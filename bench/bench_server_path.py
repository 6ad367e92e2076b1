"""The server's own per-request cost, with the engine taken out: what HTTP, routing, policy and the
client add to a run, which ``bench_server.py`` can only see through a real container's noise.

    .venv/bin/python bench/bench_server_path.py [--requests N] [--run-ms MS]

The engine's ``execute`` is replaced by a stub that answers a python hello world's result once another
process has answered it ``--run-ms`` later (a real warm run takes about 4 ms; in that time both processes
fall idle and their caches cool, which is what a real call pays). Two measurements:

- in one process, back to back, stub answering at once: client + server CPU per request (hot);
- server in a subprocess, ``RemoteIsol8`` here: round-trip latency minus the stub's time (p50, p90),
  i.e. what the server path adds to a run, split into its hops by CLOCK_MONOTONIC stamps taken on both
  sides (client send -> handler, handler -> engine, engine -> answer sent, answer sent -> client).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from isol8rt import ExecutionRequest, ExecutionResult
from isol8rt.client import RemoteIsol8
from isol8rt.engine import DockerIsol8
from isol8rt.server import Server, ServerConfig
from isol8rt.server import app as app_module
from isol8rt.server import server as server_module

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_engine import percentile  # noqa: E402 - the engine benchmark's statistics, shared
from bench_server import process_cpu_ms  # noqa: E402 - the server benchmark's CPU reading, shared

KEY = "bench-key"
REQUEST = ExecutionRequest(runtime="python", code="print('hello')")
RESULT = ExecutionResult(stdout="hello\n", stderr="", exit_code=0, duration_ms=4.2, truncated=False,
                         execution_id="0f1e2d3c4b5a6978", runtime="python", timestamp="2026-12-03T06:00:00.000Z",
                         container_id="c" * 64)


def container_stand_in(run_s: float) -> socket.socket:
    """A process that answers each byte it gets with one of its own ``run_s`` later: the engine waits
    on a socket to another process, as it does on a container's agent (a trio.sleep instead would cost
    the server a cancel scope's expiry per request, which a real run does not)."""
    ours, theirs = socket.socketpair()
    if os.fork() == 0:
        ours.close()
        while theirs.recv(1):
            time.sleep(run_s)
            theirs.send(b"x")
        os._exit(0)
    theirs.close()
    return ours


def stub_engine(run_s: float, stamps: list | None = None) -> None:
    """Replace the engine (and the orphan sweep) with stubs; with ``stamps``, record each hop's time."""
    stand_in = trio.socket.from_stdlib_socket(container_stand_in(run_s)) if run_s else None

    async def execute(self, request, session_id=None, **kwargs):
        if stamps is not None:
            stamps.append(("engine", time.perf_counter()))
        if stand_in is not None:
            await stand_in.send(b"x")
            await stand_in.recv(1)
        else:
            await trio.lowlevel.checkpoint()
        if stamps is not None:
            stamps.append(("engine_done", time.perf_counter()))
        return RESULT

    async def nothing(*args, **kwargs):
        return 0

    DockerIsol8.execute = execute
    DockerIsol8.start = nothing
    DockerIsol8.stop = nothing
    server_module.Server._sweep = nothing
    if stamps is None:
        return
    handle, send = app_module.App.handle, server_module._Exchange._send

    async def stamped_handle(self, request, exchange):
        stamps.append(("handler", time.perf_counter()))
        await handle(self, request, exchange)

    async def stamped_send(self, data):
        await send(self, data)
        stamps.append(("sent", time.perf_counter()))

    app_module.App.handle = stamped_handle
    server_module._Exchange._send = stamped_send


def config() -> ServerConfig:
    return ServerConfig(port=0, api_key=KEY, key_concurrency=0, prewarm=[], state_dir=Path(tempfile.mkdtemp()))


async def hot(requests: int) -> float:
    """Client + server CPU per request in one process (µs)."""
    stub_engine(0)
    server = Server(config())
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.run)
        client = RemoteIsol8(f"http://127.0.0.1:{port}", KEY)
        for _ in range(300):
            await client.execute(REQUEST)
        cpu = time.process_time()
        for _ in range(requests):
            await client.execute(REQUEST)
        cpu = time.process_time() - cpu
        server.stop()
    return cpu / requests * 1e6


async def serve_stub(run_s: float, stamps_path: str) -> None:
    """The subprocess: a server with a stamped stub engine, until SIGTERM; then the stamps to a file."""
    stamps: list = []
    stub_engine(run_s, stamps)
    server = Server(config())
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.run)
        print(f"serving on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
        with trio.open_signal_receiver(15) as signals:
            async for _ in signals:
                break
        Path(stamps_path).write_text(json.dumps(stamps))
        server.stop()


async def across(requests: int, run_s: float) -> dict[str, list[float]]:
    """Round trips to a subprocess server; each hop's time (ms) per request."""
    stamps_path = tempfile.mktemp(suffix=".json")
    proc = subprocess.Popen([sys.executable, __file__, "--serve-stub", stamps_path, "--run-ms", str(run_s * 1000)],
                            stderr=subprocess.PIPE)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if b"serving on " not in line:
        proc.kill()
        raise SystemExit(f"the stub server did not start: {line!r}")
    url = line.split(b"serving on ", 1)[1].strip().decode()
    client_times = []
    try:
        client = RemoteIsol8(url, KEY)
        for index in range(requests + 100):
            if index == 100:
                cpu = {"client": process_cpu_ms(), "server": process_cpu_ms(proc.pid)}
            started = time.perf_counter()
            await client.execute(REQUEST)
            client_times.append((started, time.perf_counter()))
        cpu = {"client": process_cpu_ms() - cpu["client"], "server": process_cpu_ms(proc.pid) - cpu["server"]}
    finally:
        proc.terminate()
        proc.wait(30)
    records, current = [], {}
    for name, stamp in json.loads(Path(stamps_path).read_text()):
        if name == "handler":
            current = {}
            records.append(current)
        current[name] = stamp
    os.unlink(stamps_path)
    hops: dict[str, list[float]] = {"client -> handler": [], "handler -> engine": [], "engine -> sent": [],
                                    "sent -> client": [], "added": []}
    for (started, ended), record in list(zip(client_times, records))[100:]:
        hops["client -> handler"].append((record["handler"] - started) * 1000)
        hops["handler -> engine"].append((record["engine"] - record["handler"]) * 1000)
        hops["engine -> sent"].append((record["sent"] - record["engine_done"]) * 1000)
        hops["sent -> client"].append((ended - record["sent"]) * 1000)
        hops["added"].append((ended - started - (record["engine_done"] - record["engine"])) * 1000)
    return hops, {side: used / requests * 1000 for side, used in cpu.items()}


async def main(args) -> None:
    if args.serve_stub:
        await serve_stub(args.run_ms / 1000, args.serve_stub)
        return
    across_hops, cpu = await across(args.requests, args.run_ms / 1000)
    print(f"server path, engine stubbed ({args.run_ms:g} ms run), {args.requests} requests")
    for name, values in across_hops.items():
        print(f"  {name:18s} p50 {percentile(values, .5):.3f}  p90 {percentile(values, .9):.3f} ms")
    print(f"  CPU per request: client {cpu['client']:.0f} µs, server {cpu['server']:.0f} µs (subprocess; "
          f"clock ticks, so averaged)")
    print(f"  client + server CPU per request, one process, back to back: {await hot(args.requests):.0f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--run-ms", type=float, default=4.0)
    parser.add_argument("--serve-stub", metavar="STAMPS", help=argparse.SUPPRESS)
    trio.run(main, parser.parse_args())
