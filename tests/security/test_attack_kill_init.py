"""Signals against the agent (PID 1, root) and against everything: ``kill -9 1``, ``kill -STOP 1``,
``kill -9 -1``. Stopped by: uid separation (user code runs as uid 1000 without CAP_KILL; the agent's
real and saved uids stay 0 even while it acts as the sandbox user), and the kernel never delivering a
signal that init does not handle."""

from __future__ import annotations

import trio

from isol8rt import ExecutionRequest

from .conftest import after_attack, stop_and_verify

KILL_INIT = r"""
for sig in KILL STOP TERM INT SEGV; do
    kill -s $sig 1 2>/dev/null && echo "$sig delivered" || echo "$sig refused"
done
python3 - <<'EOF'
import errno, os, signal
for signum in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):
    try:
        os.kill(1, signum)
        print('python', signum.name, 'delivered')
    except PermissionError as exc:
        print('python', signum.name, errno.errorcode[exc.errno])
print('pid1 uid', open('/proc/1/status').read().split('Uid:')[1].split()[:3])
EOF
"""

KILL_ALL = r"""
sleep 300 &
sleeper=$!
python3 -c 'import time; time.sleep(300)' &
kill -9 -1
echo "kill -1 status $?"
wait $sleeper
echo "sleeper status $?"
echo "pid1 $(cut -d' ' -f2 /proc/1/stat)"
"""


async def test_kill_the_agent(attack_engine):
    """Send SIGKILL, SIGSTOP, SIGTERM, SIGINT and SIGSEGV to PID 1 from bash and from Python. Stopped by:
    EPERM for every one (no CAP_KILL, different uid); the agent answers the next run."""
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(code=KILL_INIT, runtime="bash", timeout_ms=10_000))
    assert attack.exit_code == 0, attack.stderr
    assert attack.stdout.splitlines() == [
        "KILL refused", "STOP refused", "TERM refused", "INT refused", "SEGV refused",
        "python SIGKILL EPERM", "python SIGSTOP EPERM", "python SIGTERM EPERM",
        "pid1 uid ['0', '0', '0']",
    ]
    await after_attack(attack_engine, attack, "bash")
    await stop_and_verify(attack_engine, attack)


async def test_kill_everything(attack_engine):
    """``kill -9 -1``: every process the sandbox user may signal. Stopped by: the kernel skips PID 1 and
    processes of other users, so only the attacker's own processes die (the shell that sends it survives,
    as Linux spares the sender); the agent reports the run and serves the next one."""
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(code=KILL_ALL, runtime="bash", timeout_ms=10_000))
    assert attack.exit_code == 0, attack.stderr
    assert attack.stdout.splitlines() == ["kill -1 status 0", "sleeper status 137", "pid1 (python3)"], attack.stdout
    await after_attack(attack_engine, attack, "bash")
    await stop_and_verify(attack_engine, attack)


async def test_kill_everything_from_a_child(attack_engine):
    """``kill(-1, SIGKILL)`` from a child process: the run's own main process dies with it. Stopped by:
    the same kernel rules; the agent sees its run end (SIGKILL, 137, no timeout) and is unharmed."""
    code = "import os, signal, subprocess, sys\nsubprocess.run([sys.executable, '-c', 'import os; os.kill(-1, 9)'])\nprint('survived')"
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(code=code, timeout_ms=10_000))
    assert (attack.exit_code, attack.timed_out, attack.stdout) == (137, False, "")
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)
