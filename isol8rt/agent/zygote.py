"""The fork server ("zygote"): a pristine Python interpreter that has imported the modules a runtime
image preloads, and then only ever forks. Started by the agent (fork_server.py) as
``python3 -I -B zygote.py FD UID MODULE...``; never runs user code itself.

Once it has imported its preloads it takes UID as its real and saved uid, keeping root as its effective uid (and so the capabilities
to make a run the sandbox user): a signal needs the sender's uid to be the target's real or saved one, so
neither the sandbox user nor the agent's own reset, which signals every process of the sandbox uid from a
real uid of root (reset.signal_every_task_of), can reach it; nor can the sandbox user trace or read it.

Its life: read the runs' seccomp filter from the control socket FD (the agent sends it first; it is the
container's, the same for every run, and is laid out once here), import the preloads, tell the agent
"ok" (or why not), then serve one
request at a time: a request is one byte and four descriptors (the run's stdin, stdout and stderr pipe
ends and the read end of a pipe carrying the run's spec). For each, it forks the run as its own
*sibling* (clone(2) with CLONE_PARENT, see :func:`_sibling_forker`): the run is the agent's child from
its first instruction, and the agent reaps it and reads its usage like any other child. The zygote
reports the run's pid on the control socket and serves the next request. Where that clone cannot be
made safely, it forks twice instead: the fork forks once more and exits at once, so the run is a
grandchild that the kernel hands to the container's init, the agent; the middle fork reports the
run's pid, and the zygote waits for it. One fork instead of two halves what a run costs the zygote
and the agent's wait for the pid (about 1.4 ms of CPU per run here).

What never reaches the zygote: any run's argv, environment, working directory or program. The spec is
read by the forked run from its own pipe after the fork, so the zygote's memory (which every run
inherits a copy of) holds nothing of any run: a run cannot find an earlier run's data in it.

The run, before it reads its program (the prestarted interpreter's FIFO, see program_fifo.py): its own
session, the run's pipes as 0/1/2 and every other descriptor closed, oom_score_adj 1000 (user code is
what the OOM killer takes first), umask 022, no supplementary groups, the sandbox gid and uid (real,
effective and saved), then the per-run seccomp filter (it may forbid the setuid family, so it comes after
the drop; if the kernel refuses it, the run exits 126 before any user code), the run's cwd (entered as
the sandbox user), environment, argv, fresh random state, fresh stdio and a fresh ``__main__``. It is
marked dumpable again, as an exec'd process would be, so it owns its /proc entries like any run.

What a program can observe that a fresh ``python3 main.py`` would not show (docs/performance.md):
``sys.modules`` holds the preloaded modules and what the zygote and this setup imported; ``sys.flags``
are those of ``-I -B`` (PYTHON* variables of the run's environment are not applied, except
PYTHONUNBUFFERED, which sets unbuffered stdio); ``/proc/self/cmdline`` and ``sys.orig_argv`` are the
zygote's; the hash seed is the zygote's (the same in every run of the container); the parent pid is 1,
as for any run.
"""

import errno
import marshal
import os
import socket
import sys

# The zygote stays one thread: a fork keeps only the calling thread, and the reset counts every task.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

#: Exit status of a run whose setup failed (nothing of the user's ran).
SETUP_FAILED = 126
_REQUEST = b"F"
_FDS = 4
_PR_SET_DUMPABLE = 4
_OPEN_MAX = os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") > 0 else 65536
#: libc's prctl, and seccomp_filter.install_prepared, looked up once by main (a run only calls them: an
#: import statement in a run would run importlib's Python code, and write its pages, in every run).
_prctl = None
_install_filter = None


def _preload(modules: list[str]) -> str:
    """Import ``modules`` (and what the runs' setup needs); an error message, or "" when all went."""
    import atexit  # noqa: F401  (a run's exit)
    import io  # noqa: F401  (the runs' stdio)
    import random  # noqa: F401  (reseeded in every run)
    import traceback  # noqa: F401  (a program's uncaught exception)
    import types  # noqa: F401  (the runs' __main__)

    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, here)
    try:
        from isol8rt.agent import seccomp_filter  # noqa: F401  (the runs' filter, prepared in main)
    finally:
        sys.path.remove(here)
    for name in modules:
        try:
            __import__(name)
        except BaseException as exc:  # an image's broken preload must not take the agent's Configure down
            return f"preloading {name}: {type(exc).__name__}: {exc}"
    try:  # matplotlib's font cache and the like: the import is what costs, the state is the module's
        import gc

        gc.collect()
        gc.freeze()  # the pages the runs share stay shared: a collection in a run touches none of them
    except AttributeError:
        pass
    return ""


# clone(2) on x86_64 Linux, and the flags glibc's fork() passes plus CLONE_PARENT.
_SYS_CLONE = 56
_SYS_GETTID = 186
_CLONE_PARENT = 0x00008000
_CLONE_CHILD_CLEARTID = 0x00200000
_CLONE_CHILD_SETTID = 0x01000000
_SIGCHLD = 17
#: Where glibc (x86_64, 2.26 on; Debian 12 has 2.36) keeps a thread's kernel tid in its struct pthread.
#: fork() has the kernel write the child's tid there (CLONE_CHILD_SETTID), and so must a clone of ours:
#: glibc's locks and pthread_kill read it. Checked against gettid() before it is relied on.
_PTHREAD_TID_OFFSET = 0x2D0


def _sibling_forker():
    """A function that forks this interpreter as the zygote's sibling: clone(2) with CLONE_PARENT, so
    the run's parent is the zygote's (the agent) and no middle fork is needed. It does what ``os.fork``
    does around the system call (PyOS_BeforeFork, and PyOS_AfterFork_Child or _Parent: the import lock,
    the GIL, ``os.register_at_fork`` callbacks) with the flags glibc's fork() passes. What glibc's fork()
    does besides is reset locks a second thread could have held and run pthread_atfork handlers for
    libraries' thread pools: the zygote has one thread (the reset checks it, and the BLAS pools are
    held to one thread above), so there are none. Returns the function (0 in the child, the pid in the
    parent; OSError when the kernel refuses), or None where it cannot be done safely (not x86_64 Linux
    with glibc, or glibc's struct pthread not laid out as expected): the zygote then forks twice."""
    import ctypes
    import platform

    if sys.platform != "linux" or platform.machine() != "x86_64":
        return None
    try:
        libc = ctypes.PyDLL(None, use_errno=True)  # PyDLL: the GIL stays held across fork, as os.fork holds it
        syscall = libc.syscall
        pthread_self = libc.pthread_self
        libc.gnu_get_libc_version  # noqa: B018 - glibc, whose layout the offset is
        api = ctypes.pythonapi
        before, after_parent, after_child = api.PyOS_BeforeFork, api.PyOS_AfterFork_Parent, api.PyOS_AfterFork_Child
    except (OSError, AttributeError):
        return None
    pthread_self.argtypes, pthread_self.restype = (), ctypes.c_void_p
    syscall.restype = ctypes.c_long
    syscall.argtypes = (ctypes.c_long, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                        ctypes.c_ulong)
    for function in (before, after_parent, after_child):
        function.argtypes, function.restype = (), None
    tid_address = pthread_self() + _PTHREAD_TID_OFFSET
    if ctypes.c_int.from_address(tid_address).value != syscall(_SYS_GETTID, 0, None, None, None, 0):
        return None
    flags = _CLONE_PARENT | _CLONE_CHILD_SETTID | _CLONE_CHILD_CLEARTID | _SIGCHLD

    def fork_sibling() -> int:
        before()
        pid = syscall(_SYS_CLONE, flags, None, None, tid_address, 0)
        if pid == 0:
            after_child()
            return 0
        error = ctypes.get_errno()
        after_parent()
        if pid < 0:
            raise OSError(error, os.strerror(error))
        return pid

    return fork_sibling


def _serve(control: socket.socket, fork_sibling) -> tuple[list[int], int]:
    """Fork a run per request; returns (only in a run) the four descriptors it was given, and the pid of
    the middle fork that made it (0: it was forked as the zygote's sibling, there is none)."""
    size = socket.CMSG_LEN(_FDS * 4)
    while True:
        try:
            data, ancillary, _flags, _address = control.recvmsg(1, size)
        except InterruptedError:
            continue
        if data != _REQUEST:
            raise SystemExit(0)  # the agent closed its end (or broke the protocol): nothing more to do
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += [int.from_bytes(payload[i:i + 4], sys.byteorder) for i in range(0, len(payload), 4)]
        if len(fds) != _FDS:
            for fd in fds:
                os.close(fd)
            control.sendall((0).to_bytes(8, "big"))
            continue
        if fork_sibling is not None:
            try:
                run = fork_sibling()
            except OSError as exc:
                run = -1
                if exc.errno in (errno.EINVAL, errno.ENOSYS, errno.EPERM):
                    fork_sibling = None  # the kernel (or a filter) will not have it: fork twice from now on
            if run == 0:
                control.close()
                return fds, 0
            if run > 0 or fork_sibling is not None:
                for fd in fds:
                    os.close(fd)
                control.sendall(max(run, 0).to_bytes(8, "big"))
                continue
        try:
            middle = os.fork()
        except OSError:
            middle = -1
        if middle == 0:
            middle = os.getpid()
            try:
                run = os.fork()
            except OSError:
                run = 0
                control.sendall((0).to_bytes(8, "big"))
                os._exit(0)
            if run == 0:
                control.close()
                return fds, middle
            control.sendall(run.to_bytes(8, "big"))
            os._exit(0)
        for fd in fds:
            os.close(fd)
        if middle < 0:
            control.sendall((0).to_bytes(8, "big"))
            continue
        os.waitpid(middle, 0)


def _become_the_run(fds: list[int], middle: int, prepared) -> tuple[str, dict]:
    """In the forked run: take on its pipes, identity, filter (``prepared``, once for every run, by
    main; None: no filter) and environment. Returns (code path, spec). Exits SETUP_FAILED, with a line
    on the run's stderr, if any of it fails."""
    stdin, stdout, stderr, spec_fd = fds
    os.setsid()
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
    try:
        chunks = []
        while chunk := os.read(spec_fd, 1 << 20):
            chunks.append(chunk)
        spec = marshal.loads(b"".join(chunks))  # written by the agent (fork_server.py), never by a user
        os.closerange(3, _OPEN_MAX)
        try:
            adj = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
            try:
                os.write(adj, b"1000")
            finally:
                os.close(adj)
        except OSError:
            pass
        os.umask(0o022)
        os.setgroups([])
        os.setresgid(spec["gid"], spec["gid"], spec["gid"])
        os.setresuid(spec["uid"], spec["uid"], spec["uid"])
        if os.getuid() != spec["uid"] or os.geteuid() != spec["uid"] or os.getgroups():
            raise PermissionError("the sandbox identity did not stick")
        _prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)  # its /proc is its own
        if prepared is not None:
            _install_filter(prepared)
        os.chdir(spec["cwd"])
    except BaseException as exc:
        os.write(2, f"isol8rt: the forked run could not be set up: {exc}\n".encode(errors="replace"))
        os._exit(SETUP_FAILED)
    spec["middle"] = middle
    return spec["code_path"], spec


def _wait_until_gone(pid: int, limit_s: float = 1.0) -> None:
    """Until ``pid`` has left /proc (exited and reaped). The run opens its program's FIFO only after its
    middle fork is gone, and that open is what tells the agent the run is warm: so no program ever sees,
    in /proc, the machinery that made it (a fresh interpreter has no such sibling). The middle fork exits
    right after reporting the run's pid and the zygote waits for it, so this is a few polls at most;
    bounded all the same, a run is never held back for long."""
    import time

    deadline = time.monotonic() + limit_s
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.0002)


class _Laid:
    """What the zygote lays out once, for every run it forks: each run would otherwise make it anew, and in
    a run every object made, and every line of Python run for the first time, writes to pages shared with
    the zygote (a copy-on-write fault each; a forked hello world made ~550 faults before, ~360 now).

    ``stdio``: the runs' sys.stdin, stdout and stderr, buffered and unbuffered (PYTHONUNBUFFERED). They
    are made while descriptors 0, 1 and 2 are a pipe, as they are in every run (a file object asks once,
    when made, whether its file can seek, and takes its buffer size from it); /dev/null is then put back
    under them, and each run dup2()s its own pipes there. ``modules``: the ids of the modules loaded here,
    how many and the last name, to tell at a run's exit whether it loaded any."""

    __slots__ = ("filter", "stdio", "modules", "module_count", "last_module")

    def __init__(self, prepared_filter) -> None:
        import io

        self.filter = prepared_filter
        read_end, write_end = os.pipe()
        for fd, target in ((read_end, 0), (write_end, 1), (write_end, 2)):
            os.dup2(fd, target)
        os.close(read_end)
        os.close(write_end)
        self.stdio: dict[bool, tuple] = {}
        for unbuffered in (False, True):
            buffering = 0 if unbuffered else -1
            self.stdio[unbuffered] = (
                io.TextIOWrapper(open(0, "rb", closefd=False), encoding="utf-8"),
                io.TextIOWrapper(open(1, "wb", buffering=buffering, closefd=False), encoding="utf-8",
                                 write_through=unbuffered),
                io.TextIOWrapper(open(2, "wb", buffering=buffering, closefd=False), encoding="utf-8",
                                 errors="backslashreplace", write_through=True),
            )
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        self.modules = frozenset(id(module) for module in sys.modules.values())
        self.module_count = len(sys.modules)
        self.last_module = next(reversed(sys.modules))

    def loaded_more(self) -> bool:
        """Whether sys.modules holds other modules than the zygote's (the run imported some), seen without
        touching the zygote's module objects: the dict keeps the order names were put in."""
        return len(sys.modules) != self.module_count or next(reversed(sys.modules)) is not self.last_module


def _take_environment(env: dict[str, str]) -> None:
    """os.environ, and the C library's environment that subprocesses inherit, become exactly ``env``.
    os.environ.clear() and update() run some forty Python functions of os and _collections_abc (their
    pages written as each runs); this sets CPython's os._Environ store and the C environment directly."""
    data = getattr(os.environ, "_data", None)
    if not isinstance(data, dict):  # not CPython's os._Environ
        os.environ.clear()
        os.environ.update(env)
        return
    for key in data:
        os.unsetenv(key)
    data.clear()
    encoding = sys.getfilesystemencoding()
    for key, value in env.items():
        key_bytes, value_bytes = key.encode(encoding, "surrogateescape"), value.encode(encoding, "surrogateescape")
        os.putenv(key_bytes, value_bytes)
        data[key_bytes] = value_bytes


def _run(code_path: str, spec: dict, laid: _Laid) -> None:
    """Become ``python3 code_path args...`` in this process, and run the program to its end."""
    import random
    import types

    _take_environment(spec["env"])
    sys.stdin, sys.stdout, sys.stderr = laid.stdio[bool(spec["env"].get("PYTHONUNBUFFERED"))]
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
    random.seed()
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()  # the global RandomState was seeded once, in the zygote: every run would repeat it
    sys.argv = [code_path] + list(spec["argv"][2:])
    sys.path.insert(0, os.path.dirname(code_path))
    main = types.ModuleType("__main__")
    main.__file__ = code_path
    main.__cached__ = None
    main.__annotations__ = {}
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    if spec["middle"]:
        _wait_until_gone(spec["middle"])
    with open(code_path, "rb") as program:  # the FIFO: blocks here, warm, until the agent hands it over
        source = program.read()
    code = compile(source, code_path, "exec")
    del source
    status = 0
    try:
        exec(code, main.__dict__)
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except BaseException as exc:  # as the interpreter reports it, without this file's frames
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        status = -2 if isinstance(exc, KeyboardInterrupt) else 1
    _finish(main, laid, status)


def _exit_status(code: object) -> int:
    """The status SystemExit(code) ends python3 with (a message goes to stderr, as python prints it)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except Exception:  # noqa: BLE001 - as the interpreter: an unprintable message is still exit 1
        pass
    return 1


def _finish(main, laid: _Laid, status: int) -> None:
    """End as python3 would, without tearing down every module the zygote loaded: that teardown writes
    to the pages every run shares with the zygote, each write a copy-on-write fault, and cost a forked
    hello world more than its whole run (run p50 10.8 ms forked against 8.0 ms fresh; 5.9 ms after).
    Kept: non-daemon threads are waited for, atexit handlers run, the program's globals and the modules
    it imported itself are released and a collection runs (an unclosed file is flushed and closed, as at
    any exit), stdio is flushed; a KeyboardInterrupt ends the process by SIGINT, as python3's does."""
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()
    import atexit
    import gc
    import types

    atexit._run_exitfuncs()
    main.__dict__.clear()
    # The modules the program imported itself (by identity: a zygote's module under another name is
    # the zygote's), newest first; none to look for when it imported none.
    if laid.loaded_more():
        for module in reversed([module for module in sys.modules.values() if id(module) not in laid.modules]):
            if module is not main and isinstance(module, types.ModuleType):
                module.__dict__.clear()
    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or broken stream: nothing more to write
            pass
    if status == -2:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(status)


def _receive_filter(control: socket.socket) -> bytes:
    """The runs' seccomp filter (BPF), which the agent sends first: a 4-byte length, then the program."""
    data = b""
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
        chunk = control.recv(65536)
        if not chunk:
            raise SystemExit(1)  # the agent went away before we began
        data += chunk
    return data[4:]


def main(argv: list[str]) -> None:
    control = socket.socket(fileno=int(argv[0]))
    bpf = _receive_filter(control)
    # Whatever a preload prints goes nowhere, and at once: a buffer left unwritten would be inherited by
    # every run and written into its output when it exits.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    problem = _preload(argv[2:])
    prepared = None
    if not problem and bpf:
        # Laid out once here, where a mistake is the Configure's, not each run's: a run only makes the
        # two prctl calls (and reads nothing of the program but this memory it shares).
        from isol8rt.agent import seccomp_filter

        try:
            prepared = seccomp_filter.prepare(bpf)
        except ValueError as exc:
            problem = f"the runs' seccomp filter: {exc}"
    global _prctl, _install_filter
    if not problem:
        import ctypes

        from isol8rt.agent import seccomp_filter

        _prctl = ctypes.CDLL(None, use_errno=True).prctl
        _install_filter = seccomp_filter.install_prepared
    sys.stdout.flush()
    sys.stderr.flush()
    # Its own real and saved uid only now: a preload may ask access() (which goes by the real uid) whether
    # its cache directory in root's private home is writable. Nothing can signal it before this anyway:
    # the agent waits for this answer, and the reset's signals come only after a run.
    uid = int(argv[1])
    if uid and os.geteuid() == 0:
        os.setresuid(uid, 0, uid)
    control.sendall((problem or "ok").encode()[:4000])
    if problem:
        raise SystemExit(1)
    fork_sibling = _sibling_forker()
    laid = _Laid(prepared)
    import gc

    # Everything made since the preloads' freeze joins it: a run's collections then pass over its own
    # objects only, and write to none of the pages it shares with the zygote.
    gc.freeze()
    fds, middle = _serve(control, fork_sibling)
    code_path, spec = _become_the_run(fds, middle, laid.filter)
    _run(code_path, spec, laid)


if __name__ == "__main__":
    main(sys.argv[1:])
