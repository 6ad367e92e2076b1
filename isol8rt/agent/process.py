"""Starting a user process: fresh pipes, its own session and process group, the sandbox user's identity,
and nothing of the agent's left behind (descriptors, signal dispositions, supplementary groups).

The child is set up by CPython's C code (subprocess), not by Python code running after fork: on this
kind of VM every page a forked Python child touches is a costly copy-on-write fault, and a child running
Python touched enough of them to double the spawn time.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess

from .seccomp_filter import install_prepared


class Identity:
    """Who user processes run as, and the seccomp filter they install on themselves before exec."""

    __slots__ = ("uid", "gid", "filter")

    def __init__(self, uid: int, gid: int) -> None:
        self.uid = uid
        self.gid = gid
        #: A prepared filter (see seccomp_filter.prepare), or None.
        self.filter = None


class Child:
    """A started process and our ends of its three pipes (non-blocking, close-on-exec)."""

    __slots__ = ("pid", "stdin", "stdout", "stderr", "_popen")

    def __init__(self, popen: subprocess.Popen | None, stdin: int, stdout: int, stderr: int, pid: int = 0) -> None:
        self._popen = popen  # None: not started by us (a fork server's run: see fork_server.py)
        self.pid = popen.pid if popen is not None else pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr

    def reaped(self, status: int) -> None:
        """Tell the Popen object we collected its status ourselves, so it never waits for the pid again
        (the agent reaps every process in the container with wait4)."""
        if self._popen is not None:
            self._popen.returncode = os.waitstatus_to_exitcode(status)


# User code should be what the OOM killer takes first, never the agent. A child inherits its parent's
# oom_score_adj, and any process may raise its own (and lower it again down to where it started), so
# the agent raises its own just around the fork.
_OOM_ADJ = "/proc/self/oom_score_adj"


_oom_fd = -1


@contextlib.contextmanager
def _oom_first():
    global _oom_fd
    if _oom_fd < 0:
        try:
            _oom_fd = os.open(_OOM_ADJ, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            yield
            return
    os.write(_oom_fd, b"1000")
    try:
        yield
    finally:
        os.write(_oom_fd, b"0")


def spawn(argv: list[str], env: dict[str, str], cwd: str, identity: Identity, pass_fds: tuple[int, ...] = ()) -> Child:
    """Start ``argv`` as the sandbox user in a new session with fresh pipes.

    Raises OSError when the program cannot be started (not found, not executable, bad cwd).
    """
    if not argv:
        raise ValueError("empty argv")
    in_read, in_write = os.pipe2(os.O_CLOEXEC)
    out_read, out_write = os.pipe2(os.O_CLOEXEC)
    err_read, err_write = os.pipe2(os.O_CLOEXEC)
    as_other_user = os.getuid() != identity.uid
    try:
        with _oom_first():
            popen = subprocess.Popen(
                argv,
                stdin=in_read,
                stdout=out_write,
                stderr=err_write,
                cwd=cwd,
                env=env,
                close_fds=True,
                pass_fds=pass_fds,
                restore_signals=True,
                start_new_session=True,
                umask=0o022,
                user=identity.uid if as_other_user else None,
                group=identity.gid if as_other_user else None,
                extra_groups=[] if as_other_user else None,
                # CPython drops to the sandbox user before calling this, so the filter may forbid the
                # setuid family. It costs a Python call in the child (~1 ms): prestarted interpreters
                # pay it off the hot path. If the kernel refuses the filter, the spawn fails: no user
                # code ever runs unfiltered.
                preexec_fn=functools.partial(install_prepared, identity.filter) if identity.filter else None,
            )
    except subprocess.SubprocessError as exc:  # preexec_fn failed: the seccomp filter was refused
        for fd in (in_write, out_read, err_read):
            os.close(fd)
        raise PermissionError(1, f"the sandbox's seccomp filter could not be installed ({exc})") from None
    except BaseException:
        for fd in (in_write, out_read, err_read):
            os.close(fd)
        raise
    finally:
        for fd in (in_read, out_write, err_write):
            os.close(fd)
    for fd in (in_write, out_read, err_read):
        os.set_blocking(fd, False)
    return Child(popen, in_write, out_read, err_read)


def kill_group(pid: int, signum: int = signal.SIGKILL) -> None:
    """Signal a run's whole process group (its leader's pid is the group id)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)
