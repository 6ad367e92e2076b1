"""The agent's driver: the container's init process, serving the engine over the container's stdin and
stdout.

One thread, one epoll loop, and no decisions: what the agent does is :class:`~.core.AgentCore`'s, which
does no I/O. This loop carries bytes from the host to the core, tells it what happened (a child's
output, its exit, a cell's end, a line of the proxy, the time), and carries out the actions it returns,
reporting back how each went before it gives the core anything else. Host messages arrive on fd 0;
frames for the host leave on fd 1; user processes are children whose pipes the loop watches; SIGCHLD
arrives through a wakeup pipe. The agent is PID 1, so it also reaps every orphan in the container.

What the driver keeps is I/O state only: each child's process (until reaped) and our ends of its pipes,
what waits to be written to a child's stdin and to the host, the prestarted interpreters' FIFOs, the
session interpreters' control sockets, and the container's first record (baseline) and task census.
"""

from __future__ import annotations

import errno
import os
import select
import selectors
import signal
import sys
import time
from typing import Any, Callable

from . import census, files, program_fifo, seccomp_filter, usage
from .open_watch import OpenWatch
from .baseline import Baseline
from .core import AgentCore
from .core import actions as act
from .core import events as ev
from .process import Child, Identity, kill_group, spawn
from .protocol import CHUNK_SIZE, FileData, FrameEncoder

# Stop reading user output while this much is waiting for the host, so a flood cannot grow our memory.
_OUT_HIGH = 4 * 1024 * 1024
_OUT_LOW = 1024 * 1024
#: How much of a child's output one read takes; how many reads a child that ended gets to empty a pipe.
_READ_SIZE = 64 * 1024
_DRAIN_READS = 64
# A stand-in filter whose installation always fails, so nothing runs when the real one could not be prepared.
_REFUSE_TO_SPAWN = object()


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


def _now() -> float:
    return time.monotonic()


class Supervisor:
    """The epoll driver of the agent's core."""

    def __init__(self, config: AgentConfig, in_fd: int = 0, out_fd: int = 1, greeted: bool = False) -> None:
        self.config = config
        #: The entry point sent the greeting already (see greeting.py).
        self.greeted = greeted
        self.identity = Identity(config.uid, config.gid)
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.selector = selectors.EpollSelector()
        self.core = AgentCore(dict(os.environ), pid=os.getpid(), debug=config.debug)
        self.encoder = FrameEncoder()
        self.out = bytearray()
        self.out_paused = False
        #: Every child started and not reaped yet, by pid.
        self.children: dict[int, Child] = {}
        #: Output pipes whose bytes the core hears (runs' and session interpreters'): fd -> (pid, 1 or 2).
        self.heard: dict[int, tuple[int, int]] = {}
        #: Bytes waiting for a child's stdin, and whether it is to stay open once they are written.
        self.stdin_pending: dict[int, bytearray] = {}
        self.stdin_open: dict[int, bool] = {}
        self.fifos: dict[int, program_fifo.ProgramFifo] = {}
        #: Wakes the loop when a prestarted interpreter opens its FIFO (None: the core's polling alone).
        self.open_watch: OpenWatch | None = None
        self.interpreters: dict = {}
        self.proxy_pid = 0
        #: The fork server, once a Configure asked for one and it started (see fork_server.py).
        self.fork_server = None
        #: The per-run seccomp filter as the host sent it (the fork server's runs install it themselves).
        self.user_bpf = b""
        self.baseline: Baseline | None = None
        self.census: census.Census | None = None
        self.terminated = False
        self._carry_out: dict[type, Callable[[Any], list[ev.Event] | None]] = {
            act.Send: self._send, act.Spawn: self._spawn, act.HandOver: self._hand_over,
            act.WriteStdin: self._write_stdin, act.Kill: self._kill, act.Release: self._release_action,
            act.Collect: self._collect, act.ArmPrestarts: self._arm_prestarts, act.DropPrestart: self._drop_prestart,
            act.CheckWarmth: self._check_warmth, act.PrepareCwd: self._prepare_cwd,
            act.StartInterpreter: self._start_interpreter, act.SendCell: self._send_cell,
            act.WriteFile: self._write_file, act.SendFile: self._send_file, act.InstallFilter: self._install_filter,
            act.StartNetwork: self._start_network, act.StartProxy: self._start_proxy, act.ToProxy: self._to_proxy,
            act.AwaitProxy: self._await_proxy, act.Sweep: self._sweep, act.Inspect: self._inspect,
            act.KillAll: self._kill_all, act.StartForkServer: self._start_fork_server,
        }

    # ==================================================================================== the loop

    def serve(self) -> None:
        wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        # Handlers run between any two bytecodes: they only note the signal, the loop tells the core.
        signal.signal(signal.SIGTERM, self._on_term)
        for fd in (self.in_fd, self.out_fd):
            os.set_blocking(fd, False)
        self.selector.register(self.in_fd, selectors.EVENT_READ, self._on_host_readable)
        self.selector.register(wake_read, selectors.EVENT_READ, lambda: self._on_wakeup(wake_read))
        self.open_watch = OpenWatch.create()
        if self.open_watch is not None:
            # Its only use is the wake-up: every turn of the loop ends with a Tick, whose look finds them warm.
            self.selector.register(self.open_watch.fd, selectors.EVENT_READ, self.open_watch.drain)
        self.baseline = Baseline.take(self.config.wipe)
        self.census = census.find()
        core = self.core
        self.perform(core.start(_now(), greeted=self.greeted))
        while not core.stopping or self.out:
            self._flush()
            if core.stopping and not self.out:
                break
            deadline = core.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - _now())
            for key, _mask in self.selector.select(timeout):
                key.data()
            if self.terminated:
                self.terminated = False
                self._tell(ev.Terminated())
            self._tell(ev.Tick())
        self.perform(core.close())

    def _on_term(self, signum, frame) -> None:
        self.terminated = True

    def perform(self, actions: list[act.Action]) -> None:
        """Carry out ``actions`` in order; what one reports goes to the core (and its actions are carried
        out) before the next."""
        for action in actions:
            reports = self._carry_out[type(action)](action)
            if reports:
                for event in reports:
                    self._tell(event)

    def _tell(self, event: ev.Event) -> None:
        self.perform(self.core.handle(event, _now()))

    # ==================================================================================== the host

    def _send(self, action: act.Send) -> None:
        self.out += self.encoder.encode(action.message)

    def _flush(self) -> None:
        if self.out:
            try:
                written = os.write(self.out_fd, self.out)
                del self.out[:written]
            except BlockingIOError:
                pass
            except BrokenPipeError:
                self.out.clear()
                self._tell(ev.HostGone())
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
            for fd in self.heard:
                self.selector.unregister(fd)
        elif self.out_paused and len(self.out) < _OUT_LOW:
            self.out_paused = False
            for fd in self.heard:
                self.selector.register(fd, selectors.EVENT_READ, lambda fd=fd: self._on_output(fd))

    def _on_host_readable(self) -> None:
        try:
            data = os.read(self.in_fd, 256 * 1024)
        except BlockingIOError:
            return
        if not data:
            # The container's stdin closed: nobody can ever talk to us again.
            self.selector.unregister(self.in_fd)
        core = self.core
        core.receive_data(data, _now())
        while (actions := core.next_actions(_now())) is not None:
            self.perform(actions)

    # ==================================================================================== children

    def _adopt(self, child: Child, heard: bool) -> None:
        """A child started: keep it until reaped; with ``heard``, the core hears its stdout and stderr."""
        self.children[child.pid] = child
        if heard:
            self._hear(child)

    def _hear(self, child: Child) -> None:
        for fd, stream in ((child.stdout, 1), (child.stderr, 2)):
            self.heard[fd] = (child.pid, stream)
            if not self.out_paused:
                self.selector.register(fd, selectors.EVENT_READ, lambda fd=fd: self._on_output(fd))

    def _unwatch(self, fd: int) -> None:
        if self.selector.get_map().get(fd) is not None:
            self.selector.unregister(fd)

    def _on_output(self, fd: int) -> None:
        owner = self.heard.get(fd)
        if owner is None:
            return
        try:
            data = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return
        pid, stream = owner
        if data:
            self._tell(ev.ChildOutput(pid, stream, data))
        else:
            self._close_output(pid, stream)
            self._tell(ev.ChildOutputClosed(pid, stream))

    def _close_output(self, pid: int, stream: int) -> None:
        child = self.children.get(pid)
        if child is None:
            return
        fd = child.stdout if stream == 1 else child.stderr
        if fd < 0:
            return
        self.heard.pop(fd, None)
        self._unwatch(fd)
        os.close(fd)
        if stream == 1:
            child.stdout = -1
        else:
            child.stderr = -1

    def _drain(self, pid: int, close: bool) -> list[ev.Event]:
        """What the child's heard pipes still hold (a child that ended, or a cell that did, wrote it
        before), as events; with ``close``, the pipes are closed after, so a background process holding
        them open cannot hold the run open."""
        child = self.children.get(pid)
        if child is None:
            return []
        events: list[ev.Event] = []
        for stream, fd in ((1, child.stdout), (2, child.stderr)):
            if fd < 0 or fd not in self.heard:
                continue
            for _ in range(_DRAIN_READS):
                try:
                    data = os.read(fd, _READ_SIZE)
                except BlockingIOError:
                    break
                if not data:
                    break
                events.append(ev.ChildOutput(pid, stream, data))
            if close:
                self._close_output(pid, stream)
                events.append(ev.ChildOutputClosed(pid, stream))
        return events

    def _release(self, pid: int) -> None:
        """Close every descriptor we hold of the child (its process stays known until reaped)."""
        child = self.children.get(pid)
        if child is not None:
            for stream in (1, 2):
                self._close_output(pid, stream)
            if child.stdin >= 0:
                self._unwatch(child.stdin)
                os.close(child.stdin)
                child.stdin = -1
        self.stdin_pending.pop(pid, None)
        self.stdin_open.pop(pid, None)
        interpreter = self.interpreters.pop(pid, None)
        if interpreter is not None:
            self._unwatch(interpreter.control.fileno())
            interpreter.control.close()
        fifo = self.fifos.get(pid)
        if fifo is not None:
            fifo.close()

    def _release_action(self, action: act.Release) -> None:
        self._release(action.pid)

    def _on_wakeup(self, fd: int) -> None:
        try:
            while os.read(fd, 4096):
                pass
        except BlockingIOError:
            pass
        for pid, status, rusage in self._ended_children():
            for event in self._exited(pid, status, rusage):
                self._tell(event)

    def _ended_children(self):
        """(pid, wait status, rusage) of every child that has ended since the last call, ours or an orphan
        we inherited as init."""
        while True:
            try:
                pid, status, rusage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            yield pid, status, rusage

    def _exited(self, pid: int, status: int, rusage) -> list[ev.Event]:
        """A child was reaped: what its pipes still held, then its exit."""
        child = self.children.get(pid)
        if child is None:
            return [ev.ChildExited(pid, status)]  # an orphan, or nothing we hold
        child.reaped(status)
        events = self._drain(pid, close=True)
        self._release(pid)
        del self.children[pid]
        if pid == self.proxy_pid:
            self.proxy_pid = 0
        if self.fork_server is not None and pid == self.fork_server.child.pid:
            self.fork_server.alive = False  # no more forks; the next reset's look finds it gone
        usage = ev.ChildUsage(rusage.ru_utime * 1000, rusage.ru_stime * 1000, rusage.ru_maxrss)
        events.append(ev.ChildExited(pid, status, usage))
        return events

    def _kill(self, action: act.Kill) -> None:
        kill_group(action.pid, action.signum)

    # ==================================================================================== runs

    def _readings(self, session_pid: int = 0) -> ev.Readings:
        """The readings taken when a run starts (with its session's interpreter's CPU time so far)."""
        oom_kills = usage.oom_kills()
        rx, tx = usage.network_bytes()
        if not session_pid:
            return ev.Readings(oom_kills, rx, tx)
        user_ms, system_ms = usage.process_cpu_ms(session_pid)
        return ev.Readings(oom_kills, rx, tx, user_ms, system_ms)

    def _prepare(self, run_id: int, cwd: str, code_path: str | None = None,
                 code: bytes | None = None) -> ev.Event | None:
        """Put the program file in place and make the working directory; the PrepareFailed if not."""
        sandbox = self.config.sandbox
        try:
            with files.as_user(self.config.uid, self.config.gid):
                if code is not None:
                    if not code_path:
                        raise files.PathRefused("code given without code_path")
                    files.write_file(sandbox, code_path, code)
                if cwd.startswith(sandbox.rstrip("/") + "/"):
                    os.makedirs(cwd, exist_ok=True)
        except files.PathRefused as exc:
            return ev.PrepareFailed(run_id, str(exc), exc.kind)
        except OSError as exc:
            return ev.PrepareFailed(run_id, f"cannot prepare the run: {exc}", "io")
        return None

    def _spawn(self, action: act.Spawn) -> list[ev.Event]:
        failed = self._prepare(action.run_id, action.cwd, action.code_path, action.code)
        if failed is not None:
            return [failed]
        try:
            child = spawn(action.argv, action.env, action.cwd, self.identity)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            return [ev.SpawnFailed(action.run_id, isinstance(exc, FileNotFoundError), reason)]
        self._adopt(child, heard=True)
        self.stdin_pending[child.pid] = bytearray()
        self.stdin_open[child.pid] = True
        return [ev.Spawned(action.run_id, child.pid, self._readings())]

    def _hand_over(self, action: act.HandOver) -> list[ev.Event]:
        fifo = self.fifos[action.pid]
        try:
            program_fifo.hand_over(fifo, action.code, self.config.sandbox, self.config.uid, self.config.gid)
        except (OSError, files.PathRefused) as exc:
            return [ev.HandOverFailed(action.run_id, str(exc))]
        del self.fifos[action.pid]
        child = self.children[action.pid]
        self._hear(child)
        self.stdin_pending[child.pid] = bytearray()
        self.stdin_open[child.pid] = True
        return [ev.Spawned(action.run_id, child.pid, self._readings())]

    def _write_stdin(self, action: act.WriteStdin) -> None:
        pending = self.stdin_pending.get(action.pid)
        if pending is None:
            return  # closed already
        pending += action.data
        if action.eof:
            self.stdin_open[action.pid] = False
        self._feed_stdin(action.pid)

    def _feed_stdin(self, pid: int) -> None:
        child = self.children.get(pid)
        pending = self.stdin_pending.get(pid)
        if child is None or pending is None or child.stdin < 0:
            return
        fd = child.stdin
        try:
            while pending:
                written = os.write(fd, pending)
                del pending[:written]
        except BlockingIOError:
            pass
        except OSError:  # the reader is gone (EPIPE): what it did not read is dropped, as with a shell pipe
            pending.clear()
            self.stdin_open[pid] = False
        registered = self.selector.get_map().get(fd) is not None
        if pending:
            if not registered:
                self.selector.register(fd, selectors.EVENT_WRITE, lambda: self._feed_stdin(pid))
            return
        if registered:
            self.selector.unregister(fd)
        if not self.stdin_open[pid]:
            os.close(fd)
            child.stdin = -1
            del self.stdin_pending[pid], self.stdin_open[pid]

    def _collect(self, action: act.Collect) -> list[ev.Event]:
        oom_kills = usage.oom_kills()
        rx, tx = usage.network_bytes()
        file_errors = self._send_output_files(action)
        if action.session_pid:
            user_ms, system_ms = usage.process_cpu_ms(action.session_pid)
            after = ev.Readings(oom_kills, rx, tx, user_ms, system_ms, usage.process_peak_kb(action.session_pid))
        else:
            after = ev.Readings(oom_kills, rx, tx)
        return [ev.Collected(action.run_id, after, file_errors)]

    def _send_output_files(self, action: act.Collect) -> dict[str, str]:
        errors = {}
        budget = action.max_file_bytes
        for path in action.output_paths:
            error, sent = self._read_file(action.run_id, path, budget)
            budget -= sent
            if error is not None:
                errors[path] = error
        return errors

    # ==================================================================================== prestarts

    def _arm_prestarts(self, action: act.ArmPrestarts) -> list[ev.Event]:
        pids, problems = [], []
        for spec in action.prestarts:
            try:
                child, fifo = program_fifo.prestart(spec, self.config.sandbox, self.identity,
                                                    self.open_watch.watch if self.open_watch else None,
                                                    self._forker(spec))
            except (OSError, ValueError, files.PathRefused) as exc:
                pids.append(0)
                problems.append(str(exc))
                continue
            self._adopt(child, heard=False)
            self.fifos[child.pid] = fifo
            pids.append(child.pid)
            problems.append("")
        return [ev.PrestartsArmed(pids, problems)]

    def _drop_prestart(self, action: act.DropPrestart) -> None:
        if action.kill:
            kill_group(action.pid)
        self._release(action.pid)
        fifo = self.fifos.pop(action.pid, None)
        if fifo is not None:
            program_fifo.remove(fifo, self.config.uid, self.config.gid)

    def _check_warmth(self, action: act.CheckWarmth) -> list[ev.Event]:
        uid, gid = self.config.uid, self.config.gid
        warm = all(program_fifo.is_warm(pid, self.fifos[pid], uid, gid) for pid in action.pids if pid in self.fifos)
        return [ev.Warmth(warm)]

    def _start_fork_server(self, action: act.StartForkServer) -> list[ev.Event]:
        from .fork_server import ForkServer

        if self.identity.filter is _REFUSE_TO_SPAWN:
            return [ev.ForkServerStarted("no fork server: the per-run seccomp filter is unusable")]
        try:
            server = ForkServer.start(action.python, action.preload, action.path, self.user_bpf)
        except (OSError, ValueError) as exc:
            return [ev.ForkServerStarted(str(exc))]
        self._adopt(server.child, heard=False)
        self.fork_server = server
        return [ev.ForkServerStarted()]

    def _forker(self, spec) -> Callable | None:
        """How ``spec``'s interpreter starts: forked by the fork server when there is one and the spec is a
        plain ``PYTHON FILE ...`` of its interpreter; None (a fresh process) otherwise."""
        server = self.fork_server
        if server is None or not server.alive or len(spec.argv) < 2 or spec.argv[0] != server.python or spec.argv[1] != spec.code_path:
            return None
        return server.fork

    # ==================================================================================== sessions

    def _prepare_cwd(self, action: act.PrepareCwd) -> list[ev.Event]:
        failed = self._prepare(action.run_id, action.cwd)
        return [failed if failed is not None else ev.Prepared(action.run_id)]

    def _start_interpreter(self, action: act.StartInterpreter) -> list[ev.Event]:
        from .interpreters import SessionInterpreter

        try:
            interpreter = SessionInterpreter.start(action.name, action.env, self.config.sandbox, self.identity)
        except (OSError, ValueError) as exc:
            return [ev.InterpreterFailed(action.run_id, str(exc))]
        child = interpreter.child
        os.close(child.stdin)
        child.stdin = -1
        self._adopt(child, heard=True)
        self.interpreters[child.pid] = interpreter
        self.selector.register(interpreter.control, selectors.EVENT_READ, lambda: self._on_control(child.pid))
        return [ev.InterpreterStarted(action.run_id, child.pid)]

    def _send_cell(self, action: act.SendCell) -> list[ev.Event]:
        interpreter = self.interpreters.get(action.pid)
        try:
            if interpreter is None:
                raise OSError(errno.EPIPE, "its control socket is closed")
            interpreter.send_cell(action.code, action.cwd, action.env, action.stdin)
        except OSError as exc:
            return [ev.CellFailed(action.run_id, str(exc))]
        return [ev.CellSent(action.run_id, self._readings(action.pid))]

    def _on_control(self, pid: int) -> None:
        interpreter = self.interpreters.get(pid)
        if interpreter is None:
            return
        status = interpreter.read_status()
        if status is None:
            return
        if status < 0:  # the interpreter closed its end: it is exiting, and its wait status will tell
            self._unwatch(interpreter.control.fileno())
            return
        for event in self._drain(pid, close=False) + [ev.CellDone(pid, status)]:
            self._tell(event)

    # ==================================================================================== files

    def _write_file(self, action: act.WriteFile) -> list[ev.Event]:
        put = action.put
        try:
            with files.as_user(self.config.uid, self.config.gid):
                files.write_file(self.config.sandbox, put.path, put.data, offset=put.offset, mode=put.mode)
        except files.PathRefused as exc:
            return [ev.FileNotWritten(put, str(exc), exc.kind)]
        except OSError as exc:
            if exc.__class__ is OSError and exc.errno == errno.ENOSPC:
                reason = f"{put.path}: no space left in {self.config.sandbox}"
            else:
                reason = f"{put.path}: {exc.strerror or exc}"
            return [ev.FileNotWritten(put, reason, "io")]
        return [ev.FileWritten(put)]

    def _send_file(self, action: act.SendFile) -> list[ev.Event]:
        error, _ = self._read_file(action.op_id, action.path, action.max_bytes)
        return [ev.FileSent(action.op_id, error)]

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
                    self._send(act.Send(FileData(id=op_id, path=path, data=b"", last=True)))
                    return f"{path}: grew past the {budget}-byte limit for output files while being read", sent
                sent += len(data)
                last = len(data) < CHUNK_SIZE
                self._send(act.Send(FileData(id=op_id, path=path, data=data, last=last)))
                if last:
                    return None, sent
                if len(self.out) > _OUT_HIGH:
                    self._flush_blocking()
        finally:
            os.close(fd)

    # ==================================================================================== filtered networking

    def _install_filter(self, action: act.InstallFilter) -> list[ev.Event] | None:
        self.user_bpf = action.bpf
        try:
            self.identity.filter = seccomp_filter.prepare(action.bpf)
        except (OSError, ValueError) as exc:
            # Without its filter no user process may start: every spawn will fail loudly.
            self.identity.filter = _REFUSE_TO_SPAWN
            return [ev.FilterRefused(str(exc))]
        return None

    def _start_network(self, action: act.StartNetwork) -> list[ev.Event]:
        """Firewall first, then the proxy: no user process runs before both are in place (runs wait)."""
        from . import firewall

        try:
            firewall.apply_firewall(self.config.uid)
            firewall.drop_capability()
        except OSError as exc:
            return [ev.NetworkRefused(str(exc))]
        return self._start_proxy(action)

    def _start_proxy(self, action: act.StartNetwork | act.StartProxy) -> list[ev.Event]:
        from . import proxy_process

        identity = Identity(self.config.proxy_uid, self.config.proxy_uid)
        identity.filter = self.identity.filter
        env = {"PATH": os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8"}
        child = proxy_process.start(identity, action.port, action.policy, env)
        self._adopt(child, heard=False)
        self.proxy_pid = child.pid
        self.selector.register(child.stdout, selectors.EVENT_READ, self._on_proxy_output)
        self.selector.register(child.stderr, selectors.EVENT_READ, self._on_proxy_stderr)
        return [ev.ProxyStarted(child.pid)]

    def _proxy_read(self, stream: int) -> bytes | None:
        """A read of the proxy's stdout (1) or stderr (2): None if nothing is there yet, b"" at its end
        (then no longer watched)."""
        child = self.children.get(self.proxy_pid)
        fd = -1 if child is None else (child.stdout if stream == 1 else child.stderr)
        if fd < 0:
            return None
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return None
        if not data:
            self._unwatch(fd)
        return data

    def _on_proxy_output(self) -> None:
        data = self._proxy_read(1)
        if data is not None:
            self._tell(ev.ProxyOutput(data))

    def _on_proxy_stderr(self) -> None:
        data = self._proxy_read(2)
        if data:
            self._tell(ev.ProxyStderr(data))

    def _to_proxy(self, action: act.ToProxy) -> None:
        from . import proxy_process

        child = self.children.get(self.proxy_pid)
        if child is None or child.stdin < 0:
            return
        try:
            proxy_process.write_line(child.stdin, action.line)
        except BrokenPipeError:
            pass  # it exited: its wait status will tell

    def _await_proxy(self, action: act.AwaitProxy) -> None:
        """The reset's wait for the proxy, outside the event loop: nothing else is read meanwhile."""
        deadline = _now() + action.timeout_s
        while self.core.awaiting_proxy:
            child = self.children.get(self.proxy_pid)
            remaining = deadline - _now()
            if child is None or child.stdout < 0:
                self._tell(ev.ProxyOutput(b""))
            elif remaining <= 0:
                self._tell(ev.ProxySilent())
            elif select.select([child.stdout], [], [], remaining)[0]:
                data = self._proxy_read(1)
                if data is not None:
                    self._tell(ev.ProxyOutput(data))

    # ==================================================================================== the reset

    def _sweep(self, action: act.Sweep) -> list[ev.Event]:
        from . import reset

        assert self.baseline is not None  # taken when serving starts
        reaped: list[tuple[int, int, object]] = []
        keep = {os.getpid(), *action.kept, *self._own_pids()}
        swept = reset.sweep(self.config.uid, self.config.gid, list(self.config.wipe), self.baseline, self.census,
                            lambda: reaped.extend(self._ended_children()), lambda: keep)
        events: list[ev.Event] = []
        for pid, status, rusage in reaped:
            events += self._exited(pid, status, rusage)
        return events + [swept]

    def _inspect(self, action: act.Inspect) -> list[ev.Event]:
        from . import reset

        assert self.baseline is not None  # taken when serving starts
        server = self.fork_server
        inspected = reset.inspect(self.baseline, action.shared_network, action.proxy_pid, self.config.proxy_uid,
                                  frozenset({server.socket_inode}) if server is not None else frozenset())
        problem = self.fork_server.intact() if self.fork_server is not None else ""
        if problem:  # a fork server gone or touched: the reset does not verify, the container is retired
            inspected = ev.Inspected(inspected.differences, [*inspected.leftovers, problem])
        return [inspected]

    def _own_pids(self) -> tuple[int, ...]:
        """Processes of the agent's own besides itself (the fork server): kept by the sweep and the census."""
        server = self.fork_server
        return (server.child.pid,) if server is not None and server.alive else ()

    def _kill_all(self, action: act.KillAll) -> None:
        if self.config.uid == 0 or os.getuid() != 0:
            return
        from . import reset

        keep = {os.getpid(), *action.kept, *self._own_pids()}
        reset.kill_all(self.config.uid, self._reap_quietly, self.census, lambda: keep, deadline_s=action.deadline_s)

    def _reap_quietly(self) -> None:
        for pid, status, _rusage in self._ended_children():
            child = self.children.pop(pid, None)
            if child is not None:
                child.reaped(status)


def main(argv: list[str] | None = None, greeted: bool = False) -> None:
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
    Supervisor(config, greeted=greeted).serve()
    sys.exit(0)
