"""Processes that try to outlive their run and wait in a pooled container for the next one (someone
else's code, data and secrets). Stopped by: the agent's reset, which kills every sandbox-user process
and confirms none is left before the container may serve again (fast), or the container's removal
(secure). The reset's last resort is kill(-1) sent as the sandbox user."""

from __future__ import annotations

import trio

from isol8rt import ExecutionRequest

from .conftest import after_attack, stop_and_verify

DAEMON = r"""
import ctypes, os, signal, sys, time
read_end, write_end = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1):
            signal.signal(signum, signal.SIG_IGN)
        ctypes.CDLL(None).prctl(15, b'kworker/0:1', 0, 0, 0)   # PR_SET_NAME: look like a kernel thread
        os.chdir('/')
        os.write(write_end, str(os.getpid()).encode())
        for fd in (0, 1, 2, read_end, write_end):
            os.close(fd)
        while True:                     # wait for the next run, and leave traces if ever alive in it
            for path in ('/sandbox/.daemon-was-here', '/tmp/.daemon-was-here'):
                try:
                    open(path, 'w').write(str(os.getpid()))
                except OSError:
                    pass
            time.sleep(0.01)
    os._exit(0)
os.close(write_end)
pid = int(os.read(read_end, 32))
print('daemon', pid, os.getsid(pid) != os.getsid(0))
"""

HOPPERS = r"""
import os, signal
for _ in range(6):
    if os.fork() == 0:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:                     # a new pid all the time: a kill aimed at a listed pid misses
            try:
                if os.fork() != 0:
                    os._exit(0)
            except OSError:
                pass
print('hopping', flush=True)
"""

STOPPERS = r"""
import os, signal
for _ in range(6):
    if os.fork() == 0:
        os.setsid()
        while True:                     # stop every other sandbox-user process (a reset helper too), and hop
            try:
                os.kill(-1, signal.SIGSTOP)
            except OSError:
                pass
            try:
                if os.fork() != 0:
                    os._exit(0)
            except OSError:
                pass
import time
time.sleep(60)
"""


async def test_double_forked_daemon_ignoring_signals(attack_engine):
    """Double fork, setsid, ignore SIGTERM/SIGHUP/SIGINT, pose as a kernel thread, close its stdio and
    poll for the next run. Stopped by: the run ends when its main process exits (the daemon holds no
    pipe); the reset's SIGKILL cannot be ignored; the next run finds no process and no trace."""
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(code=DAEMON, timeout_ms=10_000))
    assert attack.exit_code == 0 and not attack.timed_out, attack.stderr
    assert attack.stdout.startswith("daemon ") and attack.stdout.endswith(" True\n"), attack.stdout
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)


async def test_pid_hopping_processes(attack_engine):
    """Processes that fork and exit in a loop, so a kill aimed at the pids seen a moment ago misses.
    Stopped by: the pids limit (they cannot multiply) and the reset's sweeps, ending with kill(-1) as
    the sandbox user, which reaches every one of them at once."""
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(code=HOPPERS, timeout_ms=10_000))
    assert attack.stdout == "hopping\n", attack.stderr
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)


async def test_processes_that_stop_everyone_else(attack_engine):
    """Hoppers that send SIGSTOP to every process they may signal, hoping to freeze the reset's kill(-1)
    helper (it runs as the sandbox user) before it fires. Stopped by: the timeout (the run's own process
    is frozen too), root's SIGKILL sweeps (SIGKILL ends stopped processes) and a bounded reset: a reset
    that cannot verify retires the container instead of hanging the pool."""
    with trio.fail_after(40):
        attack = await attack_engine.execute(ExecutionRequest(code=STOPPERS, timeout_ms=2000))
    assert attack.timed_out
    # Recycled or retired are both safe here; what matters is that nothing survived into the next run.
    await after_attack(attack_engine, attack, "python", recycled=False)
    await stop_and_verify(attack_engine, attack)
