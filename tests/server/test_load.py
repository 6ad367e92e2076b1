"""1000 requests at concurrency 16 through an `isol8rt serve` process: every one answered correctly, no
container leaked, the server's memory flat. Bash `echo` keeps it inside CI's time on two cores (the run
itself is ~2 ms; what is measured is the server's path)."""

from __future__ import annotations

import pytest
import trio

from isol8rt import ExecutionRequest

from .conftest import engine_containers

TOTAL = 1000
CONCURRENCY = 16
WARMUP = 200


async def hammer(server, count: int) -> list[str]:
    failures: list[str] = []
    remaining = iter(range(count))

    async def worker(n: int) -> None:
        from isol8rt.client import RemoteIsol8

        async with RemoteIsol8(server.url, "test-master-key") as remote:
            for i in remaining:
                try:
                    result = await remote.execute(ExecutionRequest(runtime="bash", code=f"echo {n}-{i}"))
                    if result.stdout != f"{n}-{i}\n" or result.exit_code != 0:
                        failures.append(f"{i}: {result.stdout!r} {result.stderr!r}")
                except Exception as exc:  # noqa: BLE001 - collect, report all
                    failures.append(f"{i}: {exc!r}")

    async with trio.open_nursery() as nursery:
        for n in range(CONCURRENCY):
            nursery.start_soon(worker, n)
    return failures


@pytest.mark.load
async def test_1000_requests_at_concurrency_16(spawn_server):
    server = spawn_server("--prewarm", "bash", "--pool-size", "4", "--max-concurrent", "8",
                          "--key-concurrency", "0")
    engine_ids = server.engine_ids()
    assert await hammer(server, WARMUP) == []
    rss_before = server.rss_kib()
    with trio.fail_after(150):
        failures = await hammer(server, TOTAL)
    rss_after = server.rss_kib()
    assert failures == [], failures[:5]
    # Bounded by the pool (warm + in flight), not by the number of requests.
    assert len(await engine_containers(engine_ids)) <= 4 + 8
    growth = (rss_after - rss_before) / 1024
    print(f"server RSS {rss_before / 1024:.1f} MiB -> {rss_after / 1024:.1f} MiB ({growth:+.1f} MiB)")
    assert growth < 24, f"server memory grew by {growth:.1f} MiB over {TOTAL} requests"
    assert server.stop() == 0
    assert await engine_containers(engine_ids) == []
