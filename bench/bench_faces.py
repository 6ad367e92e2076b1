"""What the sync and asyncio faces add to a call, over the trio engine they drive.

    .venv/bin/python bench/bench_faces.py [--runs N]

A warm python hello world, three ways:

- the added time of each call: the face's call timed from the caller (outer) and the engine's own
  execute() timed inside the engine's trio thread (inner), for the same run; outer - inner is exactly what
  the face costs, free of the run-to-run noise of containers on a busy machine. The target (a sync
  execute() adds under 1 ms p50) is judged on this;
- end to end, alternating a trio call and a face call on the same engine and pool (noisy: a run's own
  time varies by milliseconds on a shared machine);
- a call that does nothing: the faces' round trip alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from isol8rt import DockerIsol8, ExecutionRequest, ExecutionResult
from isol8rt.aio import Isol8, _call
from isol8rt.sync import Sandbox

REQUEST = ExecutionRequest(code="print('hello')")
TARGET_ADDED_P50_MS = 1.0
WARMUP = 5


def line(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return (f"{name:<38} n={len(values):<4} p50={statistics.median(values):7.3f}  p90={p90:7.3f}  "
            f"min={ordered[0]:7.3f} ms")


class Timed:
    """Wraps an engine's execute() to time it from inside the engine's thread."""

    def __init__(self, engine: DockerIsol8) -> None:
        self.execute = engine.execute
        self.samples: list[float] = []
        engine.execute = self  # type: ignore[method-assign]  # the faces look it up per call

    async def __call__(self, request: ExecutionRequest, *, session_id: str | None = None) -> ExecutionResult:
        started = time.perf_counter()
        try:
            return await self.execute(request, session_id=session_id)
        finally:
            self.samples.append((time.perf_counter() - started) * 1000)


def sync_face(runs: int) -> dict[str, list[float]]:
    with Sandbox(pool_size=1) as sandbox:
        timed = Timed(sandbox.engine)

        async def trio_call() -> float:
            started = time.perf_counter()
            await timed.execute(REQUEST)
            return (time.perf_counter() - started) * 1000

        async def nothing() -> None:
            return None

        for _ in range(WARMUP):
            sandbox.execute(REQUEST)
        outer, trio_side = [], []
        timed.samples.clear()
        for _ in range(runs):
            trio_side.append(sandbox._portal.call(trio_call))
            started = time.perf_counter()
            result = sandbox.execute(REQUEST)
            outer.append((time.perf_counter() - started) * 1000)
            assert result.stdout == "hello\n"
        noop = []
        for _ in range(runs):
            started = time.perf_counter()
            sandbox._portal.call(nothing)
            noop.append((time.perf_counter() - started) * 1000)
        return {"outer": outer, "inner": list(timed.samples), "trio": trio_side, "noop": noop}


async def aio_face(runs: int) -> dict[str, list[float]]:
    async with Isol8(pool_size=1) as engine:
        timed = Timed(engine.engine)

        async def trio_call() -> float:
            started = time.perf_counter()
            await timed.execute(REQUEST)
            return (time.perf_counter() - started) * 1000

        async def nothing() -> None:
            return None

        for _ in range(WARMUP):
            await engine.execute(REQUEST)
        outer, trio_side = [], []
        timed.samples.clear()
        for _ in range(runs):
            trio_side.append(await _call(engine._portal, trio_call))
            started = time.perf_counter()
            await engine.execute(REQUEST)
            outer.append((time.perf_counter() - started) * 1000)
        noop = []
        for _ in range(runs):
            started = time.perf_counter()
            await _call(engine._portal, nothing)
            noop.append((time.perf_counter() - started) * 1000)
        return {"outer": outer, "inner": list(timed.samples), "trio": trio_side, "noop": noop}


def report(face: str, data: dict[str, Any]) -> float:
    added = [outer - inner for outer, inner in zip(data["outer"], data["inner"])]
    print(line(f"{face}: trio execute() (alternating)", data["trio"]))
    print(line(f"{face}: face execute()", data["outer"]))
    print(line(f"{face}: added per call (outer-inner)", added))
    print(line(f"{face}: no-op round trip", data["noop"]))
    return float(statistics.median(added))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="samples per measurement (default 200)")
    args = parser.parse_args()
    sync_data = sync_face(args.runs)
    aio_data = asyncio.run(aio_face(args.runs))
    print("python hello world through a warm fast pool (ms)")
    sync_added = report("sync", sync_data)
    aio_added = report("asyncio", aio_data)
    verdict = "ok" if sync_added < TARGET_ADDED_P50_MS else "OVER TARGET"
    print(f"sync execute() adds {sync_added:.3f} ms p50 over the trio call (target < {TARGET_ADDED_P50_MS}: "
          f"{verdict}); asyncio adds {aio_added:.3f} ms")


if __name__ == "__main__":
    main()
