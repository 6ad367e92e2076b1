"""A leftover that waits for the next run's program and rewrites it: it keeps opening /sandbox/main.py
(the FIFO the next prestarted interpreter reads its program from) and writing its own code into it.

Stopped by: the reset kills every task of the sandbox user before it makes the next program's FIFO and
starts the next interpreter, and only after the pids cgroup confirms nothing else lives."""

from __future__ import annotations

from .conftest import assert_same_container, run

WRITER = r"""
import os, time
if os.fork() == 0:
    os.setsid()
    for fd in (0, 1, 2):
        os.close(fd)
    while True:
        try:
            fd = os.open('/sandbox/main.py', os.O_WRONLY | os.O_NONBLOCK)
            os.write(fd, b"print('PWNED')\n")
            os.close(fd)
        except OSError:
            pass
        time.sleep(0.0005)
time.sleep(0.1)
print('waiting')
"""


async def test_library(reuse_engine, strategy):
    attack = await run(reuse_engine, WRITER)
    assert attack.stdout == "waiting\n", attack.stderr
    for number in range(3):
        later = await run(reuse_engine, f"print('mine', {number})")
        assert (later.stdout, later.stderr) == (f"mine {number}\n", "")
        assert_same_container(strategy, attack, later)
