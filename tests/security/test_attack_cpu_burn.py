"""CPU burns: the agent kills a run's whole process group at its timeout, the CPU quota (1 core) caps
what any number of burners get meanwhile, and the reset takes whatever escaped the group."""

from __future__ import annotations

import time

import trio

from isol8rt import ExecutionRequest

from .conftest import after_attack, stop_and_verify

ESCAPING_BURNERS = r"""
import os, signal
for _ in range(2):
    if os.fork() == 0:
        os.setsid()                      # out of the run's process group
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        while True:
            pass
print('burning', flush=True)
while True:
    pass
"""

QUOTA = r"""
import os, time
def usage():
    with open('/sys/fs/cgroup/cpuacct/cpuacct.usage') as file:
        return int(file.read())
start_ns, start = usage(), time.monotonic()
children = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        end = time.monotonic() + 2
        while time.monotonic() < end:
            pass
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
print((usage() - start_ns) / 1e9, time.monotonic() - start)
"""


async def test_busy_loop_past_the_timeout(attack_engine):
    """``while True: pass``. Stopped by: the agent's deadline (SIGKILL to the process group); the run
    reports a timeout promptly."""
    started = time.monotonic()
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(code="while True:\n    pass", timeout_ms=1500))
    elapsed = time.monotonic() - started
    assert attack.timed_out and attack.exit_code == 137
    assert "timed out after 1500 ms" in attack.stderr
    assert elapsed < 8, elapsed
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)


async def test_node_busy_loop_past_the_timeout(attack_engine):
    """The same in Node, whose event loop never gets a turn. Stopped by: the agent's deadline."""
    started = time.monotonic()
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(code="for (;;) {}", runtime="node", timeout_ms=1500))
    assert attack.timed_out and attack.exit_code == 137
    assert time.monotonic() - started < 8
    await after_attack(attack_engine, attack, "node")
    await stop_and_verify(attack_engine, attack)


async def test_burners_that_leave_the_process_group(attack_engine):
    """Burners that setsid() out of the run's process group and ignore SIGTERM/SIGHUP. Stopped by: the
    timeout still ends the run (its main process dies with the group); the escaped burners die in the
    reset (fast) or with the container (secure)."""
    started = time.monotonic()
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(code=ESCAPING_BURNERS, timeout_ms=1500))
    assert attack.timed_out and attack.stdout == "burning\n"
    assert time.monotonic() - started < 8
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)


async def test_three_burners_share_one_core(attack_engine):
    """Three processes burning CPU for 2 s on a 2-core machine. Stopped by: the container's CPU quota
    (cpuLimit 1.0): together they get about one core, never the machine."""
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(code=QUOTA, timeout_ms=15_000))
    assert attack.exit_code == 0, attack.stderr
    cpu_s, wall_s = map(float, attack.stdout.split())
    assert wall_s >= 2
    assert cpu_s <= wall_s * 1.15 + 0.1, (cpu_s, wall_s)
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)
