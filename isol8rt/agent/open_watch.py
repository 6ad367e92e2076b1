"""A wake-up for the moment a prestarted interpreter opens its program FIFO (see program_fifo.py).

A Ready waits until the interpreters it announces are warm (blocked in the open of their program), and
the core looks at them every few milliseconds (prestarts.WARM_POLL_S) until they are. An inotify watch
on each FIFO (IN_OPEN, once) makes the epoll loop wake the moment one is opened, so the look that finds
it warm comes at once rather than up to a poll later: the reset's Ready, and a Configure's, leave
sooner. The watch only wakes the loop; warmth is still what /proc says (program_fifo.is_warm), so an
open by anyone else (no user process lives while interpreters are armed) would cost a look, nothing more.

Without inotify (the call fails, or libc has none) the core's polling alone does it, as before.
"""

from __future__ import annotations

import ctypes
import os

_IN_OPEN = 0x00000020
_IN_DONT_FOLLOW = 0x02000000
_IN_ONESHOT = 0x80000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC


class OpenWatch:
    """One inotify descriptor for every FIFO watched; readable whenever one of them was opened."""

    __slots__ = ("fd", "_add_watch")

    def __init__(self, fd: int, add_watch) -> None:
        self.fd = fd
        self._add_watch = add_watch

    @classmethod
    def create(cls) -> OpenWatch | None:
        """The watch, or None where inotify is not to be had."""
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            init, add_watch = libc.inotify_init1, libc.inotify_add_watch
        except (OSError, AttributeError):
            return None
        init.argtypes, init.restype = (ctypes.c_int,), ctypes.c_int
        add_watch.argtypes, add_watch.restype = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32), ctypes.c_int
        fd = init(_IN_NONBLOCK | _IN_CLOEXEC)
        return None if fd < 0 else cls(fd, add_watch)

    def watch(self, path: str) -> bool:
        """Wake on the next open of ``path`` (not following a symlink); False if the kernel refused."""
        return self._add_watch(self.fd, os.fsencode(path), _IN_OPEN | _IN_ONESHOT | _IN_DONT_FOLLOW) >= 0

    def drain(self) -> None:
        """Read what woke us: which FIFO does not matter, the core looks at them all."""
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass
