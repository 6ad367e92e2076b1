"""Reading the small files of /proc, /sys and the cgroup hierarchy in few system calls.

Python's ``open()`` of such a file makes eight system calls (openat, fstat, ioctl, lseek twice, fstat again,
read, close) and builds two objects; a run and its reset read about fifteen of these files (the OOM counter
and network counters around the run, the cgroup's tasks, the SysV IPC and socket tables, the zygote's
status). ``read`` makes three or four: openat, read until the end, close.
"""

from __future__ import annotations

import os

#: Larger than any of the files read here in the common case (a socket table of a quiet container is a
#: few hundred bytes), so one read and the empty one that says it ended are the usual two.
_CHUNK = 64 * 1024


def read(path: str) -> bytes:
    """The whole content of ``path``. Raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, _CHUNK)
        if not data:
            return data
        # A seq_file (most of /proc) returns what fits in whole records: a short read is not the end.
        chunks = [data]
        while chunk := os.read(fd, _CHUNK):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
