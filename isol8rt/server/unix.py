"""The local engine's listener: a Unix socket only its user can reach (see :mod:`isol8rt.local.paths`).

One engine per socket: the engine holds an exclusive lock (``flock``) on ``<socket>.lock`` for as long as
it runs. So a socket file without a lock holder is stale (its engine died) and is replaced, and a second
engine started on the same path, even at the same instant, is refused instead of taking the first's
socket away from it. The socket is bound under umask 0177 and then set to 0600, in a 0700 directory
made (or checked) first; its pid goes in ``<socket>.pid`` for ``isol8rt engine stop``.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

import trio

from ..local.paths import NotPrivate, check_socket, make_directory, pid_file


class EngineRunning(Exception):
    """Another engine already serves this socket."""


class UnixEndpoint:
    """The bound socket, its lock and its pid file; :meth:`close` removes what it made."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_fd: int | None = None
        self._inode: int | None = None

    def open(self) -> trio.SocketListener:
        path = self.path
        make_directory(path.parent)
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EngineRunning(f"an engine already serves {path} (`isol8rt engine stop` ends it)") from None
        self._lock_fd = fd
        try:
            return self._bind()
        except BaseException:
            self.close()
            raise

    def _bind(self) -> trio.SocketListener:
        path = self.path
        try:
            check_socket(path)
        except FileNotFoundError:
            pass
        else:
            # Ours, private, and no engine holds the lock: a dead engine's socket.
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(str(path))
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        self._inode = os.lstat(path).st_ino
        sock.listen(128)
        pid_file(path).write_text(f"{os.getpid()}\n")
        return trio.SocketListener(trio.socket.from_stdlib_socket(sock))

    def close(self) -> None:
        """Remove the socket (if it is still the one bound here) and the pid file, and let go of the lock."""
        if self._inode is not None:
            try:
                if os.lstat(self.path).st_ino == self._inode:
                    self.path.unlink()
                pid_file(self.path).unlink(missing_ok=True)
            except OSError:
                pass
            self._inode = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None


__all__ = ["EngineRunning", "NotPrivate", "UnixEndpoint"]
