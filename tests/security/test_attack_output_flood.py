"""Output floods: endless stdout/stderr, binary garbage, and output files that multiply what the host
must hold. The agent caps each stream at maxOutputSize and stops reading past its buffer high-water
mark; what the host receives must stay bounded whatever the program does."""

from __future__ import annotations

import time

import trio

from isol8rt import ExecutionRequest

from .conftest import after_attack, stop_and_verify

MiB = 1024 * 1024

BOTH_STREAMS = r"""
import os
chunk = b'A' * 65536
while True:
    os.write(1, chunk)
    os.write(2, chunk)
"""


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def test_endless_stdout_and_stderr(attack_engine):
    """Write to both streams as fast as possible until killed. Stopped by: the per-stream cap (1 MiB by
    default; the rest is dropped in the agent and the result says truncated) and the timeout; the host's
    memory does not follow the flood."""
    rss_before = _rss_kb()
    started = time.monotonic()
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(code=BOTH_STREAMS, timeout_ms=2000))
    elapsed = time.monotonic() - started
    grown_mib = (_rss_kb() - rss_before) / 1024
    assert attack.timed_out and attack.exit_code == 137
    assert attack.truncated_stdout and attack.truncated_stderr
    assert attack.stdout == "A" * MiB
    assert attack.stderr.startswith("A" * MiB) and len(attack.stderr) < MiB + 200  # + the timeout note
    assert elapsed < 10, elapsed
    assert grown_mib < 64, grown_mib
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)


async def test_binary_garbage_flood(attack_engine):
    """``cat /dev/urandom``: endless bytes that are mostly not UTF-8. Stopped by: the cap (counted in
    bytes before decoding) and the timeout; the result is still valid text."""
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(cmd="cat /dev/urandom", runtime="bash",
                                                              timeout_ms=1500))
    assert attack.timed_out and attack.truncated_stdout
    assert 0 < len(attack.stdout) <= MiB
    attack.stdout.encode("utf-8")  # decodable text, however garbled
    await after_attack(attack_engine, attack, "bash")
    await stop_and_verify(attack_engine, attack)


AMPLIFY = r"""
import os
with open('/sandbox/big.bin', 'wb') as file:
    file.write(os.urandom(1 << 20) * 24)
for index in range(9):
    os.symlink('big.bin', f'/sandbox/link{index}')
print('ready')
"""


async def test_output_files_cannot_multiply_the_sandbox(make_engine, strategy):
    """One 24 MiB file in a 32 MiB sandbox, asked for through ten output paths (the file and nine symlinks
    to it, all inside /sandbox, so each is a legitimate path). Should be stopped by: a bound on what a run's
    output files may total (at most the sandbox's size), the rest reported in fileErrors. Without one the
    host holds ten copies (240 MiB here; with the default 512m sandbox and more paths, gigabytes per run)
    in the engine's memory, whatever the container's memory limit says."""
    async with make_engine(pool_strategy=strategy, pool_size=0, sandbox_size="32m") as engine:
        paths = ["big.bin"] + [f"link{index}" for index in range(9)]
        rss_before = _rss_kb()
        with trio.fail_after(120):
            attack = await engine.execute(ExecutionRequest(code=AMPLIFY, output_paths=paths, timeout_ms=30_000))
        grown_mib = (_rss_kb() - rss_before) / 1024
        assert attack.stdout == "ready\n", attack.stderr
        returned = sum(len(data) for data in (attack.files or {}).values())
        refused = set(attack.file_errors or {})
        assert returned <= 32 * MiB, f"{returned / MiB:.0f} MiB of output files from a 32 MiB sandbox"
        assert set(attack.files or {}) | refused == set(paths)
        assert grown_mib < 128, grown_mib
        await after_attack(engine, attack, "python")
        await stop_and_verify(engine, attack)


async def test_sparse_output_file(make_engine, strategy):
    """A 256 MiB file that takes no space at all (``truncate``: a sparse file on the tmpfs) in a 32 MiB
    sandbox, asked for as one output path. Should be stopped by: the same bound on output files (by
    what the agent reads, not by the sandbox's size in blocks). Without one the host reads and holds the
    file's full apparent size; ``truncate -s 1T`` makes that unbounded until the run's deadline."""
    code = "with open('/sandbox/sparse.bin', 'wb') as file:\n    file.truncate(256 << 20)\nprint('ready')"
    async with make_engine(pool_strategy=strategy, pool_size=0, sandbox_size="32m") as engine:
        rss_before = _rss_kb()
        with trio.fail_after(120):
            attack = await engine.execute(ExecutionRequest(code=code, output_paths=["sparse.bin"], timeout_ms=30_000))
        grown_mib = (_rss_kb() - rss_before) / 1024
        assert attack.stdout == "ready\n", attack.stderr
        returned = sum(len(data) for data in (attack.files or {}).values())
        assert returned <= 32 * MiB, f"{returned / MiB:.0f} MiB read from a file that occupies nothing"
        assert "sparse.bin" in (attack.files or {}) or "sparse.bin" in (attack.file_errors or {})
        assert grown_mib < 128, grown_mib
        await after_attack(engine, attack, "python")
        await stop_and_verify(engine, attack)
