"""What a remote Docker endpoint adds per run: warm ``print(1)`` and cold ``execute()`` (a fresh
container: create, attach, start, run, remove) through the local unix socket, through a mutual-TLS front
on loopback (tests/docker/standins.py, as a ``tcp://...:2376`` daemon with ``DOCKER_TLS_VERIFY``), and
through ``ssh://`` (the tests' stand-in ssh, which runs ``docker system dial-stdio`` locally, so the cost
is the stdio hop and dial-stdio's own, not a network's), in alternating rounds of one process each.

    python bench/bench_remote.py [--rounds 3] [--runs 200] [--cold 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent



def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _measure(runs: int, cold: int) -> dict:
    from isol8rt import DockerIsol8, ExecutionRequest, Isol8Options

    request = ExecutionRequest(code="print(1)")
    warm, fresh = [], []
    async with DockerIsol8(Isol8Options(pool_size=1)) as engine:
        for index in range(runs + 10):
            started = time.perf_counter()
            await engine.execute(request)
            if index >= 10:
                warm.append((time.perf_counter() - started) * 1000)
    async with DockerIsol8(Isol8Options(pool_size=0, pool_strategy="secure")) as engine:
        for index in range(cold + 2):
            started = time.perf_counter()
            await engine.execute(request)
            if index >= 2:
                fresh.append((time.perf_counter() - started) * 1000)
    return {"warm": warm, "cold": fresh}


async def _round(transport: str, runs: int, cold: int) -> dict:
    import trio

    if transport != "tls":
        return await _measure(runs, cold)
    sys.path.insert(0, str(ROOT))
    from tests.docker.standins import make_certificates, serve_tls_front

    certificates = make_certificates(Path(tempfile.mkdtemp()))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_tls_front, certificates)
        os.environ.update(DOCKER_HOST=f"tcp://127.0.0.1:{port}", DOCKER_TLS_VERIFY="1",
                          DOCKER_CERT_PATH=str(certificates.client))
        result = await _measure(runs, cold)
        nursery.cancel_scope.cancel()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--cold", type=int, default=15)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        import trio

        print(json.dumps(trio.run(_round, args.one, args.runs, args.cold)))
        return
    sys.path.insert(0, str(ROOT))
    from tests.docker.standins import write_fake_ssh

    ssh, _ = write_fake_ssh(Path(tempfile.mkdtemp()), "bench-host")
    environments = {
        "unix": {},
        "tls": {},
        "ssh": {"DOCKER_HOST": "ssh://bench-host", "ISOL8RT_SSH_COMMAND": str(ssh)},
    }
    results: dict[str, dict[str, list[float]]] = {name: {"warm": [], "cold": []} for name in environments}
    for _ in range(args.rounds):
        for name, extra in environments.items():
            env = {**os.environ, **extra, "PYTHONPATH": str(ROOT)}
            done = subprocess.run([sys.executable, __file__, "--one", name, "--runs", str(args.runs),
                                   "--cold", str(args.cold)], capture_output=True, text=True, env=env, check=True)
            for kind, values in json.loads(done.stdout.splitlines()[-1]).items():
                results[name][kind] += values
    print(f"{'transport':10} {'warm p50':>9} {'warm p90':>9} {'cold p50':>9} {'cold p90':>9}   (ms)")
    for name, kinds in results.items():
        warm, cold = kinds["warm"], kinds["cold"]
        print(f"{name:10} {statistics.median(warm):9.2f} {_percentile(warm, .9):9.2f} "
              f"{statistics.median(cold):9.1f} {_percentile(cold, .9):9.1f}")


if __name__ == "__main__":
    main()
