"""Returning a container to the state of a never-used one between runs (the fast pool's recycling).

The reset does not look for known leftovers; it removes every kind at once and then asks the kernel
whether anything is left:

- Tasks: ``kill(-1, SIGKILL)`` with the sandbox user's effective uid reaches every thread of every
  process of that uid in one pass under the kernel's task-list lock, whatever its state, session or
  process group; a fork racing it either comes before (and its child is killed) or is refused. The
  verdict comes from the container's pids cgroup (:mod:`.census`): nothing but the agent's and the
  proxy's own tasks may be left, and the kernel's count must agree.
- Files: /sandbox, /tmp, /dev/shm and /dev/mqueue are emptied, and each directory gets back the owner,
  mode and extended attributes (POSIX ACLs are extended attributes too) it had when the agent started
  (:mod:`.baseline`).
- SysV IPC objects are removed; sockets, open files and locks die with the tasks that held them, unless
  in flight in a unix socket nobody holds, which the baseline's comparison looks for.

Each verdict is reported by name in the Ready that ends the reset; the engine retires a container whose
reset could not verify every one, so a container with anything left is never handed out again. Which
verdicts a Ready names, and the order of the reset's steps (sweep, the proxy's part, inspection, the
next interpreters), is the core's (core/machine.py); :func:`sweep` and :func:`inspect` are its I/O.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import time
from collections.abc import Callable

from . import files, procfs
from .baseline import Baseline, restore_directory, socket_inodes, stray_sockets
from .census import Census, thread_ids
from .core.events import Inspected, Swept

_IPC_RMID = 0
_IPC_TABLES = ("shm", "msg", "sem")

#: How often the settling loop looks again while killed tasks are on their way out.
_POLL_S = 0.0002
#: Every this many rounds of a reset that has not settled, ``kill(-1)`` goes out again.
_KILL_AGAIN_EVERY = 8


def signal_every_task_of(uid: int, signum: int = signal.SIGKILL) -> None:
    """Send ``signum`` to every process whose real or saved uid is ``uid``, in one kernel pass.

    As the container's init, the agent takes the sandbox user's uid as its *effective* uid only: its real
    and saved uids stay 0, so during the call no process of the sandbox user may signal the agent, and
    the way back to root stays open. (Its effective capabilities, CAP_KILL among them, are off while the
    effective uid is not 0, so the signal reaches the sandbox user's processes and, with the real uid 0,
    root's; in the container root runs nothing but the agent, which the kernel never signals for
    ``kill(-1)``, being PID 1.)

    Anywhere else (the agent run on a host by tests) that would reach every root process of the host, so
    a short-lived child takes the uid whole instead and signals from there.
    """
    if uid == 0:
        raise ValueError("refusing to signal every process of uid 0")
    if os.getpid() != 1:
        _signal_from_child(uid, signum)
        return
    os.setresuid(0, uid, 0)
    try:
        with contextlib.suppress(ProcessLookupError):  # ESRCH: nothing of that uid to signal
            os.kill(-1, signum)
    finally:
        os.setresuid(0, 0, 0)


def _signal_from_child(uid: int, signum: int) -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signum)
        finally:
            os._exit(0)
    # It runs as the sandbox user, so user code could stop it (SIGSTOP): never wait on it for long.
    deadline = time.monotonic() + 1.0
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return
        time.sleep(_POLL_S)


def kill_all(uid: int, reap: Callable[[], None], census: Census | None, keep: Callable[[], set[int]],
             deadline_s: float = 5.0) -> bool:
    """Kill every task of the sandbox user and wait until the kernel confirms none is left.

    ``keep`` gives the process ids whose threads may stay (the agent, the proxy); ``reap`` collects the
    zombies (the agent is their init). True when the census settled: only kept tasks live and the
    cgroup's count agrees. Without a census (not a container's init) the answer comes from a scan of
    every thread in /proc, and only says that no task of ``uid`` is alive.
    """
    deadline = time.monotonic() + deadline_s
    signal_every_task_of(uid)
    rounds = 0
    while True:
        reap()
        if census is None:
            strangers = set(sandbox_tasks(uid))
            settled = not strangers
        else:
            strangers, settled = _strangers(census, keep())
        if settled:
            return True
        if time.monotonic() > deadline:
            return False
        # The agent holds CAP_KILL: it may kill any task itself (a signal to any thread kills its process).
        for tid in strangers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(tid, signal.SIGKILL)
        rounds += 1
        if rounds % _KILL_AGAIN_EVERY == 0:
            signal_every_task_of(uid)
        time.sleep(_POLL_S)


def _strangers(census: Census, keep: set[int]) -> tuple[set[int], bool]:
    """The tasks to kill (neither the agent's nor the proxy's), and whether the census has settled: every
    live task is kept, and the kernel's count (zombies included) is just those."""
    tasks = census.tasks()
    count = census.count()
    # Listed after the cgroup was read: a thread the proxy started meanwhile is kept, not killed.
    kept = set().union(*(thread_ids(pid) for pid in keep))
    settled = tasks <= kept and (count is None or count == len(tasks))
    # A task that ended between the reads has no thread group any more: nothing to kill.
    strangers = {tid for tid in tasks - kept if _thread_group(tid) not in (None, *keep)}
    return strangers, settled


def _thread_group(tid: int) -> int | None:
    try:
        for line in procfs.read(f"/proc/{tid}/status").split(b"\n"):
            if line.startswith(b"Tgid:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def sandbox_tasks(uid: int, proc: str = "/proc") -> list[int]:
    """Thread ids of every live thread whose real or effective uid is ``uid``: every thread of every
    process, so a process whose main thread has ended (a zombie leader with live threads) is found."""
    found = []
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            tids = os.listdir(f"{proc}/{pid}/task")
        except OSError:
            continue  # gone meanwhile
        for tid in tids:
            try:
                text = procfs.read(f"{proc}/{pid}/task/{tid}/status")
            except OSError:
                continue
            fields = dict(line.split(b":", 1) for line in text.split(b"\n") if b":" in line)
            if fields.get(b"State", b"").split()[:1] == [b"Z"] or b"Uid" not in fields:
                continue  # a zombie thread holds nothing; its process is reaped with it
            real, effective = (int(value) for value in fields[b"Uid"].split()[:2])
            if uid in (real, effective):
                found.append(int(tid))
    return found


def _remove_ipc_object(libc, table: str, ipc_id: int) -> bool:
    if table == "shm":
        return libc.shmctl(ipc_id, _IPC_RMID, None) == 0
    if table == "msg":
        return libc.msgctl(ipc_id, _IPC_RMID, None) == 0
    return libc.semctl(ipc_id, 0, _IPC_RMID) == 0


def _ipc_ids(table: str) -> list[int]:
    try:
        rows = procfs.read(f"/proc/sysvipc/{table}").splitlines()[1:]
    except OSError:
        return []
    return [int(row.split()[1]) for row in rows if len(row.split()) > 1]


def remove_ipc() -> tuple[int, int]:
    """Remove every SysV shared memory segment, message queue and semaphore set; returns how many went
    and how many are left.

    The container has its own IPC namespace, so everything listed here was made inside it; the caller
    acts as the sandbox user, who created them (and so may remove them, whatever owner and mode they
    were given since). Most resets find none: then the one listing is the answer (it is read after
    every task of the sandbox user is gone, so nobody is left to make one), and the tables are read
    once instead of twice.
    """
    listed = [(table, ipc_id) for table in _IPC_TABLES for ipc_id in _ipc_ids(table)]
    if not listed:
        return 0, 0
    libc = ctypes.CDLL(None, use_errno=True)
    removed = sum(_remove_ipc_object(libc, table, ipc_id) for table, ipc_id in listed)
    return removed, ipc_objects()


def ipc_objects() -> int:
    return sum(len(_ipc_ids(table)) for table in _IPC_TABLES)


def wipe_directories(directories: list[str], uid: int, gid: int) -> int:
    """Empty each directory as the sandbox user; returns how many entries went. The directories' own
    metadata is put back first (see :func:`.baseline.restore_directory`): a directory made read-only
    could not be emptied otherwise."""
    removed = 0
    with files.as_user(uid, gid):
        for directory in directories:
            removed += files.wipe(directory)
    return removed


def sweep(uid: int, gid: int, directories: list[str], baseline: Baseline, census: Census | None,
          reap: Callable[[], None], keep: Callable[[], set[int]]) -> Swept:
    """The reset's first part, in this order: every task of the sandbox user killed (and the kernel asked
    whether any is left), SysV IPC removed, each directory given back its first metadata, then emptied."""
    # No task of the sandbox user lives; with a census, the kernel's count says nothing else does.
    settled = kill_all(uid, reap, census, keep)
    with files.as_user(uid, gid):
        ipc_removed, ipc_left = remove_ipc()
        ipc_clean = ipc_left == 0
        for directory, wanted in baseline.directories.items():
            if wanted is not None:
                restore_directory(directory, wanted)
    files_removed = wipe_directories(directories, uid, gid)
    return Swept(settled=settled, counted=census is not None, ipc_removed=ipc_removed, ipc_clean=ipc_clean,
                 files_removed=files_removed)


def inspect(baseline: Baseline, shared_network: bool, proxy_pid: int, proxy_uid: int,
            own_sockets: frozenset[int] = frozenset(), deadline_s: float = 1.0) -> Inspected:
    """The reset's last look: the directories against their record, and the sockets nobody but a user
    task could hold (so none should exist once the tasks are gone), judged only in the container's own
    network namespace (see baseline.py for why these tables). ``own_sockets``: inodes of sockets the
    agent's other processes hold (its fork server's end of their control socket).

    A unix socket sent over itself and then closed is a garbage cycle that the kernel collects only
    when some unix socket is next closed: closing one of ours asks for that collection, which then
    runs in the background; so this looks again for a little while before it calls anything left."""
    differences = baseline.directory_differences()
    deadline = time.monotonic() + deadline_s
    while True:
        leftovers: list[str] = []
        if not shared_network:
            held = baseline.sockets | socket_inodes() | own_sockets
            if proxy_pid:
                with files.as_user(proxy_uid, proxy_uid):
                    held |= socket_inodes(proxy_pid)
            leftovers += stray_sockets(held)
        if not leftovers or time.monotonic() > deadline:
            return Inspected(differences=differences, leftovers=leftovers)
        for end in socket.socketpair():
            end.close()
        time.sleep(0.002)
