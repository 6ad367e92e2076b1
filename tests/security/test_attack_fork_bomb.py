"""Fork bombs: the container's pids limit (64) stops them; the agent's reset kills what is left."""

from __future__ import annotations

import time

import trio

from isol8rt import ExecutionRequest

from .conftest import after_attack, stop_and_verify

PYTHON_BOMB = r"""
import os, time
forked = refused = 0
deadline = time.monotonic() + 2
while time.monotonic() < deadline:
    try:
        if os.fork() == 0:
            while True:          # every child forks forever too
                try:
                    os.fork()
                except OSError:
                    pass
        forked += 1
    except OSError:
        refused += 1
print('forked', forked, 'refused', refused, flush=True)
"""


async def test_python_fork_bomb(attack_engine):
    """``os.fork()`` in a loop, in every child too. Stopped by: the pids cgroup limit (fork fails with
    EAGAIN once 64 tasks exist); the run still ends on time; the reset kills the survivors (fast)."""
    started = time.monotonic()
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(code=PYTHON_BOMB, timeout_ms=10_000))
    assert time.monotonic() - started < 15
    assert attack.exit_code == 0 and not attack.timed_out, attack.stderr
    words = attack.stdout.split()
    assert words[0] == "forked" and words[2] == "refused", attack.stdout
    forked, refused = int(words[1]), int(words[3])
    assert forked < 64, "more processes than the pids limit"
    assert refused > 0, "the pids limit was never reached"
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)


async def test_bash_fork_bomb(attack_engine):
    """The classic ``:(){ :|:& };:``: the script returns at once while the bomb goes on in the background.
    Stopped by: the pids limit; the run ends when its main process does (background processes holding the
    pipes cannot hold it open); the reset's kill sweeps (ending with kill(-1) as the sandbox user) clear it."""
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(
            code=":(){ :|:& };:\nsleep 1\necho still-here", runtime="bash", timeout_ms=10_000))
    assert not attack.timed_out
    assert "fork" in attack.stderr and "Resource temporarily unavailable" in attack.stderr, attack.stderr[-500:]
    await after_attack(attack_engine, attack, "bash")
    await stop_and_verify(attack_engine, attack)
