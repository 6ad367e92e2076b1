"""What the fast pool's reset costs, and warm throughput, for two versions of isol8rt in one run.

    python bench/bench_reset.py                       this checkout, its images
    python bench/bench_reset.py --against DIR IMAGE   and another checkout (DIR, on PYTHONPATH) with its
                                                      own python image, in alternating rounds (repeatable)
    python bench/bench_reset.py --image IMAGE         this checkout with another python image (one built
                                                      from it under a tag of your own)

Each round is a fresh process of one version. It times, on one container, a warm ``print(1)`` (Run to
Exit) and the reset after it (Reset sent to the next Ready: kill, verdict, wipe, next interpreter warm),
each run followed by its reset, as the pool does; then closed-loop throughput with 1 and 4 callers on a
pool of 4. Only engine APIs both versions have are used (Container.create, operate, begin_reset, settle;
Container was called Sandbox before).
Rounds alternate between the versions so a noisy moment of the machine falls on both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _one_round(image: str | None, runs: int, seconds: float) -> dict:
    import trio

    from isol8rt import DockerIsol8, ExecutionRequest, Isol8Options
    from isol8rt.engine.plan import plan_execution
    try:
        from isol8rt.engine.container import Container
    except ImportError:   # a checkout from before the rename (engine/sandbox.py's Sandbox)
        from isol8rt.engine.sandbox import Sandbox as Container
    from isol8rt.runtimes import RUNTIMES

    options = Isol8Options(pool_size=4, max_concurrent=16, image=image)
    request = ExecutionRequest(code="print(1)")
    async with DockerIsol8(options) as engine:
        spec, configure = engine._container_for(RUNTIMES["python"], image or RUNTIMES["python"].image)
        container = await Container.create(engine._backend, spec, configure)
        run_ms, reset_ms = [], []
        try:
            plan = plan_execution(request, options, session=False)
            for index in range(runs + 10):
                op_id = container.next_id()
                started = time.perf_counter()
                async for _ in container.operate(plan.code.messages(op_id, stdin_open=False), op_id, 10.0):
                    pass
                ran = time.perf_counter()
                await container.begin_reset()
                await container.settle()
                if index >= 10:
                    run_ms.append((ran - started) * 1000)
                    reset_ms.append((time.perf_counter() - ran) * 1000)
        finally:
            await container.discard()
        await engine.start(prewarm=["python"])
        throughput = {}
        for callers in (1, 4):
            done = 0
            deadline = time.perf_counter() + seconds

            async def caller() -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    result = await engine.execute(request)
                    assert result.stdout == "1\n", result.stderr
                    done += 1

            started = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for _ in range(callers):
                    nursery.start_soon(caller)
            throughput[callers] = done / (time.perf_counter() - started)
    return {"run_ms": run_ms, "reset_ms": reset_ms, "throughput": throughput}


def _summary(rounds: list[dict]) -> dict:
    run_ms = [value for one in rounds for value in one["run_ms"]]
    reset_ms = [value for one in rounds for value in one["reset_ms"]]
    return {
        "run_p50": _percentile(run_ms, 0.5), "run_p99": _percentile(run_ms, 0.99),
        "reset_p50": _percentile(reset_ms, 0.5), "reset_p99": _percentile(reset_ms, 0.99),
        "runs_per_s_1": statistics.median(one["throughput"]["1"] for one in rounds),
        "runs_per_s_4": statistics.median(one["throughput"]["4"] for one in rounds),
        "samples": len(run_ms),
        "rounds_runs_per_s_1": [round(one["throughput"]["1"], 1) for one in rounds],
        "rounds_runs_per_s_4": [round(one["throughput"]["4"], 1) for one in rounds],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", nargs=2, metavar=("DIR", "IMAGE"), action="append", default=[],
                        help="another checkout and its image (repeatable)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--runs", type=int, default=200, help="runs (each with its reset) per round")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per throughput level per round")
    parser.add_argument("--round", action="store_true", help=argparse.SUPPRESS)  # one round, as a child
    parser.add_argument("--image", help="this checkout's python image (default: isol8rt:python)")
    args = parser.parse_args()
    if args.round:
        import trio

        print(json.dumps(trio.run(_one_round, args.image, args.runs, args.seconds)))
        return
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    versions = {"this": (here, args.image)}
    for index, (directory, image) in enumerate(args.against):
        versions["against" if len(args.against) == 1 else f"against{index + 1} {image}"] = (os.path.abspath(directory),
                                                                                          image)
    rounds: dict[str, list[dict]] = {name: [] for name in versions}
    for index in range(args.rounds):
        order = list(versions.items())[index % len(versions):] + list(versions.items())[:index % len(versions)]
        for name, (directory, image) in order:
            command = [sys.executable, os.path.abspath(__file__), "--round", "--runs", str(args.runs),
                       "--seconds", str(args.seconds)] + (["--image", image] if image else [])
            env = {**os.environ, "PYTHONPATH": directory}
            done = subprocess.run(command, env=env, cwd=directory, capture_output=True, text=True, check=True)
            rounds[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"round {index + 1} {name}: done", file=sys.stderr)
    report = {name: _summary(result) for name, result in rounds.items()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
