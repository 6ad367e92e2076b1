"""A leftover that hides from a scan of /proc/*: run 1 double-forks a process that starts two threads (one
reads every /proc/*/environ, one serves what it saw on an abstract unix socket), then ends only its main
thread with a raw SYS_exit. The process shows as a zombie (``Zl``) with live threads. A later run is given
a token in its environment; a third run asks the leftover for it.

Stopped by: the reset's kill(-1) as the sandbox user, which reaches every thread of every process of that
uid whatever its state, and a verdict from the container's pids cgroup, which counts every task (a scan
of /proc/* that skips zombies missed this one, and the token leaked)."""

from __future__ import annotations

import platform

import pytest

from isol8rt import ExecutionRequest

from .conftest import assert_same_container, run

TOKEN = "victim-token-6a1f93c0"
SYS_EXIT = {"x86_64": 60, "aarch64": 93}[platform.machine()]

LEFTOVER = rf"""
import ctypes, os, socket, threading, time
ready_read, ready_write = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        seen = set()
        def read_environments():
            while True:
                for name in os.listdir('/proc'):
                    try:
                        data = open(f'/proc/{{name}}/environ', 'rb').read()
                    except OSError:
                        continue
                    seen.update(item for item in data.split(b'\0') if item.startswith(b'TOKEN='))
                time.sleep(0.002)
        def serve():
            listener = socket.socket(socket.AF_UNIX)
            listener.bind('\0isol8rt-reuse-leak')
            listener.listen()
            while b'State:\tZ' not in open('/proc/self/status', 'rb').read():
                time.sleep(0.001)   # until the main thread is gone: the process is a zombie with live threads
            os.write(ready_write, b'1')
            while True:
                connection, _ = listener.accept()
                connection.sendall(b'leftover alive:' + b','.join(sorted(seen)))
                connection.close()
        for fd in (0, 1, 2):
            os.close(fd)
        threading.Thread(target=read_environments).start()
        threading.Thread(target=serve).start()
        ctypes.CDLL(None).syscall({SYS_EXIT}, 0)   # only the main thread ends: the process is a zombie with threads
    os._exit(0)
os.read(ready_read, 1)
print('armed')
"""

VICTIM = "import time\ntime.sleep(0.5)\nprint('victim done')"

ASK = r"""
import socket
client = socket.socket(socket.AF_UNIX)
try:
    client.connect('\0isol8rt-reuse-leak')
    print(client.recv(65536).decode())
except OSError as exc:
    print('nobody there:', type(exc).__name__)
"""


async def test_library(reuse_engine, strategy):
    attack = await run(reuse_engine, LEFTOVER)
    assert (attack.stdout, attack.exit_code) == ("armed\n", 0), attack.stderr
    victim = await run(reuse_engine, VICTIM, env={"TOKEN": TOKEN})
    assert victim.stdout == "victim done\n", victim.stderr
    asked = await run(reuse_engine, ASK)
    assert TOKEN not in asked.stdout + asked.stderr
    assert asked.stdout.startswith("nobody there:"), asked.stdout
    assert_same_container(strategy, attack, victim)
    assert_same_container(strategy, victim, asked)


@pytest.mark.parametrize("same_key", [False, True], ids=["two-keys", "one-key"])
async def test_server(two_keys, strategy, same_key):
    """Through the server. With two keys the victim never gets the attacker's container (tenant binding);
    with one key it does (fast), and the reset must stop the leftover."""
    attacker, victim_client = two_keys.first, (two_keys.first if same_key else two_keys.second)
    async with attacker, victim_client:
        attack = await attacker.execute(ExecutionRequest(code=LEFTOVER, timeout_ms=20_000))
        assert attack.stdout == "armed\n", attack.stderr
        await two_keys.settled()
        victim = await victim_client.execute(ExecutionRequest(code=VICTIM, env={"TOKEN": TOKEN}, timeout_ms=20_000))
        assert victim.stdout == "victim done\n", victim.stderr
        await two_keys.settled()
        asked = await attacker.execute(ExecutionRequest(code=ASK, timeout_ms=20_000))
    assert TOKEN not in asked.stdout + asked.stderr
    assert asked.stdout.startswith("nobody there:"), asked.stdout
    if same_key:
        assert_same_container(strategy, attack, victim)
    else:
        assert victim.container_id != attack.container_id, "another key's run got the attacker's container"
