"""Readings the agent takes around a run: the memory cgroup's OOM-kill counter and network byte counts."""

from __future__ import annotations

import os

from . import procfs

_OOM_CONTROL = (
    "/sys/fs/cgroup/memory/memory.oom_control",  # cgroup v1
    "/sys/fs/cgroup/memory.events",  # cgroup v2
)


def oom_kills() -> int:
    """How many processes the container's memory cgroup has OOM-killed so far (-1 if unknown)."""
    for path in _OOM_CONTROL:
        try:
            for line in procfs.read(path).split(b"\n"):
                key, _, value = line.partition(b" ")
                if key == b"oom_kill":
                    return int(value)
        except (OSError, ValueError):
            continue
    return -1


def network_bytes() -> tuple[int, int]:
    """Bytes received and sent on every interface but loopback, from /proc/net/dev."""
    rx = tx = 0
    try:
        lines = procfs.read("/proc/net/dev").split(b"\n")[2:]
    except OSError:
        return 0, 0
    for line in lines:
        name, _, counters = line.partition(b":")
        if name.strip() == b"lo":
            continue
        fields = counters.split()
        if len(fields) >= 9:
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx


_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def process_cpu_ms(pid: int) -> tuple[float, float]:
    """User and system CPU time a live process has used so far (for runs inside a session, which end
    without a wait status to carry rusage)."""
    try:
        fields = procfs.read(f"/proc/{pid}/stat").rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return int(fields[11]) * _TICK_MS, int(fields[12]) * _TICK_MS


def process_peak_kb(pid: int) -> int:
    try:
        for line in procfs.read(f"/proc/{pid}/status").split(b"\n"):
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
