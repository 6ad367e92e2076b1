"""Tar-bomb style uploads through a request's ``files``: thousands of files and a large one within the
limits, and more than the sandbox can hold. The agent writes them into /sandbox (a tmpfs, charged to the
container's memory) before the program starts; the reset removes them before the container is reused."""

from __future__ import annotations

import time

import pytest
import trio

from isol8rt import InvalidRequest, ExecutionRequest, Isol8Error

from .conftest import after_attack, stop_and_verify

MiB = 1024 * 1024

COUNT = r"""
import os
count = size = 0
for root, dirs, files in os.walk('/sandbox'):
    for name in files:
        count += 1
        size += os.path.getsize(os.path.join(root, name))
print(count, size)
"""


async def test_many_files_and_one_large_within_limits(attack_engine):
    """3000 small files in 30 nested directories plus one 64 MiB file. Held: all of it arrives, and the
    next run (in the recycled container, fast) starts from an empty /sandbox."""
    files: dict[str, str | bytes] = {f"dir{index % 30}/sub/file{index}.txt": f"{index}\n" for index in range(3000)}
    files["large.bin"] = b"\x5a" * (64 * MiB)
    small_bytes = sum(len(f"{index}\n") for index in range(3000))
    with trio.fail_after(90):
        attack = await attack_engine.execute(ExecutionRequest(code=COUNT, files=files, timeout_ms=30_000))
    assert attack.exit_code == 0, attack.stderr
    # The program file is in /sandbox too.
    count, size = map(int, attack.stdout.split())
    assert count == 3002 and size == small_bytes + 64 * MiB + len(COUNT.encode())
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)


async def test_more_than_the_sandbox_holds(make_engine, strategy):
    """40 MiB of files into a 32 MiB /sandbox (smaller than the memory limit). Stopped by: the request
    check, before any container is touched: the files cannot fit, so nothing is sent and nothing runs.
    (Files that pass the check and still meet a full /sandbox fail with ENOSPC: test_disk_fill.)"""
    async with make_engine(pool_strategy=strategy, pool_size=0, sandbox_size="32m") as engine:
        files = {"one.bin": b"\x01" * (20 * MiB), "two.bin": b"\x02" * (20 * MiB)}
        with trio.fail_after(30), pytest.raises(InvalidRequest, match="more than fit in this sandbox"):
            await engine.execute(ExecutionRequest(code="print('ran')", files=files, timeout_ms=10_000))
        await after_attack(engine, None, "python")
        await stop_and_verify(engine)


async def test_more_than_the_memory_limit_holds(make_engine, strategy):
    """80 MiB of files into a /sandbox whose tmpfs cap (512m, the default) is above the memory limit
    (64m here; with the defaults both are 512m, so the same happens at 512 MiB). The tmpfs pages are
    charged to the container's memory, so the limit is met before ENOSPC, while the agent is the one
    writing. Must be stopped by: a clean failure within the run's timeout whose message names the cause
    (space or memory). Without it the OOM killer takes the agent (PID 1) itself and the engine learns of
    it only when its writes to the dead container's stream fail (3 to 45 s later here), as "the
    attached stream broke"."""
    async with make_engine(pool_strategy=strategy, pool_size=0, memory_limit="64m") as engine:
        files = {f"part{index}.bin": bytes([index]) * (4 * MiB) for index in range(20)}
        message = ""
        started = time.monotonic()
        try:
            with trio.fail_after(20):
                attack = await engine.execute(ExecutionRequest(code="print('ran')", files=files, timeout_ms=10_000))
            message = attack.stderr
            assert attack.exit_code != 0 and attack.stdout == ""
        except trio.TooSlowError:
            pytest.fail("the run did not end within 20 s (its timeout is 10 s)")
        except Isol8Error as exc:
            message = str(exc)
        elapsed = time.monotonic() - started
        assert "space" in message or "memory" in message, f"unclear failure after {elapsed:.1f} s: {message}"
        await after_attack(engine, None, "python")
        await stop_and_verify(engine)
