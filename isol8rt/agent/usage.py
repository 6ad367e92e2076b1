"""Readings the agent takes around a run: the memory cgroup's OOM-kill counter and network byte counts."""

from __future__ import annotations

_OOM_CONTROL = (
    "/sys/fs/cgroup/memory/memory.oom_control",  # cgroup v1
    "/sys/fs/cgroup/memory.events",  # cgroup v2
)


def oom_kills() -> int:
    """How many processes the container's memory cgroup has OOM-killed so far (-1 if unknown)."""
    for path in _OOM_CONTROL:
        try:
            with open(path, "rb") as file:
                for line in file:
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
        with open("/proc/net/dev", "rb") as file:
            lines = file.readlines()[2:]
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
