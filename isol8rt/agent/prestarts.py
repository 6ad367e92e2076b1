"""Interpreters started ahead of time, blocked on a FIFO at the program's path until a run hands them
its text (see protocol.Prestart); and the readiness announcement that waits for them to be warm.

A mixin of the agent: these methods share its state (``prestarted``, ``prestart_specs``, ``pending_ready``)
and its event loop.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time

from . import files
from .process import Child, kill_group, spawn
from .protocol import Prestart, Ready, Run

#: A program handed to a prestarted interpreter goes through its FIFO, enlarged to this size.
PIPE_SIZE = 1024 * 1024
_F_SETPIPE_SZ = 1031
# A prestarted interpreter is checked for warmth this often, and waited for at most this long.
WARM_POLL_S = 0.002
_WARM_TIMEOUT_S = 1.0


class Prestarted:
    """An interpreter started ahead of time, blocked reading its program from a FIFO (see Prestart)."""

    __slots__ = ("spec", "child", "fifo")

    def __init__(self, spec: Prestart, child: Child, fifo: int) -> None:
        self.spec = spec
        self.child = child
        self.fifo = fifo

    def matches(self, run: Run) -> bool:
        spec = self.spec
        return (run.code is not None and run.code_path == spec.code_path and run.argv == spec.argv
                and run.cwd == spec.cwd and run.env == spec.env and len(run.code) <= PIPE_SIZE)


class PrestartMixin:
    """Arming, using and discarding prestarted interpreters, and announcing readiness once they are warm."""

    def _announce(self, ready: Ready) -> None:
        """Send ``ready`` once every prestarted interpreter has opened its program (it is then blocked
        reading it: warm), or has died, or after a bound. A run handed over earlier would wait for the
        interpreter's start-up on its own clock."""
        self.pending_ready = ready
        self.warm_deadline = time.monotonic() + _WARM_TIMEOUT_S
        self._check_warm()

    def _check_warm(self) -> None:
        if self.pending_ready is None:
            return
        if time.monotonic() < self.warm_deadline and not all(map(self._is_warm, self.prestarted)):
            return
        self.send(self.pending_ready)
        self.pending_ready = None

    def _is_warm(self, prestarted: Prestarted) -> bool:
        """Whether the interpreter holds its program's FIFO open. Its /proc/PID/fd is readable to the sandbox
        user's file identity, which the agent takes on for the look."""
        path = os.path.join(self.config.sandbox, *files.split_path(self.config.sandbox, prestarted.spec.code_path))
        directory = f"/proc/{prestarted.child.pid}/fd"
        try:
            with files.as_user(self.config.uid, self.config.gid):
                return any(os.readlink(f"{directory}/{fd}") == path for fd in os.listdir(directory))
        except OSError:
            return True  # gone, or not inspectable: waiting for it would gain nothing

    def _arm_prestarts(self) -> None:
        self._discard_prestarts()
        self.prestart_stale = False
        for spec in self.prestart_specs:
            try:
                self.prestarted.append(self._prestart(spec))
            except (OSError, files.PathRefused) as exc:
                self.log("warning", f"cannot prestart {spec.argv[0]}: {exc}")

    def _prestart(self, spec: Prestart) -> Prestarted:
        parts = files.split_path(self.config.sandbox, spec.code_path)
        path = os.path.join(self.config.sandbox, *parts)
        with files.as_user(self.config.uid, self.config.gid):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            os.mkfifo(path, 0o644)
            # Held open read-write, so the interpreter's open() returns at once and its read() waits for
            # the program; closing it after writing the program gives the reader its EOF.
            fifo = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(fifo, _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass
        child = spawn(spec.argv, self._environment(spec.env), spec.cwd, self.identity)
        prestarted = Prestarted(spec, child, fifo)
        self.by_pid[child.pid] = prestarted
        return prestarted

    def _take_prestarted(self, request: Run) -> Child | None:
        if self.prestart_stale:
            return None
        for index, prestarted in enumerate(self.prestarted):
            if prestarted.matches(request):
                break
        else:
            return None
        del self.prestarted[index]
        self.by_pid.pop(prestarted.child.pid, None)
        code = request.code
        path = os.path.join(self.config.sandbox, *files.split_path(self.config.sandbox, request.code_path))
        staging = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.isol8rt")
        try:
            with files.as_user(self.config.uid, self.config.gid):
                files.write_file(self.config.sandbox, staging, code)
                # The interpreter may not have opened its program yet: then it opens this regular file,
                # which holds the same text. Either way it reads exactly `code`, and __file__ is a file.
                os.rename(staging, path)
            view = memoryview(code)
            while view:
                view = view[os.write(prestarted.fifo, view):]
        except OSError as exc:
            self.log("warning", f"prestarted process unusable: {exc}")
            self._kill_prestarted(prestarted)
            return None
        finally:
            if prestarted.fifo >= 0:
                os.close(prestarted.fifo)
                prestarted.fifo = -1
        # Anything else started before this run would now have seen another process come first.
        self.prestart_stale = True
        return prestarted.child

    def _drop_prestarted(self, prestarted: Prestarted) -> None:
        """Forget a prestarted process (it died, or was killed): its descriptors, and its FIFO, which must
        not stay behind as the program file: nobody would ever read it again."""
        if prestarted in self.prestarted:
            self.prestarted.remove(prestarted)
        for fd in (prestarted.fifo, prestarted.child.stdin, prestarted.child.stdout, prestarted.child.stderr):
            if fd >= 0:
                os.close(fd)
        prestarted.fifo = prestarted.child.stdin = prestarted.child.stdout = prestarted.child.stderr = -1
        path = os.path.join(self.config.sandbox, *files.split_path(self.config.sandbox, prestarted.spec.code_path))
        with files.as_user(self.config.uid, self.config.gid):
            try:
                if stat.S_ISFIFO(os.lstat(path).st_mode):
                    os.unlink(path)
            except FileNotFoundError:
                pass

    def _kill_prestarted(self, prestarted: Prestarted) -> None:
        kill_group(prestarted.child.pid)
        self.by_pid.pop(prestarted.child.pid, None)
        self._drop_prestarted(prestarted)

    def _discard_prestarts(self) -> None:
        for prestarted in list(self.prestarted):
            self._kill_prestarted(prestarted)
