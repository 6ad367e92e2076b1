"""Timeouts, memory, output caps: a program that misbehaves is stopped and reported, never hangs."""

from __future__ import annotations

import os
import time

import trio

from isol8rt import ExecutionRequest


async def test_timeout_kills_and_keeps_earlier_output(engine):
    code = "import time\nprint('before', flush=True)\ntime.sleep(10)\nprint('after')"
    started = time.monotonic()
    result = await engine.execute(ExecutionRequest(code=code, timeout_ms=1000))
    elapsed = time.monotonic() - started
    assert elapsed < 3, elapsed
    assert result.timed_out and result.exit_code == 137
    assert result.stdout == "before\n"
    assert "timed out after 1000 ms" in result.stderr


async def test_timeout_kills_the_whole_process_group(engine):
    # A child that would outlive its parent: the group kill takes both, so the run ends on time.
    code = "import subprocess\nsubprocess.Popen(['sleep', '30']).wait()"
    with trio.fail_after(10):
        result = await engine.execute(ExecutionRequest(code=code, timeout_ms=500))
    assert result.timed_out


async def test_oom_is_flagged(make_engine):
    async with make_engine(memory_limit="64m", pool_size=0) as engine:
        result = await engine.execute(ExecutionRequest(code="x = bytearray(512 * 1024 * 1024)\nprint('survived')"))
    assert result.oom_killed and result.exit_code == 137 and result.stdout == ""
    assert "out of memory" in result.stderr


async def test_output_is_truncated_at_the_cap(make_engine):
    async with make_engine(max_output_size=1024, pool_size=0) as engine:
        result = await engine.execute(ExecutionRequest(code="print('x' * 10_000)"))
    assert result.truncated and result.truncated_stdout and not result.truncated_stderr
    assert len(result.stdout.encode()) < 2048
    assert result.exit_code == 0


def _rss_kb() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def test_a_flood_keeps_memory_bounded(make_engine):
    async with make_engine(max_output_size=1024 * 1024, pool_size=0) as engine:
        await engine.execute(ExecutionRequest(code="print(1)"))  # warm up imports and buffers first
        before = _rss_kb()
        code = "import sys\nchunk = 'y' * 65536\nfor _ in range(800):\n    sys.stdout.write(chunk)"  # 50 MiB
        result = await engine.execute(ExecutionRequest(code=code, timeout_ms=60_000))
        grown_mib = (_rss_kb() - before) / 1024
    assert result.truncated and result.exit_code == 0
    assert len(result.stdout) == 1024 * 1024
    assert grown_mib < 20, grown_mib


async def test_streaming_is_capped_too(make_engine):
    async with make_engine(max_output_size=4096, pool_size=0) as engine:
        text = ""
        async for event in engine.execute_stream(ExecutionRequest(code="print('z' * 100_000)")):
            if event.type == "stdout":
                text += event.data
    assert len(text) == 4096


async def test_multibyte_output_survives_chunking(engine):
    code = "import sys\nfor _ in range(3000):\n    sys.stdout.write('é✓𝄞')\n    sys.stdout.flush()"
    result = await engine.execute(ExecutionRequest(code=code))
    assert result.stdout == "é✓𝄞" * 3000
