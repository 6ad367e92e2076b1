"""What a never-used container looks like, recorded by the agent before any user code runs, and the
comparison that ends every reset: anything a run could change and a later run could see is either back
to this, or named as a difference (and the container is then retired).

Recorded: the owner, mode and extended attributes (POSIX ACLs among them) of each directory the reset
empties. Checked against it after a reset: those, the directories being empty, and no socket left that
neither the agent nor the proxy holds. Timestamps are not compared: every run writes its program into
/sandbox, so its mtime changes whatever happens, and no run can hide anything in one.

Why the unix table is the one that matters: once no user task lives (the census says so), a socket, an
open file or a file lock can outlive them only as a descriptor in flight in a unix socket's queue, held
by a unix socket that nobody holds: that unix socket is in the table. TCP sockets and /proc/locks are not
read: the kernel walks every TCP socket and every lock of the whole host to list them (about 5 ms for
each TCP table and 3 ms for the locks here, against 40 us for the unix table), and they add nothing the
task verdict and the unix table have not already said.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import NamedTuple

from . import procfs

#: The socket tables of the container's network namespace, and the column that holds each socket's inode;
#: each costs tens of microseconds (not TCP's: see the module's docstring).
_SOCKET_TABLES = (("unix", 6), ("udp", 9), ("udp6", 9), ("raw", 9), ("raw6", 9), ("netlink", 9))


class DirectoryState(NamedTuple):
    mode: int
    uid: int
    gid: int
    xattrs: tuple[tuple[str, bytes], ...]
    entries: tuple[str, ...]


def directory_state(path: str) -> DirectoryState | None:
    """The directory's metadata and entries as the agent sees them; None if it does not exist."""
    try:
        info = os.stat(path)
        names = sorted(os.listxattr(path))
        xattrs = []
        for name in names:
            with contextlib.suppress(OSError):  # removed meanwhile, or not readable to us
                xattrs.append((name, os.getxattr(path, name)))
        entries = tuple(sorted(os.listdir(path)))
    except FileNotFoundError:
        return None
    return DirectoryState(stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, tuple(xattrs), entries)


def restore_directory(path: str, wanted: DirectoryState) -> None:
    """Put the directory's mode and extended attributes back to ``wanted``, as far as the caller may (it
    acts as the sandbox user, who owns /sandbox and could change exactly these; root's sticky /tmp and
    /dev/shm it could not change at all). Whatever this cannot mend, the comparison reports."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_IMODE(info.st_mode) != wanted.mode:
        with contextlib.suppress(OSError):
            os.chmod(path, wanted.mode)
    kept = dict(wanted.xattrs)
    with contextlib.suppress(OSError):
        for name in os.listxattr(path):
            if name not in kept:
                with contextlib.suppress(OSError):
                    os.removexattr(path, name)
    for name, value in kept.items():
        with contextlib.suppress(OSError):
            if os.getxattr(path, name) != value:
                os.setxattr(path, name, value)


class Baseline:
    """The recorded state of a never-used container."""

    __slots__ = ("directories", "sockets")

    def __init__(self, directories: dict[str, DirectoryState | None], sockets: set[int]) -> None:
        self.directories = directories
        #: Sockets there before the agent started anything: the kernel's own (netlink), in every namespace.
        self.sockets = sockets

    @classmethod
    def take(cls, directories: tuple[str, ...] | list[str]) -> Baseline:
        return cls({directory: directory_state(directory) for directory in directories}, socket_table_inodes())

    def directory_differences(self) -> list[str]:
        """How each recorded directory differs from its record now (empty: none does)."""
        differences = []
        for path, wanted in self.directories.items():
            now = directory_state(path)
            if now == wanted:
                continue
            if now is None or wanted is None:
                differences.append(f"{path}: {'gone' if now is None else 'appeared'}")
                continue
            for field in DirectoryState._fields:
                if getattr(now, field) != getattr(wanted, field):
                    differences.append(f"{path}: {field} {getattr(now, field)!r}, was {getattr(wanted, field)!r}")
        return differences


def _socket_rows(proc: str = "/proc"):
    """(table, inode, row) of every socket in the network namespace's tables. Inode 0 is skipped: a
    socket no descriptor refers to any more (TIME_WAIT, orphaned while closing)."""
    for table, column in _SOCKET_TABLES:
        try:
            rows = procfs.read(f"{proc}/net/{table}").splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > column and int(fields[column]):
                yield table, int(fields[column]), row


def socket_table_inodes(proc: str = "/proc") -> set[int]:
    return {inode for _table, inode, _row in _socket_rows(proc)}


def stray_sockets(held: set[int], proc: str = "/proc") -> list[str]:
    """Sockets of the container's network namespace that ``held`` (the baseline's, and those the agent
    and the proxy have open) does not account for: once every user task is gone, one of these is left
    over (a socket still bound, or one in flight in a message that nobody can receive any more)."""
    return [f"{table} socket {row.decode(errors='replace').strip()}" for table, inode, row in _socket_rows(proc)
            if inode not in held]


def socket_inodes(pid: int | str = "self", proc: str = "/proc") -> set[int]:
    """Inodes of the sockets process ``pid`` has open (the caller must be allowed to read its fds)."""
    inodes = set()
    directory = f"{proc}/{pid}/fd"
    try:
        names = os.listdir(directory)
    except OSError:
        return inodes
    for name in names:
        with contextlib.suppress(OSError):
            target = os.readlink(f"{directory}/{name}")
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes
