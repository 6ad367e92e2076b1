"""The program FIFO of a prestarted interpreter (see protocol.Prestart): made before the interpreter
starts, written when a run hands over its text, removed when the interpreter is dropped unused; and the
look at /proc that says whether the interpreter has opened it yet (is warm).

The core decides which interpreter is armed, taken or dropped (core/prestarts.py); this is the I/O.
"""

from __future__ import annotations

import fcntl
import os
import stat
from typing import Callable

from . import files
from .core.prestarts import PIPE_SIZE
from .process import Child, Identity, spawn
from .protocol import Prestart

_F_SETPIPE_SZ = 1031


class ProgramFifo:
    """Our end of an armed interpreter's program FIFO, and where it is."""

    __slots__ = ("fd", "path")

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def program_path(sandbox: str, code_path: str) -> str:
    return os.path.join(sandbox, *files.split_path(sandbox, code_path))


def prestart(spec: Prestart, sandbox: str, identity: Identity, watch: Callable[[str], object] | None = None,
             fork: Callable[[Prestart, Identity], Child] | None = None) -> tuple[Child, ProgramFifo]:
    """Make the FIFO at ``spec.code_path`` and start ``spec.argv`` (its env complete) blocked on it;
    ``watch`` is given the FIFO's path before the interpreter starts (see open_watch.py). ``fork``, when
    given, starts it instead of a fresh process (the fork server's, see fork_server.py).
    Raises OSError, ValueError (empty argv) or files.PathRefused (a spawn that fails leaves no FIFO behind)."""
    path = program_path(sandbox, spec.code_path)
    with files.as_user(identity.uid, identity.gid):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.mkfifo(path, 0o644)
        # Held open read-write, so the interpreter's open() returns at once and its read() waits for
        # the program; closing it after writing the program gives the reader its EOF.
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        if watch is not None:
            watch(path)  # after our own open, which is not the interpreter's
    fifo = ProgramFifo(fd, path)
    try:
        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass
    try:
        child = fork(spec, identity) if fork is not None else spawn(spec.argv, spec.env, spec.cwd, identity)
    except BaseException:
        remove(fifo, identity.uid, identity.gid)  # nobody would ever open it: not left as the program
        raise
    return child, fifo


def hand_over(fifo: ProgramFifo, code: bytes, sandbox: str, uid: int, gid: int) -> None:
    """Give the interpreter its program, and close our end of the FIFO (its EOF). Raises OSError or
    files.PathRefused (the interpreter is then unusable)."""
    staging = os.path.join(os.path.dirname(fifo.path), f".{os.path.basename(fifo.path)}.isol8rt")
    try:
        with files.as_user(uid, gid):
            files.write_file(sandbox, staging, code)
            # The interpreter may not have opened its program yet: then it opens this regular file,
            # which holds the same text. Either way it reads exactly `code`, and __file__ is a file.
            os.rename(staging, fifo.path)
        view = memoryview(code)
        while view:
            view = view[os.write(fifo.fd, view):]
    finally:
        fifo.close()


def is_warm(pid: int, fifo: ProgramFifo, uid: int, gid: int) -> bool:
    """Whether the interpreter holds its program's FIFO open. Its /proc/PID/fd is readable to the sandbox
    user's file identity, which the agent takes on for the look."""
    directory = f"/proc/{pid}/fd"
    try:
        with files.as_user(uid, gid):
            return any(os.readlink(f"{directory}/{fd}") == fifo.path for fd in os.listdir(directory))
    except OSError:
        return True  # gone, or not inspectable: waiting for it would gain nothing


def remove(fifo: ProgramFifo, uid: int, gid: int) -> None:
    """Close our end and remove the FIFO, which must not stay behind as the program file: nobody would
    ever read it again (unless a run's program has replaced it already)."""
    fifo.close()
    with files.as_user(uid, gid):
        try:
            if stat.S_ISFIFO(os.lstat(fifo.path).st_mode):
                os.unlink(fifo.path)
        except FileNotFoundError:
            pass
