"""SysV IPC objects and POSIX message queues left for the next run, with their owner changed to root and
their mode to 0 (IPC_SET), so that the sandbox user no longer seems to own them: a message in a queue,
a shared memory segment, a semaphore set.

Stopped by: the reset removes every IPC object as the sandbox user, who created them (the creator may
always remove), empties /dev/mqueue, and verifies that none is left."""

from __future__ import annotations

from .conftest import assert_same_container, run

LEAVE = r"""
import ctypes, os, struct
libc = ctypes.CDLL(None, use_errno=True)
shm = libc.shmget(0x5eed, 4096, 0o1000 | 0o666)
buffer = ctypes.create_string_buffer(256)
assert libc.shmctl(shm, 2, buffer) == 0                     # IPC_STAT
struct.pack_into('<II', buffer, 4, 0, 0)                    # owner uid and gid: root
struct.pack_into('<I', buffer, 20, 0)                       # mode: 0
assert libc.shmctl(shm, 1, buffer) == 0                     # IPC_SET
queue = libc.msgget(0x5eee, 0o1000 | 0o600)
message = struct.pack('<q', 1) + b'for the next run'
assert libc.msgsnd(queue, message, len(message) - 8, 0) == 0
assert libc.semget(0x5eef, 3, 0o1000 | 0o600) >= 0
libc.mq_open.restype = ctypes.c_int
assert libc.mq_open(b'/for-the-next-run', os.O_CREAT | os.O_RDWR, 0o600, None) >= 0
print(sum(len(open(f'/proc/sysvipc/{t}').read().splitlines()) - 1 for t in ('shm', 'msg', 'sem')), os.listdir('/dev/mqueue'))
"""

LOOK = r"""
import os
print(sum(len(open(f'/proc/sysvipc/{t}').read().splitlines()) - 1 for t in ('shm', 'msg', 'sem')), os.listdir('/dev/mqueue'))
"""


async def test_library(reuse_engine, strategy):
    attack = await run(reuse_engine, LEAVE)
    assert attack.stdout == "3 ['for-the-next-run']\n", attack.stderr
    later = await run(reuse_engine, LOOK)
    assert later.stdout == "0 []\n", later.stderr
    assert_same_container(strategy, attack, later)
