"""What the HTTP server adds to a run: latency over a library call, and throughput at concurrency 8.

    .venv/bin/python bench/bench_server.py [--runs N] [--seconds S] [--runtime python]

The library side is DockerIsol8 in this process; the server side is `isol8rt serve` in a subprocess with
the same pool settings, called through RemoteIsol8 (HTTP/1.1 keep-alive on loopback). Both run a warm
hello world. Targets: p50 added <= 1.5 ms; throughput at concurrency 8 within 15% of the library's.

With ``--in-process`` the server runs in this process instead: no third process to schedule, so on a
busy machine it shows the server's own path more clearly than the subprocess does.
"""

from __future__ import annotations

import argparse
import os
import select
import subprocess
import sys
import time

import trio

from isol8rt import DockerIsol8, ExecutionRequest, Isol8Options
from isol8rt.client import RemoteIsol8

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_engine import percentile, summary  # noqa: E402 - the engine benchmark's statistics, shared

HELLO = {"python": "print('hello')", "bash": "echo hello", "node": "console.log('hello')"}
KEY = "bench-key"
POOL = 4
CONCURRENCY = 8
TARGET_ADDED_P50_MS = 1.5
TARGET_THROUGHPUT_RATIO = 0.85


async def latency(execute, request: ExecutionRequest, runs: int, warmup: int = 50) -> list[float]:
    timings = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        result = await execute(request)
        elapsed = (time.perf_counter() - start) * 1000
        assert result.exit_code == 0, result.stderr
        if i >= warmup:
            timings.append(elapsed)
    return timings


async def throughput(executors, request: ExecutionRequest, seconds: float) -> float:
    done = 0
    deadline = trio.current_time() + seconds

    async def worker(execute) -> None:
        nonlocal done
        while trio.current_time() < deadline:
            result = await execute(request)
            assert result.exit_code == 0, result.stderr
            done += 1

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for execute in executors:
            nursery.start_soon(worker, execute)
    return done / (time.perf_counter() - start)


def process_cpu_ms(pid: int | None = None) -> float:
    """CPU time (user + system) used so far by ``pid`` (default: this process), in ms."""
    if pid is None:
        return time.process_time() * 1000
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def start_server(runtime: str) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "isol8rt", "serve", "--port", "0", "--key", KEY, "--no-keys-db",
               "--prewarm", runtime, "--pool-size", str(POOL), "--max-concurrent", str(CONCURRENCY),
               "--key-concurrency", "0"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if select.select([proc.stderr], [], [], 0.5)[0]:
            line = proc.stderr.readline()
            if b"serving on " in line:
                return proc, line.split(b"serving on ", 1)[1].strip().decode()
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit("isol8rt serve did not start")


async def main(args) -> None:
    request = ExecutionRequest(runtime=args.runtime, code=HELLO[args.runtime])
    options = Isol8Options(pool_size=POOL, max_concurrent=CONCURRENCY)

    async with DockerIsol8(options) as engine:
        await engine.start(prewarm=[args.runtime])
        cpu = process_cpu_ms()
        library = await latency(engine.execute, request, args.runs)
        library_cpu = (process_cpu_ms() - cpu) / (args.runs + 50)
        library_rate = await throughput([engine.execute] * CONCURRENCY, request, args.seconds)

    if args.in_process:
        await in_process(args, request, library, library_cpu, library_rate)
        return
    proc, url = start_server(args.runtime)
    try:
        clients = [RemoteIsol8(url, KEY) for _ in range(CONCURRENCY)]
        for client in clients:
            await client.start()
        cpu, server_cpu = process_cpu_ms(), process_cpu_ms(proc.pid)
        remote = await latency(clients[0].execute, request, args.runs)
        client_cpu = (process_cpu_ms() - cpu) / (args.runs + 50)
        server_cpu = (process_cpu_ms(proc.pid) - server_cpu) / (args.runs + 50)
        remote_rate = await throughput([c.execute for c in clients], request, args.seconds)
        for client in clients:
            await client.stop()
    finally:
        proc.terminate()
        proc.wait(30)

    report(args, library, library_rate, remote, remote_rate,
           f"library {library_cpu:.2f} ms; server process {server_cpu:.2f} ms + client {client_cpu:.2f} ms")


async def in_process(args, request, library, library_cpu, library_rate) -> None:
    import tempfile
    from pathlib import Path

    from isol8rt.server import Server, ServerConfig

    config = ServerConfig(port=0, api_key=KEY, key_concurrency=0, prewarm=[args.runtime],
                          state_dir=Path(tempfile.mkdtemp()),
                          options=Isol8Options(pool_size=POOL, max_concurrent=CONCURRENCY))
    server = Server(config)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.run)
        clients = [RemoteIsol8(f"http://127.0.0.1:{port}", KEY) for _ in range(CONCURRENCY)]
        for client in clients:
            await client.start()
        cpu = process_cpu_ms()
        remote = await latency(clients[0].execute, request, args.runs)
        both_cpu = (process_cpu_ms() - cpu) / (args.runs + 50)
        remote_rate = await throughput([c.execute for c in clients], request, args.seconds)
        server.stop()
    report(args, library, library_rate, remote, remote_rate,
           f"library {library_cpu:.2f} ms; server and client in one process {both_cpu:.2f} ms")


def report(args, library, library_rate, remote, remote_rate, cpu: str) -> None:
    added = percentile(remote, .5) - percentile(library, .5)
    ratio = remote_rate / library_rate
    where = "this process" if args.in_process else "a subprocess"
    print(f"{args.runtime} hello world, warm pool of {POOL}; server in {where}")
    print(f"  library  {summary(library)}")
    print(f"  server   {summary(remote)}")
    print(f"  host CPU per run: {cpu}")
    print(f"  added p50 {added:+.2f} ms (target <= {TARGET_ADDED_P50_MS} ms): "
          f"{'ok' if added <= TARGET_ADDED_P50_MS else 'MISSED'}")
    print(f"  throughput at concurrency {CONCURRENCY}: library {library_rate:.0f}/s, server {remote_rate:.0f}/s "
          f"({ratio:.0%}; target >= {TARGET_THROUGHPUT_RATIO:.0%}): "
          f"{'ok' if ratio >= TARGET_THROUGHPUT_RATIO else 'MISSED'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--runtime", choices=sorted(HELLO), default="python")
    parser.add_argument("--in-process", action="store_true", help="run the server in this process")
    trio.run(main, parser.parse_args())
