"""Counting every task in the container, from the kernel's own books: the container's pids cgroup.

A scan of ``/proc`` sees what user code lets it see: a process whose main thread has ended shows as a
zombie while its other threads run on, and a scan that skips zombies misses it. The pids cgroup cannot be
fooled that way. Its task list (``tasks`` on cgroup v1, ``cgroup.threads`` on v2) names every live
thread in the container, and ``pids.current`` counts every task the kernel has not released yet, zombies
included. User code can neither leave the cgroup (its files are read-only in the container) nor hide from
it.

Only meaningful where the agent is the container's init (PID 1 of its own PID namespace): elsewhere the
cgroup holds whatever else runs beside the agent, and :func:`find` returns None.
"""

from __future__ import annotations

import os

from . import procfs

_ROOT = "/sys/fs/cgroup"


class Census:
    """The task list and task count of one cgroup directory."""

    __slots__ = ("directory", "_tasks", "_count")

    def __init__(self, directory: str, tasks_file: str) -> None:
        self.directory = directory
        self._tasks = os.path.join(directory, tasks_file)
        count = os.path.join(directory, "pids.current")
        self._count = count if os.path.exists(count) else None

    def tasks(self) -> set[int]:
        """Thread ids (as this PID namespace numbers them) of every live task in the cgroup."""
        return {int(line) for line in procfs.read(self._tasks).split()}

    def count(self) -> int | None:
        """Tasks the kernel still charges to the cgroup, zombies included (None without a pids controller)."""
        if self._count is None:
            return None
        return int(procfs.read(self._count))


def find(cgroup_file: str = "/proc/self/cgroup", root: str = _ROOT, pid: int | None = None) -> Census | None:
    """The census of the container this process is the init of, or None when there is none to be had (not
    PID 1 of a PID namespace, or no pids cgroup visible)."""
    pid = os.getpid() if pid is None else pid
    if pid != 1:
        return None
    try:
        with open(cgroup_file) as lines:
            entries = [line.rstrip("\n").split(":", 2) for line in lines if line.count(":") >= 2]
    except OSError:
        return None
    candidates = []
    for _hierarchy, controllers, path in entries:
        path = path.lstrip("/")
        if "pids" in controllers.split(","):  # cgroup v1: its own hierarchy, mounted at <root>/pids
            for directory in (os.path.join(root, "pids", path), os.path.join(root, "pids")):
                candidates.append((directory, "tasks"))
        elif controllers == "":  # cgroup v2: one unified hierarchy at <root>
            for directory in (os.path.join(root, path), root):
                candidates.append((directory, "cgroup.threads"))
    for directory, tasks_file in candidates:
        census = Census(directory, tasks_file)
        try:
            if pid in census.tasks():  # the cgroup this process really is in, seen from inside
                return census
        except (OSError, ValueError):
            continue
    return None


def thread_ids(pid: int, proc: str = "/proc") -> set[int]:
    """Every thread id of process ``pid`` (empty if it is gone)."""
    try:
        return {int(name) for name in os.listdir(f"{proc}/{pid}/task")}
    except (OSError, ValueError):
        return set()
