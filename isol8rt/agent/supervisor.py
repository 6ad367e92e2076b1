"""The agent: the container's init process, serving the engine over the container's stdin and stdout.

One thread, one epoll loop. Host messages arrive on fd 0; frames for the host leave on fd 1; user
processes are children whose pipes the loop watches; SIGCHLD arrives through a wakeup pipe. The agent is
PID 1, so it also reaps every orphan in the container.

A run costs the host one round trip: it sends :class:`~.protocol.Run` and gets back
:class:`~.protocol.Output` frames and one :class:`~.protocol.Exit`. Everything else (recycling the
container, starting the next interpreter) happens after the Exit is on its way.
"""

from __future__ import annotations

import errno
import os
import select
import selectors
import signal
import socket
import sys
import time

from . import census, files, network, reset, seccomp_filter, usage
from .baseline import Baseline, restore_directory, socket_inodes, stray_sockets
from .network import NetworkMixin
from .prestarts import WARM_POLL_S, PrestartMixin, Prestarted
from .process import Identity, kill_group, spawn
from .run import READ_SIZE, ActiveRun
from .session import SessionInterpreter, SessionMixin
from .protocol import (
    CHUNK_SIZE,
    PROTOCOL_VERSION,
    Configure,
    Done,
    Exit,
    Failed,
    FileData,
    FrameEncoder,
    GetFile,
    Log,
    NetworkConfig,
    NetworkPolicy,
    Output,
    Ping,
    Prestart,
    ProtocolError,
    PutFile,
    Ready,
    Reset,
    Run,
    Shutdown,
    Signal,
    Stdin,
    Usage,
    agent_decoder,
)

# Stop reading user output while this much is waiting for the host, so a flood cannot grow our memory.
_OUT_HIGH = 4 * 1024 * 1024
_OUT_LOW = 1024 * 1024
# A stand-in filter whose installation always fails, so nothing runs when the real one could not be prepared.
_REFUSE_TO_SPAWN = object()
_SANDBOX_PATH = "/sandbox/.local/bin:/sandbox/node_modules/.bin:/sandbox/.npm-global/bin:"
# After a session cell overruns its timeout, how long its KeyboardInterrupt has before SIGKILL.
_SESSION_INTERRUPT_GRACE_S = 1.0


class AgentConfig:
    __slots__ = ("sandbox", "uid", "gid", "wipe", "debug", "proxy_uid")

    def __init__(self, sandbox: str = "/sandbox", uid: int = 1000, gid: int = 1000,
                 wipe: tuple[str, ...] = ("/sandbox", "/tmp", "/dev/shm", "/dev/mqueue"), debug: bool = False,
                 proxy_uid: int = 1001):
        self.sandbox = sandbox
        self.uid = uid
        self.gid = gid
        self.wipe = wipe
        self.debug = debug
        self.proxy_uid = proxy_uid


class Agent(PrestartMixin, SessionMixin, NetworkMixin):
    """The agent: its state, its event loop and the run lifecycle; prestarts, sessions and filtered
    networking come from the mixins beside it."""

    def __init__(self, config: AgentConfig, in_fd: int = 0, out_fd: int = 1) -> None:
        self.config = config
        self.identity = Identity(config.uid, config.gid)
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.selector = selectors.EpollSelector()
        self.decoder = agent_decoder()
        self.encoder = FrameEncoder()
        self.out = bytearray()
        self.out_paused = False
        self.runs: dict[int, ActiveRun] = {}
        self.by_pid: dict[int, ActiveRun | Prestarted | SessionInterpreter] = {}
        self.pipe_owner: dict[int, ActiveRun] = {}
        self.prestart_specs: list[Prestart] = []
        self.prestarted: list[Prestarted] = []
        # Anything that could change what a prestarted interpreter would have seen at start-up (files
        # written, another process run) makes it stale: it is then discarded, never used.
        self.prestart_stale = False
        self.failed_puts: dict[int, Failed] = {}
        # The agent's own environment is the container's: the image's ENV plus what Docker adds. Never
        # secrets: those come with each run and are not in the container's config.
        self.base_env = {key: value for key, value in os.environ.items() if key not in ("HOME", "PWD", "OLDPWD")}
        self.network: NetworkConfig | None = None
        self.proxy: network.Proxy | None = None
        self.proxy_policy: NetworkPolicy | None = None
        # Runs waiting for the proxy: to be listening, or to confirm the policy a run asked for.
        self.deferred: list[Run] = []
        self.policy_pending = False
        self.network_failure: str | None = None
        self.sessions: dict[str, SessionInterpreter] = {}
        self.session_runs: dict[str, ActiveRun] = {}
        self.generation = 0
        self.stopping = False
        self.idle_timeout_s = 0.0
        self.last_heard = time.monotonic()
        self.pending_ready: Ready | None = None
        self.warm_deadline = 0.0
        #: The container as it was before any user code ran, and the kernel's count of its tasks; both
        #: taken when serving starts. A reset is judged against them.
        self.baseline: Baseline | None = None
        self.census: census.Census | None = None
        #: The container shares the host's network namespace (network "host"): its socket tables are the
        #: host's, and say nothing about this container.
        self.shared_network = False

    # ---------------------------------------------------------------------------------------- loop

    def serve(self) -> None:
        wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.signal(signal.SIGTERM, self._on_term)
        for fd in (self.in_fd, self.out_fd):
            os.set_blocking(fd, False)
        self.selector.register(self.in_fd, selectors.EVENT_READ, self._on_host_readable)
        self.selector.register(wake_read, selectors.EVENT_READ, lambda: self._on_wakeup(wake_read))
        self.baseline = Baseline.take(self.config.wipe)
        self.census = census.find()
        self.send(Ready(version=PROTOCOL_VERSION, generation=0, pid=os.getpid()))
        while not self.stopping or self.out:
            self._flush()
            if self.stopping and not self.out:
                break
            timeout = self._next_timeout()
            if self.pending_ready is not None:
                timeout = WARM_POLL_S if timeout is None else min(timeout, WARM_POLL_S)
            if self.idle_timeout_s > 0:
                idle_left = self.last_heard + self.idle_timeout_s - time.monotonic()
                timeout = idle_left if timeout is None else min(timeout, idle_left)
                timeout = max(0.0, timeout)
            for key, _mask in self.selector.select(timeout):
                key.data()
            self._enforce_deadlines()
            self._check_warm()
            if (self.idle_timeout_s > 0 and not self.runs
                    and time.monotonic() - self.last_heard >= self.idle_timeout_s):
                self.log("info", f"no word from the host for {self.idle_timeout_s:g} s: exiting")
                self.stopping = True
        self._kill_everything()

    def _on_term(self, signum, frame) -> None:
        self.stopping = True

    def _next_timeout(self) -> float | None:
        deadline = min((run.deadline for run in self.runs.values() if not run.ended), default=float("inf"))
        if deadline == float("inf"):
            return None
        return max(0.0, deadline - time.monotonic())

    def send(self, message) -> None:
        self.out += self.encoder.encode(message)

    def log(self, level: str, message: str) -> None:
        if self.config.debug or level in ("warning", "error"):
            self.send(Log(level=level, message=message))

    def _flush(self) -> None:
        if self.out:
            try:
                written = os.write(self.out_fd, self.out)
                del self.out[:written]
            except BlockingIOError:
                pass
            except BrokenPipeError:
                self.stopping = True
                self.out.clear()
        want_write = bool(self.out)
        registered = self.selector.get_map().get(self.out_fd) is not None
        if want_write and not registered:
            self.selector.register(self.out_fd, selectors.EVENT_WRITE, lambda: None)
        elif not want_write and registered:
            self.selector.unregister(self.out_fd)
        self._apply_backpressure()

    def _flush_blocking(self) -> None:
        """Write out everything queued for the host before going on (bulk file transfers)."""
        while self.out:
            self._flush()
            if self.out:
                select.select([], [self.out_fd], [], 1.0)

    def _apply_backpressure(self) -> None:
        if not self.out_paused and len(self.out) > _OUT_HIGH:
            self.out_paused = True
            for fd in self.pipe_owner:
                self.selector.unregister(fd)
        elif self.out_paused and len(self.out) < _OUT_LOW:
            self.out_paused = False
            for fd in self.pipe_owner:
                self.selector.register(fd, selectors.EVENT_READ, lambda fd=fd: self._on_pipe(fd))

    def _on_host_readable(self) -> None:
        try:
            data = os.read(self.in_fd, 256 * 1024)
        except BlockingIOError:
            return
        self.last_heard = time.monotonic()
        if not data:
            # The container's stdin closed: nobody can ever talk to us again.
            self.stopping = True
            self.selector.unregister(self.in_fd)
            return
        try:
            messages = self.decoder.feed(data)
        except ProtocolError as exc:
            self.log("error", f"protocol error from host: {exc}")
            self.stopping = True
            return
        for message in messages:
            self._dispatch(message)

    def _dispatch(self, message) -> None:
        kind = type(message)
        if kind is Run:
            self._admit_run(message)
        elif kind is Stdin:
            self._on_stdin(message)
        elif kind is Signal:
            run = self.runs.get(message.id)
            if run is not None and run.status is None:
                kill_group(run.child.pid, message.signum)
        elif kind is PutFile:
            self._put_file(message)
        elif kind is GetFile:
            self._get_file(message)
        elif kind is Configure:
            if message.user_filter:
                try:
                    self.identity.filter = seccomp_filter.prepare(message.user_filter)
                except (OSError, ValueError) as exc:
                    # Without its filter no user process may start: every spawn will fail loudly.
                    self.log("error", f"the per-run seccomp filter is unusable: {exc}")
                    self.identity.filter = _REFUSE_TO_SPAWN
            self.idle_timeout_s = message.idle_timeout_s
            self.shared_network = message.shared_network
            if message.network is not None and self.network is None:
                self._start_network(message.network)
            self.prestart_specs = list(message.prestart)
            self._arm_prestarts()
            self._announce(Ready(version=PROTOCOL_VERSION, generation=self.generation, pid=os.getpid(),
                                 reason="configured"))
        elif kind is Reset:
            detail, ready = self._reset()
            self.send(Done(id=message.id, detail=detail))
            self._announce(ready)
        elif kind is Ping:
            self.send(Done(id=message.id))
        elif kind is Shutdown:
            self.stopping = True

    # ---------------------------------------------------------------------------------------- runs

    def _start_run(self, request: Run) -> None:
        arrived = time.monotonic()
        if request.id in self.runs:
            self.send(Failed(id=request.id, message=f"run {request.id} is already running", kind="busy"))
            return
        failed = self.failed_puts.pop(request.id, None)
        if failed is not None:
            self.send(failed)
            return
        if request.session is not None:
            self._start_session_run(request, arrived)
            return
        child = self._take_prestarted(request)
        if child is None:
            self._discard_prestarts()
            if not self._prepare(request, write_code=True):
                return
            try:
                child = spawn(request.argv, self._environment(request.env), request.cwd, self.identity)
            except OSError as exc:
                # As a shell reports it: the run happened and failed, with 127 (not found) or 126.
                code = 127 if isinstance(exc, FileNotFoundError) else 126
                message = f"isol8rt: cannot run {request.argv[0]}: {exc.strerror or exc}\n"
                self.send(Output(id=request.id, fd=2, data=message.encode()))
                self.send(Exit(id=request.id, exit_code=code))
                return
        run = ActiveRun(request, child)
        run.start_ms = (run.started - arrived) * 1000
        self.runs[request.id] = run
        self.by_pid[child.pid] = run
        for fd in run.open_pipes:
            self.pipe_owner[fd] = run
            if not self.out_paused:
                self.selector.register(fd, selectors.EVENT_READ, lambda fd=fd: self._on_pipe(fd))
        self._feed_stdin(run)

    def _environment(self, env: dict[str, str]) -> dict[str, str]:
        """A user process's environment: the container's (the image's ENV, as `docker exec` would give),
        under the run's own. PATH gets the sandbox's tool directories in front unless the run sets one."""
        merged = {**self.base_env, **env}
        if "PATH" not in env:
            merged["PATH"] = _SANDBOX_PATH + self.base_env.get("PATH", os.defpath)
        return merged

    def _prepare(self, request: Run, write_code: bool) -> bool:
        """Put the program file in place and make the working directory; False (and Failed sent) if not."""
        try:
            with files.as_user(self.config.uid, self.config.gid):
                if write_code and request.code is not None:
                    if not request.code_path:
                        raise files.PathRefused("code given without code_path")
                    files.write_file(self.config.sandbox, request.code_path, request.code)
                if request.cwd.startswith(self.config.sandbox.rstrip("/") + "/"):
                    os.makedirs(request.cwd, exist_ok=True)
        except files.PathRefused as exc:
            self.send(Failed(id=request.id, message=str(exc), kind=exc.kind))
            return False
        except OSError as exc:
            self.send(Failed(id=request.id, message=f"cannot prepare the run: {exc}", kind="io"))
            return False
        return True

    # ---------------------------------------------------------------------------------------- pipes

    def _on_pipe(self, fd: int) -> None:
        run = self.pipe_owner.get(fd)
        if run is None:
            return
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        if data:
            self._forward(run, run.open_pipes[fd], data)
        else:
            self._close_pipe(run, fd)
            self._maybe_finish(run)

    def _forward(self, run: ActiveRun, stream: int, data: bytes) -> None:
        room = run.request.max_output - run.sent[stream]
        if room <= 0:
            run.truncated[stream] = True
            return
        if len(data) > room:
            data = data[:room]
            run.truncated[stream] = True
        run.sent[stream] += len(data)
        self.send(Output(id=run.request.id, fd=stream, data=data))

    def _close_pipe(self, run: ActiveRun, fd: int) -> None:
        run.open_pipes.pop(fd, None)
        self.pipe_owner.pop(fd, None)
        if self.selector.get_map().get(fd) is not None:
            self.selector.unregister(fd)
        os.close(fd)

    def _on_stdin(self, message: Stdin) -> None:
        run = self.runs.get(message.id)
        if run is None or run.child.stdin < 0:
            return
        run.stdin_pending += message.data
        if message.eof:
            run.stdin_open = False
        self._feed_stdin(run)

    def _feed_stdin(self, run: ActiveRun) -> None:
        fd = run.child.stdin
        if fd < 0:
            return
        try:
            while run.stdin_pending:
                written = os.write(fd, run.stdin_pending)
                del run.stdin_pending[:written]
        except BlockingIOError:
            pass
        except OSError:  # the reader is gone (EPIPE): what it did not read is dropped, as with a shell pipe
            run.stdin_pending.clear()
            run.stdin_open = False
        registered = self.selector.get_map().get(fd) is not None
        if run.stdin_pending:
            if not registered:
                self.selector.register(fd, selectors.EVENT_WRITE, lambda: self._feed_stdin(run))
            return
        if registered:
            self.selector.unregister(fd)
        if not run.stdin_open:
            os.close(fd)
            run.child.stdin = -1

    def _on_wakeup(self, fd: int) -> None:
        try:
            while os.read(fd, 4096):
                pass
        except BlockingIOError:
            pass
        self._reap()

    def _ended_children(self):
        """(owner, wait status, rusage) of every child that has ended since the last call; the owner is
        what started it (a run, a prestart, a session), or None for an orphan we inherited as init."""
        while True:
            try:
                pid, status, rusage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            owner = self.by_pid.pop(pid, None)
            if owner is not None:
                owner.child.reaped(status)
            yield owner, status, rusage

    def _reap(self) -> None:
        for owner, status, rusage in self._ended_children():
            if isinstance(owner, ActiveRun):
                owner.status = status
                owner.rusage = rusage
                # Whatever the process wrote before it ended is in the pipes now: take it, then stop
                # listening, so a background process holding the pipes open cannot hold the run open.
                for pipe in list(owner.open_pipes):
                    self._drain(owner, pipe)
                self._maybe_finish(owner)
            elif isinstance(owner, Prestarted):
                self._drop_prestarted(owner)
            elif isinstance(owner, network.Proxy):
                self.log("error", f"the proxy exited (status {status}); it restarts with the next reset")
                self._drop_proxy()
            elif isinstance(owner, SessionInterpreter):
                run = self.session_runs.get(owner.name)
                if run is not None and run.rusage is None:
                    run.rusage = rusage
                self._end_session(owner, status)

    def _drain(self, run: ActiveRun, fd: int) -> None:
        for _ in range(64):
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                break
            if not data:
                break
            self._forward(run, run.open_pipes[fd], data)
        self._close_pipe(run, fd)

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for run in list(self.runs.values()):
            if run.ended or now < run.deadline:
                continue
            if run.session is not None and not run.timed_out:
                # A KeyboardInterrupt lets the session keep its state; SIGKILL follows if it is ignored.
                run.timed_out = True
                run.deadline = now + _SESSION_INTERRUPT_GRACE_S
                kill_group(run.child.pid, signal.SIGINT)
            elif not run.timed_out or run.session is not None:
                run.timed_out = True
                run.deadline = float("inf")
                kill_group(run.child.pid)

    def _maybe_finish(self, run: ActiveRun) -> None:
        if not run.ended or run.open_pipes or run.flushing:
            return
        request = run.request
        if request.log_network and self.proxy is not None and self.proxy.ready and not run.network_log_flushed:
            # Tunnels are logged when they close: have the proxy close this run's connections first.
            run.flushing = True
            run.network_log_flushed = True
            self.proxy.send({"type": "reset"})
            return
        del self.runs[request.id]
        self.last_heard = time.monotonic()  # a session's idle time counts from its last run's end too
        if run.session is not None:
            self.session_runs.pop(run.session.name, None)
        if run.child.stdin >= 0:
            if self.selector.get_map().get(run.child.stdin) is not None:
                self.selector.unregister(run.child.stdin)
            os.close(run.child.stdin)
            run.child.stdin = -1
        duration_ms = (time.monotonic() - run.started) * 1000
        if run.cell_status is not None:
            signum, exit_code = 0, run.cell_status
        else:
            status = run.status
            signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
            exit_code = 128 + signum if signum else os.WEXITSTATUS(status)
        if run.timed_out:
            exit_code = 137
        oom_after = usage.oom_kills()
        net_after = usage.network_bytes()
        file_errors = self._send_output_files(request)
        rusage = run.rusage
        if run.session is not None and rusage is None:
            user_ms, system_ms = usage.process_cpu_ms(run.child.pid)
            cpu = (user_ms - run.cpu_before[0], system_ms - run.cpu_before[1])
            peak_kb = usage.process_peak_kb(run.child.pid)
        else:
            cpu = (rusage.ru_utime * 1000, rusage.ru_stime * 1000) if rusage else (0.0, 0.0)
            peak_kb = rusage.ru_maxrss if rusage else 0
        self.send(Exit(
            id=request.id,
            exit_code=exit_code,
            signal=signum,
            timed_out=run.timed_out,
            oom_killed=not run.timed_out and oom_after > run.oom_before >= 0,
            truncated_stdout=run.truncated[1],
            truncated_stderr=run.truncated[2],
            duration_ms=duration_ms,
            start_ms=run.start_ms,
            usage=Usage(
                cpu_user_ms=cpu[0],
                cpu_system_ms=cpu[1],
                peak_memory_kb=peak_kb,
                net_rx_bytes=net_after[0] - run.net_before[0],
                net_tx_bytes=net_after[1] - run.net_before[1],
            ),
            file_errors=file_errors,
            network_log=run.network_log if request.log_network else [],
        ))


    # ---------------------------------------------------------------------------------------- files

    def _put_file(self, message: PutFile) -> None:
        self.prestart_stale = True
        try:
            with files.as_user(self.config.uid, self.config.gid):
                files.write_file(self.config.sandbox, message.path, message.data,
                                 offset=message.offset, mode=message.mode)
        except (files.PathRefused, OSError) as exc:
            kind = exc.kind if isinstance(exc, files.PathRefused) else "io"
            text = str(exc) if isinstance(exc, files.PathRefused) else f"{message.path}: {exc.strerror or exc}"
            if exc.__class__ is OSError and getattr(exc, "errno", None) == errno.ENOSPC:
                text = f"{message.path}: no space left in {self.config.sandbox}"
            failed = Failed(id=message.id, message=f"cannot write file {text}", kind=kind)
            if message.ack and message.last:
                self.failed_puts.pop(message.id, None)  # one answer per operation: this one
                self.send(failed)
            else:
                self.failed_puts.setdefault(message.id, failed)
            return
        if message.ack and message.last:
            # An earlier chunk of this file that failed is the answer: the file is not whole.
            self.send(self.failed_puts.pop(message.id, None) or Done(id=message.id))

    def _read_file(self, op_id: int, path: str, budget: int) -> tuple[str | None, int]:
        """Send ``path`` as FileData chunks, at most ``budget`` bytes; returns (an error message or None,
        the bytes sent). A file over the budget (its size says so, or it grows while read) is not sent in
        part: what went is followed by an empty last chunk and the error, and the host drops it all."""
        try:
            with files.as_user(self.config.uid, self.config.gid):
                fd = files.open_for_reading(self.config.sandbox, path)
        except files.PathRefused as exc:
            return str(exc), 0
        except OSError as exc:
            return f"{path}: {exc.strerror or exc}", 0
        sent = 0
        try:
            if os.fstat(fd).st_size > budget:
                return f"{path}: {os.fstat(fd).st_size} bytes, over the {budget}-byte limit for output files", 0
            while True:
                data = os.read(fd, CHUNK_SIZE)
                if sent + len(data) > budget:
                    self.send(FileData(id=op_id, path=path, data=b"", last=True))
                    return f"{path}: grew past the {budget}-byte limit for output files while being read", sent
                sent += len(data)
                last = len(data) < CHUNK_SIZE
                self.send(FileData(id=op_id, path=path, data=data, last=last))
                if last:
                    return None, sent
                if len(self.out) > _OUT_HIGH:
                    self._flush_blocking()
        finally:
            os.close(fd)

    def _get_file(self, message: GetFile) -> None:
        error, _ = self._read_file(message.id, message.path, message.max_bytes)
        if error is None:
            self.send(Done(id=message.id))
        else:
            kind = "not_found" if "no such file" in error else ("too_large" if "limit" in error else "bad_path")
            self.send(Failed(id=message.id, message=error, kind=kind))

    def _send_output_files(self, request: Run) -> dict[str, str]:
        errors = {}
        budget = request.max_file_bytes
        for path in request.output_paths:
            error, sent = self._read_file(request.id, path, budget)
            budget -= sent
            if error is not None:
                errors[path] = error
        return errors

    # ---------------------------------------------------------------------------------------- reset

    def _reset(self) -> tuple[dict[str, int], Ready]:
        """Back to a never-used state; returns what was removed, and the Ready that announces it with
        the name of every verdict that held (see reset.py)."""
        config = self.config
        for run in list(self.runs.values()):
            for fd in list(run.open_pipes):
                self._close_pipe(run, fd)
        self.runs.clear()
        self.session_runs.clear()
        for session in list(self.sessions.values()):
            kill_group(session.child.pid)
            self._end_session(session)
        self._discard_prestarts()
        detail: dict[str, int] = {}
        verified = []
        if reset.kill_all(config.uid, self._reap_quietly, self.census, self._kept_processes):
            # No task of the sandbox user lives; with a census, the kernel's count says nothing else does.
            verified.append("processes")
            if self.census is not None:
                verified.append("tasks")
        with files.as_user(config.uid, config.gid):
            detail["ipc_removed"] = reset.remove_ipc()
            if reset.ipc_objects() == 0:
                verified.append("ipc")
            for directory, wanted in self.baseline.directories.items():
                if wanted is not None:
                    restore_directory(directory, wanted)
        detail["files_removed"] = reset.wipe_directories(list(config.wipe), config.uid, config.gid)
        self.deferred.clear()
        if self.network is not None and self._reset_network(detail):
            verified.append("network")
        differences = self.baseline.directory_differences()
        if not differences:
            verified.append("files")
        leftovers = self._leftovers()
        if not leftovers:
            verified.append("state")
        for difference in differences + leftovers:
            self.log("warning", f"reset left {difference}")
        self.failed_puts.clear()
        self.by_pid = {pid: owner for pid, owner in self.by_pid.items() if not isinstance(owner, ActiveRun)}
        self._arm_prestarts()
        self.generation += 1
        return detail, Ready(version=PROTOCOL_VERSION, generation=self.generation, pid=os.getpid(), reason="reset",
                             verified=verified)

    def _kept_processes(self) -> set[int]:
        """The processes whose tasks a reset leaves alone: the agent, and the proxy if there is one."""
        kept = {os.getpid()}
        if self.proxy is not None:
            kept.add(self.proxy.child.pid)
        return kept

    def _leftovers(self, deadline_s: float = 1.0) -> list[str]:
        """Sockets that nobody but a user task could hold (so none should exist once the tasks are gone),
        judged only in the container's own network namespace (see baseline.py for why these tables).

        A unix socket sent over itself and then closed is a garbage cycle that the kernel collects only
        when some unix socket is next closed: closing one of ours asks for that collection, which then
        runs in the background; so this looks again for a little while before it calls anything left."""
        deadline = time.monotonic() + deadline_s
        while True:
            leftovers: list[str] = []
            if not self.shared_network:
                held = self.baseline.sockets | socket_inodes()
                if self.proxy is not None:
                    with files.as_user(self.config.proxy_uid, self.config.proxy_uid):
                        held |= socket_inodes(self.proxy.child.pid)
                leftovers += stray_sockets(held)
            if not leftovers or time.monotonic() > deadline:
                return leftovers
            for end in socket.socketpair():
                end.close()
            time.sleep(0.002)

    def _reap_quietly(self) -> None:
        for _ in self._ended_children():
            pass

    def _kill_everything(self) -> None:
        for run in self.runs.values():
            kill_group(run.child.pid)
        self._discard_prestarts()
        if self.config.uid != 0 and os.getuid() == 0:
            reset.kill_all(self.config.uid, self._reap_quietly, self.census, self._kept_processes, deadline_s=2.0)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="isol8rt-agent")
    parser.add_argument("--sandbox", default="/sandbox")
    parser.add_argument("--uid", type=int, default=1000)
    parser.add_argument("--gid", type=int, default=1000)
    parser.add_argument("--wipe", default="/sandbox,/tmp,/dev/shm,/dev/mqueue")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    if os.getuid() == 0:
        os.setgroups([])
    config = AgentConfig(args.sandbox, args.uid, args.gid, tuple(filter(None, args.wipe.split(","))), args.debug)
    Agent(config).serve()
    sys.exit(0)
