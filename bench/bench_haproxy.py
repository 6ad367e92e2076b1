"""What HAProxy (deploy/haproxy.cfg) adds per request: the same requests straight to a node and through
HAProxy, alternating request by request in one run, on the tests' cluster (tests/deploy/cluster.py: two
`isol8rt serve` nodes on the local daemon, HAProxy on loopback with the shipped file).

Three requests, each one at a time on a kept-alive connection (latency, not throughput):
``GET /health`` (the proxy hop alone), a warm ``POST /execute`` of ``print(1)`` without a session, and one
in a session (HAProxy reads the body for its sessionId and looks the session up in its stick table; the
direct baseline goes to the node that holds the session). Direct runs without a session go to a node
picked at random, as HAProxy spreads them.

    python bench/bench_haproxy.py [--rounds 5] [--requests 200]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness.stats import percentile  # noqa: E402
from isol8rt import ExecutionRequest  # noqa: E402
from isol8rt.client import RemoteIsol8  # noqa: E402
from tests.deploy.cluster import Cluster  # noqa: E402
from tests.server.conftest import MASTER  # noqa: E402

SESSION = "bench-session"
KINDS = ("health", "execute", "session")
REQUEST = ExecutionRequest(code="print(1)")


async def _send(remote: RemoteIsol8, kind: str) -> float:
    """One request of ``kind``; its latency in ms."""
    started = time.perf_counter()
    if kind == "health":
        await remote._json("GET", "/health")
    elif kind == "execute":
        await remote.execute(REQUEST)
    else:
        # The body names the session, as the reference's clients send it: no query to route by.
        await remote._json("POST", "/execute", remote._envelope(REQUEST))
    return (time.perf_counter() - started) * 1000


async def _measure(cluster: Cluster, rounds: int, requests: int) -> dict[str, dict[str, list[float]]]:
    async with RemoteIsol8(cluster.url, MASTER, session_id=SESSION, keep_session=True) as remote:
        await remote.execute(ExecutionRequest(code="x = 1"))  # makes the session on the node it hashes to
    [holder] = [name for name, node in cluster.nodes.items()
                if SESSION in [s.id for s in await RemoteIsol8(node.url, MASTER).list_sessions()]]
    holder_url = cluster.nodes[holder].url
    every_node = [node.url for node in cluster.nodes.values()]
    results: dict[str, dict[str, list[float]]] = {kind: {"direct": [], "haproxy": []} for kind in KINDS}
    for _ in range(rounds):
        for kind in KINDS:
            session = SESSION if kind == "session" else None
            # Direct runs without a session go to a node picked at random, as HAProxy's hash spreads them (a
            # node's warm container is recycled between its runs: a fixed turn would favour one path).
            direct = every_node if kind == "execute" else [holder_url]
            remotes = {"direct": [RemoteIsol8(url, MASTER, session_id=session, keep_session=True) for url in direct],
                       "haproxy": [RemoteIsol8(cluster.url, MASTER, session_id=session, keep_session=True)]}
            try:
                for path in remotes:  # a kept-alive connection each, warmed up
                    for remote in remotes[path]:
                        for _ in range(5):
                            await _send(remote, kind)
                for _ in range(requests):  # alternating, so that the machine's load falls on both alike
                    for path, turn in remotes.items():
                        results[kind][path].append(await _send(random.choice(turn), kind))
            finally:
                for turn in remotes.values():
                    for remote in turn:
                        await remote.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200, help="per kind, per path, per round")
    args = parser.parse_args()
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="bench-haproxy-")))
    try:
        results = trio.run(_measure, cluster, args.rounds, args.requests)
    finally:
        cluster.stop()
    print(f"{args.rounds} rounds x {args.requests} requests per kind and path (ms)")
    print(f"{'request':10} {'direct p50':>10} {'haproxy p50':>11} {'added p50':>9} {'direct p90':>10} {'haproxy p90':>11}")
    for kind, paths in results.items():
        d50, h50 = percentile(paths["direct"], 50), percentile(paths["haproxy"], 50)
        d90, h90 = percentile(paths["direct"], 90), percentile(paths["haproxy"], 90)
        print(f"{kind:10} {d50:10.2f} {h50:11.2f} {h50 - d50:9.2f} {d90:10.2f} {h90:11.2f}")


if __name__ == "__main__":
    main()
