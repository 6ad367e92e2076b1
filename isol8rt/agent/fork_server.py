"""The agent's end of the fork server (zygote.py): starting it, asking it for a run, and looking at it.

The zygote runs with the agent's effective identity (root, the container's capabilities) under a real
and saved uid of its own (:data:`ZYGOTE_UID`, see zygote.py for why), a child of the agent in a session
of its own, with no seccomp filter of the runs (it only forks) and a clean environment; the sandbox user
can neither signal, trace nor read it. The reset looks at it (:func:`ForkServer.intact`): gone, traced,
of other uids or grown threads means the container is not fit for another run, and the reset does not
verify (the host retires it). Its tasks are kept by the reset's sweep and census, as the agent's and the
proxy's are; its end of the control socket is held, as the agent's own sockets are.

A forked run is a grandchild of the zygote, which the kernel hands to the agent (the container's init,
or, outside a container, a child subreaper): the agent reaps it and reads its usage as for any child.
Asking for a run is synchronous (a request, then the pid back; about a millisecond), and the agent has
the pid before it goes back to its loop, so it cannot reap the run before it knows it.
"""

from __future__ import annotations

import array
import ctypes
import fcntl
import marshal
import os
import socket

from . import procfs
from .core.prestarts import PIPE_SIZE
from .process import Child, Identity, spawn
from .protocol import Prestart

ZYGOTE_MAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zygote.py")
#: The fork server's real and saved uid: neither the sandbox user's nor the proxy's (nor root, which the
#: reset's signal to every sandbox-user task reaches too). Nothing else in a container runs as it.
ZYGOTE_UID = 1002
#: How long the zygote may take to import its preloads, and to answer a request.
START_TIMEOUT_S = 60.0
FORK_TIMEOUT_S = 5.0
_PRIVATE_DIR = "/run/isol8rt"
_PR_SET_CHILD_SUBREAPER = 36
_F_SETPIPE_SZ = 1031


#: The container's variables a preloaded module reads at import (see ForkServer.start); none of them is a
#: run's: the container's environment holds no secrets (those are each run's own).
_IMPORT_TIME_ENV = ("MPLBACKEND",)


_STATUS_FIELDS = frozenset({b"State", b"TracerPid", b"Uid", b"Threads"})


#: The marshal format of a run's spec (4: Python 3.4 on; the zygote reads any).
SPEC_MARSHAL_VERSION = 4


class ForkServer:
    """A started zygote: its process, our end of its control socket, and what it looked like at start."""

    __slots__ = ("python", "child", "control", "threads", "alive", "socket_inode", "uids")

    def __init__(self, python: str, child: Child, control: socket.socket, socket_inode: int) -> None:
        #: The interpreter it was started as (argv[0] of the prestarts it stands in for).
        self.python = python
        self.child = child
        self.control = control
        self.threads = _threads(child.pid)
        self.uids = _uids(child.pid)
        #: Its end of the control socket (the reset's socket check counts it as the agent's).
        self.socket_inode = socket_inode
        #: False once the agent has reaped it.
        self.alive = True

    @classmethod
    def start(cls, python: str, preload: list[str], path: str, bpf: bytes) -> ForkServer:
        """Start the zygote with ``python`` (looked up on ``path``) and wait until it has imported
        ``preload``. Raises OSError (it could not start, or said why it could not preload)."""
        if os.getpid() != 1:  # a forked run must come back to the agent to be reaped (tests run it so)
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        socket_inode = os.fstat(theirs.fileno()).st_ino
        try:
            home = _private_home()
            env = {"PATH": path, "LANG": "C.UTF-8", "HOME": home, "MPLCONFIGDIR": home}
            # What the image sets to configure a preloaded module at its import, the zygote must see then:
            # a module configured at import keeps what it read in every run forked after (matplotlib
            # picks its backend from MPLBACKEND, the data image's figures backend).
            env.update({name: os.environ[name] for name in _IMPORT_TIME_ENV if name in os.environ})
            child = spawn([python, "-I", "-B", ZYGOTE_MAIN, str(theirs.fileno()), str(ZYGOTE_UID), *preload], env, "/",
                          Identity(os.getuid(), os.getgid()), pass_fds=(theirs.fileno(),))
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        for fd in (child.stdin, child.stdout, child.stderr):
            os.close(fd)  # the zygote writes nowhere but to the control socket
        child.stdin = child.stdout = child.stderr = -1
        ours.settimeout(START_TIMEOUT_S)
        try:
            # The runs' filter first (a socket buffer holds it while the zygote starts): it is laid out
            # once, there, rather than travelling with every run's spec.
            ours.sendall(len(bpf).to_bytes(4, "big") + bpf)
            answer = ours.recv(4096)
        except OSError as exc:
            answer = f"no answer: {exc}".encode()
        if answer == b"ok" and _threads(child.pid) != 1:  # a fork keeps one thread: another's locks stay held
            answer = f"it has {_threads(child.pid)} threads after its preloads; forks of it could deadlock".encode()
        if answer != b"ok":
            ours.close()
            _kill(child.pid)
            raise OSError(f"the fork server did not start: {answer.decode(errors='replace') or 'it exited'}")
        ours.settimeout(FORK_TIMEOUT_S)
        return cls(python, child, ours, socket_inode)

    def fork(self, spec: Prestart, identity: Identity) -> Child:
        """A run forked from the zygote as ``spec`` would be started (the sandbox user, its filter, env,
        cwd and argv), blocked opening its program. Raises OSError."""
        in_read, in_write = os.pipe2(os.O_CLOEXEC)
        out_read, out_write = os.pipe2(os.O_CLOEXEC)
        err_read, err_write = os.pipe2(os.O_CLOEXEC)
        spec_read, spec_write = os.pipe2(os.O_CLOEXEC)
        theirs = (in_read, out_write, err_write, spec_read)
        ours = (in_write, out_read, err_read)
        try:
            # marshal: the zygote is this same python3, and marshal.loads is C alone, where json.loads
            # runs Python functions whose pages each run would write to (see zygote._Laid).
            payload = marshal.dumps({"argv": list(spec.argv), "env": dict(spec.env), "cwd": spec.cwd,
                                     "code_path": spec.code_path, "uid": identity.uid, "gid": identity.gid},
                                    SPEC_MARSHAL_VERSION)
            if len(payload) > 65536:
                fcntl.fcntl(spec_write, _F_SETPIPE_SZ, min(PIPE_SIZE, len(payload)))
            # The pipe must hold it all (the run reads it only after the fork): one that does not fit
            # fails this fork (the run then starts a fresh interpreter), never blocks the agent.
            os.set_blocking(spec_write, False)
            view = memoryview(payload)
            while view:
                view = view[os.write(spec_write, view):]
            os.close(spec_write)
            spec_write = -1
            self.control.sendmsg([b"F"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _fd_array(theirs))])
            pid = int.from_bytes(_recv_exactly(self.control, 8), "big")
        except BaseException:
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
            if spec_write >= 0:
                os.close(spec_write)
        if not pid:
            for fd in ours:
                os.close(fd)
            raise OSError("the fork server could not fork (the container's process limit?)")
        for fd in ours:
            os.set_blocking(fd, False)
        return Child(None, in_write, out_read, err_read, pid=pid)

    def intact(self) -> str:
        """"" if the zygote is as it started: alive, not traced, of the agent's uid, no thread more;
        else what is wrong (the container is then unfit for another run)."""
        pid = self.child.pid
        try:
            text = procfs.read(f"/proc/{pid}/status")
        except OSError:
            return "the fork server is gone"
        # Only the four lines looked at (every reset reads this: the whole file as a dict cost more).
        fields = {}
        for line in text.split(b"\n"):
            key, _, value = line.partition(b":")
            if key in _STATUS_FIELDS:
                fields[key] = value.decode().strip()
        if fields.get(b"State", "")[:1] in ("Z", "X", "T", "t"):
            return f"the fork server is {fields[b'State']}"
        if fields.get(b"TracerPid", "0") != "0":
            return "the fork server is being traced"
        if fields.get(b"Uid", "").split() != self.uids:
            return "the fork server changed its uids"
        if fields.get(b"Threads") != str(self.threads):
            return "the fork server's threads changed"
        return ""

    def close(self) -> None:
        self.control.close()
        _kill(self.child.pid)


def _private_home() -> str:
    """A home for the zygote (matplotlib will not import without one, and writes its caches there): a
    root-owned directory in the agent's private tmpfs, which the sandbox user cannot enter, so that
    nothing a preload writes lands in /tmp (which the reset must find as it was) or in the runs' sight.
    The zygote imports as root (see zygote.py), so it can write there. Outside a container, "/"."""
    if not os.path.isdir(_PRIVATE_DIR):
        return "/"
    home = os.path.join(_PRIVATE_DIR, "fork-server")
    try:
        os.makedirs(home, mode=0o700, exist_ok=True)
    except OSError:
        return "/"
    return home


def _uids(pid: int) -> list[str]:
    """Real, effective, saved and file-system uid of ``pid`` (once it has taken its own: see zygote.py)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((line.split(":", 1)[1].split() for line in status if line.startswith("Uid:")), [])
    except OSError:
        return []


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def _fd_array(fds: tuple[int, ...]) -> bytes:
    return array.array("i", fds).tobytes()  # SCM_RIGHTS: native ints


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("the fork server closed its control socket")
        data += chunk
    return data
