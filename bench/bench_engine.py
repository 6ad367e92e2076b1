"""Warm-path latency and throughput of DockerIsol8 (the engine issue's targets).

    .venv/bin/python bench/bench_engine.py [--runs N] [--pool N] [--gap-ms MS]

Measures execute() end to end for a hello world per runtime, sequentially, through a warm fast pool,
then python throughput with 4 concurrent callers. Warm-up runs are left out of the statistics.
"""

from __future__ import annotations

import argparse
import statistics
import time

import trio

from isol8rt import DockerIsol8, ExecutionRequest, Isol8Options

HELLO = {
    "python": "print('hello')",
    "bash": "echo hello",
    "node": "console.log('hello')",
    "bun": "console.log('hello')",
    "deno": "console.log('hello')",
}
TARGETS_P50 = {"python": 5.0, "bash": 3.0, "node": 15.0}
TARGET_PYTHON_P99 = 15.0
TARGET_THROUGHPUT = 150.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def summary(values: list[float]) -> str:
    return (f"n={len(values)} min={min(values):.2f} p50={percentile(values, .5):.2f} "
            f"p90={percentile(values, .9):.2f} p99={percentile(values, .99):.2f} max={max(values):.2f} ms")


async def latency(engine: DockerIsol8, runtime: str, runs: int, warmup: int, gap_s: float) -> list[float]:
    request = ExecutionRequest(code=HELLO[runtime], runtime=runtime)
    samples = []
    for index in range(warmup + runs):
        if gap_s:
            await trio.sleep(gap_s)
        started = time.perf_counter()
        result = await engine.execute(request)
        elapsed = (time.perf_counter() - started) * 1000
        assert result.exit_code == 0 and result.stdout == "hello\n", result
        if index >= warmup:
            samples.append(elapsed)
    return samples


async def throughput(engine: DockerIsol8, callers: int, seconds: float) -> tuple[float, list[float]]:
    request = ExecutionRequest(code=HELLO["python"], runtime="python")
    done = 0
    samples: list[float] = []
    deadline = time.perf_counter() + seconds

    async def caller():
        nonlocal done
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            result = await engine.execute(request)
            samples.append((time.perf_counter() - started) * 1000)
            assert result.exit_code == 0
            done += 1

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(callers):
            nursery.start_soon(caller)
    return done / (time.perf_counter() - started), samples


async def main(args) -> None:
    runtimes = args.runtimes.split(",")
    async with DockerIsol8(Isol8Options(pool_size=args.pool, max_concurrent=16, network=args.network)) as engine:
        await engine.start(prewarm=runtimes)
        await trio.sleep(1)
        lines = []
        for runtime in runtimes:
            samples = await latency(engine, runtime, args.runs, 10, args.gap_ms / 1000)
            print(f"{runtime:7} warm  {summary(samples)}")
            target = TARGETS_P50.get(runtime)
            if target is not None:
                p50 = percentile(samples, .5)
                lines.append(f"{'PASS' if p50 <= target else 'FAIL'} warm {runtime} p50 {p50:.2f} ms <= {target} ms")
            if runtime == "python":
                p99 = percentile(samples, .99)
                lines.append(f"{'PASS' if p99 <= TARGET_PYTHON_P99 else 'FAIL'} warm python p99 {p99:.2f} ms "
                             f"<= {TARGET_PYTHON_P99} ms")
        if "python" in runtimes:
            await throughput(engine, 4, 1.0)  # warm-up
            rate, samples = await throughput(engine, 4, args.seconds)
            print(f"python  4 callers: {rate:.1f} runs/s, {summary(samples)}")
            lines.append(f"{'PASS' if rate >= TARGET_THROUGHPUT else 'FAIL'} python throughput {rate:.1f}/s "
                         f">= {TARGET_THROUGHPUT}/s with 4 callers")
        print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--pool", type=int, default=4)
    parser.add_argument("--gap-ms", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runtimes", default="python,bash,node,bun,deno")
    parser.add_argument("--network", default="none", choices=("none", "filtered"))
    trio.run(main, parser.parse_args())
