"""Returning a container to the state of a never-used one between runs (the fast pool's recycling).

Each step is verified, not assumed: the reset reports which checks passed, and the engine discards a
container whose reset could not verify everything.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time

from . import files

_IPC_RMID = 0
_IPC_TABLES = ("shm", "msg", "sem")


def sandbox_pids(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real or effective uid is ``uid``."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as status:
                text = status.read()
        except OSError:
            continue  # gone meanwhile
        uid_line = state_line = b""
        for line in text.split(b"\n"):
            if line.startswith(b"Uid:"):
                uid_line = line
            elif line.startswith(b"State:"):
                state_line = line
        if b"Z" in state_line.split()[1:2] or not uid_line:
            continue
        real, effective = (int(value) for value in uid_line.split()[1:3])
        if uid in (real, effective):
            pids.append(int(name))
    return pids


def kill_all(uid: int, reap, deadline_s: float = 5.0) -> bool:
    """SIGKILL every process of ``uid`` until none is left; True when /proc confirms it.

    Usually nothing is left (a run's process has exited, the prestarted ones were killed already) and this
    costs one /proc scan. Survivors are killed from here (the agent holds CAP_KILL). If they keep coming
    (a fork bomb racing the sweeps), the last resort is ``kill(-1)`` from a process running as ``uid``:
    the kernel then signals every process that uid may signal in one pass.
    ``reap`` collects the zombies (we are their init).
    """
    if uid == 0:
        raise ValueError("refusing to kill every process of uid 0")
    deadline = time.monotonic() + deadline_s
    sweeps = 0
    while True:
        reap()
        pids = sandbox_pids(uid)
        if not pids:
            return True
        if time.monotonic() > deadline:
            return False
        if sweeps < 3:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        else:
            _kill_as(uid)
        sweeps += 1
        _wait_gone(pids, reap, until=time.monotonic() + 0.05)


def _kill_as(uid: int) -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            for _ in range(3):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    # It runs as the sandbox user, so user code could stop it (SIGSTOP): never wait on it for long.
    deadline = time.monotonic() + 1.0
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return
        time.sleep(0.0005)


def _wait_gone(pids: list[int], reap, until: float) -> None:
    """SIGKILL takes effect asynchronously: give the killed a moment to become zombies we can reap."""
    pending = set(pids)
    while pending and time.monotonic() < until:
        reap()
        for pid in list(pending):
            try:
                with open(f"/proc/{pid}/stat", "rb") as stat:
                    if stat.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                        continue
            except OSError:
                pending.discard(pid)
                continue
        if pending:
            time.sleep(0.0002)


def _remove_ipc_object(libc, table: str, ipc_id: int) -> bool:
    if table == "shm":
        return libc.shmctl(ipc_id, _IPC_RMID, None) == 0
    if table == "msg":
        return libc.msgctl(ipc_id, _IPC_RMID, None) == 0
    return libc.semctl(ipc_id, 0, _IPC_RMID) == 0


def _ipc_ids(table: str) -> list[int]:
    try:
        with open(f"/proc/sysvipc/{table}") as listing:
            rows = listing.read().splitlines()[1:]
    except OSError:
        return []
    return [int(row.split()[1]) for row in rows if len(row.split()) > 1]


def remove_ipc() -> int:
    """Remove every SysV shared memory segment, message queue and semaphore set; returns how many.

    The container has its own IPC namespace, so everything listed here was made inside it; the caller
    acts as the sandbox user, who owns them.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    return sum(_remove_ipc_object(libc, table, ipc_id) for table in _IPC_TABLES for ipc_id in _ipc_ids(table))


def ipc_objects() -> int:
    return sum(len(_ipc_ids(table)) for table in _IPC_TABLES)


def wipe_directories(directories: list[str], uid: int, gid: int) -> int:
    removed = 0
    with files.as_user(uid, gid):
        for directory in directories:
            removed += files.wipe(directory)
    return removed
