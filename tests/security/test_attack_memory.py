"""Memory and swap bombs: the memory cgroup (512m, with memory-swap equal to it, so no swap at all) stops
them; the OOM killer takes user processes (oom_score_adj 1000), not the agent."""

from __future__ import annotations

import json
import time

import trio

from isol8rt import ExecutionRequest
from isol8rt.docker import DockerClient

from .conftest import after_attack, stop_and_verify

LIMIT = 512 * 1024 * 1024

MEMORY_BOMB = r"""
chunks = []
while True:
    chunks.append(bytearray(16 * 1024 * 1024))   # zero-filled: every page is touched
"""

SWAP_BOMB = r"""
import json, os, subprocess, sys
# A child touches 1 GiB, twice the limit: with any swap allowed it could page some of it out and live.
child = subprocess.run([sys.executable, '-c',
                        'chunks = [bytearray(32 << 20) for _ in range(32)]\nprint("survived")'],
                       capture_output=True, text=True)
cg = '/sys/fs/cgroup/memory/'
def read(name):
    with open(cg + name) as file:
        return file.read()
stat = dict(line.split() for line in read('memory.stat').splitlines())
with open('/proc/swaps') as swaps:
    swap_devices = swaps.read().splitlines()[1:]
print(json.dumps({
    'child': child.returncode, 'child_out': child.stdout,
    'limit': int(read('memory.limit_in_bytes')), 'memsw_limit': int(read('memory.memsw.limit_in_bytes')),
    'memsw_peak': int(read('memory.memsw.max_usage_in_bytes')), 'swap': int(stat['swap']),
    'total_swap': int(stat['total_swap']), 'oom_kills': int(read('memory.oom_control').split()[-1]),
}))
"""


async def test_memory_bomb_is_oom_killed(attack_engine):
    """Allocate and touch memory until something gives. Stopped by: the memory cgroup; the result says
    so (``oom_killed``, exit 137, a note on stderr) well before the timeout; the container is fine."""
    started = time.monotonic()
    with trio.fail_after(60):
        attack = await attack_engine.execute(ExecutionRequest(code=MEMORY_BOMB, timeout_ms=20_000))
    assert attack.oom_killed and not attack.timed_out
    assert attack.exit_code == 137
    assert "out of memory" in attack.stderr
    assert time.monotonic() - started < 20
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)


async def test_swap_bomb_gets_no_swap(attack_engine):
    """Touch twice the memory limit, hoping to spill into swap. Stopped by: ``memory_swap == memory``
    (the cgroup's memory+swap limit equals its memory limit): the allocator is OOM-killed, no page of the
    container is ever swapped, whether or not the host has swap."""
    with trio.fail_after(60):
        attack = await attack_engine.execute(ExecutionRequest(code=SWAP_BOMB, timeout_ms=20_000))
    assert attack.exit_code == 0, attack.stderr
    report = json.loads(attack.stdout)
    assert report["child"] == -9 and report["child_out"] == "", report  # SIGKILLed by the OOM killer
    assert report["oom_kills"] >= 1
    assert report["limit"] == LIMIT and report["memsw_limit"] == LIMIT
    assert report["memsw_peak"] <= LIMIT
    assert report["swap"] == 0 and report["total_swap"] == 0
    if attack_engine.options.pool_strategy == "fast":
        async with DockerClient() as client:
            host_config = (await client.inspect_container(attack.container_id)).host_config
        assert host_config["Memory"] == host_config["MemorySwap"] == LIMIT
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)
