"""The scripted agent of :mod:`isol8rt.testing`: the real agent's core (:mod:`isol8rt.agent.core`), driven
in memory.

The core keeps the conversation's rules (Ready first, Configure once, one terminal message per
operation, Reset -> Done -> Ready with its verdicts, stragglers dropped by id, run deadlines, sessions,
filtered networking). This driver only does what the core asks, in memory, the way the agent's epoll
supervisor does it with processes: a spawn makes a fake child whose output, files and exit come from the
:class:`AgentScript`; a kill ends it; files live in a dict; the proxy answers its control lines at once;
a reset's sweep and last look report what the script says was verified. Time is the driver's clock
(trio's, in :class:`~isol8rt.testing.MemoryBackend`), so runs that take time and run deadlines pass on
``MockClock`` without waiting.

The driver does no I/O either: :meth:`FakeAgent.receive`, :meth:`FakeAgent.timer` and
:meth:`FakeAgent.tick` return what the agent says and the timers it wants, for whoever carries them.
"""

from __future__ import annotations

import itertools
import signal
from dataclasses import dataclass, field
from typing import Callable, Iterable, Union

from .agent import protocol
from .agent import proxy_protocol as proxy
from .agent.core import AgentCore
from .agent.core import actions as act
from .agent.core import events as ev

#: Everything a real agent's reset can verify; the default script reports all of it ("network" is named
#: only with filtered networking, as by the real agent).
ALL_CHECKS = ("processes", "tasks", "files", "ipc", "state", "network")
#: The container's own environment, as the agent finds it (what user processes inherit).
CONTAINER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


@dataclass(frozen=True)
class RunReply:
    """How a scripted run goes (a run of its own process, or a cell of a session)."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0
    #: How long the run takes, on the driver's clock (its Exit comes this much later).
    seconds: float = 0.0
    #: Files the run leaves under /sandbox (sent back when the Run asks for them in ``output_paths``).
    files: dict[str, bytes] = field(default_factory=dict)
    #: The run never ends on its own: only a signal ends it (its Exit then reports the signal).
    hang: bool = False
    #: The agent dies instead of running it: the container's stream ends.
    crash: bool = False


def _every_check(agent: FakeAgent) -> Iterable[str]:
    return ALL_CHECKS


@dataclass(frozen=True)
class AgentScript:
    """What a fake agent does: ``run`` says how each Run goes, ``verified`` what each reset reports
    verified (given the agent, whose ``generation`` and ``container_id`` say which reset of which
    container it is; "tasks" holds only with "processes", as the kernel's count comes after the sweep),
    ``version`` the protocol version it greets with."""

    run: Callable[[protocol.Run], RunReply] = lambda run: RunReply()
    verified: Callable[[FakeAgent], Iterable[str]] = _every_check
    version: int = protocol.PROTOCOL_VERSION


@dataclass(frozen=True)
class After:
    """A timer: the driver calls :meth:`FakeAgent.timer` with ``run_id`` after ``seconds``."""

    seconds: float
    run_id: int


class _Crash:
    __slots__ = ()

    def __repr__(self) -> str:
        return "CRASH"


#: The agent exits: its stream ends, and so does its container.
CRASH = _Crash()

#: What the fake agent asks its carrier to do: send a message, start a timer, or end.
Action = Union[protocol.Ready, protocol.Output, protocol.FileData, protocol.Exit, protocol.Done, protocol.Failed,
               protocol.Log, After, _Crash]


class UnsupportedAction(Exception):
    """The core asked for something the in-memory driver cannot do: a bug in this kit, never a test's."""


@dataclass
class _Child:
    """A fake process: a run's own, a prestarted or session interpreter, or the proxy."""

    pid: int
    kind: str  # "run", "prestart", "interpreter", "proxy"
    #: A run's (or an interpreter's current cell's) request, and how the script says it goes.
    request: protocol.Run | None = None
    reply: RunReply | None = None
    #: When its run ends on its own (for a timer), on the driver's clock.
    due: float = 0.0
    stdin: bytearray = field(default_factory=bytearray)
    stdin_closed: bool = False
    #: Its pipes were closed unread (a reset let it go): what it says is nobody's.
    released: bool = False


class FakeAgent:
    """A scripted agent without I/O: :meth:`greet` once, then :meth:`receive` for each host message,
    :meth:`timer` for each :class:`After` that fires and :meth:`tick` at :meth:`next_deadline`; each
    returns the actions to carry out, in order.

    ``clock`` is the time the core is told (``trio.current_time`` in the memory backend); without one,
    time is the agent's own and moves only when a timer fires or a tick comes.

    It keeps what a real agent's container holds: ``files`` (the files under /sandbox), ``running`` (runs
    whose process has not ended), ``generation`` (resets begun). ``received`` is everything the host sent,
    ``configure`` its Configure, ``user_filter`` the filter installed, for tests to look at."""

    def __init__(self, script: AgentScript, container_id: str = "", *,
                 clock: Callable[[], float] | None = None) -> None:
        self.script = script
        self.container_id = container_id
        self.core = AgentCore(CONTAINER_ENV, version=script.version)
        self.generation = 0
        self.configure: protocol.Configure | None = None
        self.user_filter = b""
        self.files: dict[str, bytearray] = {}
        self.received: list[protocol.HostMessage] = []
        self._clock = clock
        self._now = 0.0
        self._pids = itertools.count(100)
        self._children: dict[int, _Child] = {}
        #: Runs the host sent, until their process (or cell) starts.
        self._requests: dict[int, protocol.Run] = {}
        #: What the current reset's script verified (read by its sweep, proxy answer and last look).
        self._verified: frozenset[str] = frozenset()
        #: What the proxy has written and the core not read yet.
        self._proxy_out = bytearray()
        self._out: list[Action] = []
        self._ended = self._closing = False

    # ==================================================================================== the carrier's API

    @property
    def running(self) -> dict[int, tuple[protocol.Run, RunReply]]:
        """Runs whose process (or cell) goes on, by id, with how the script said each goes."""
        return {child.request.id: (child.request, child.reply) for child in self._children.values()
                if child.request is not None and child.reply is not None}

    def greet(self) -> list[Action]:
        self._read_clock()
        return self._carry(self.core.start(self._time()))

    def receive(self, message: protocol.HostMessage) -> list[Action]:
        self.received.append(message)
        if self._ended:
            return []
        if isinstance(message, protocol.Run):
            self._requests[message.id] = message
        elif isinstance(message, protocol.Configure):
            self.configure = message
        self._read_clock()
        return self._carry(self.core.receive(message, self._time()))

    def timer(self, run_id: int) -> list[Action]:
        """A run's time is up: its end, unless something ended it first."""
        child = self._running(run_id)
        if child is None or child.reply is None or self._ended:
            return []
        self._read_clock()
        self._now = max(self._now, child.due)
        self._finish(child, child.reply)
        return self._carry([])

    def next_deadline(self) -> float | None:
        """When the core wants a :meth:`tick` (a run's deadline, the idle limit), on the driver's clock."""
        return None if self._ended else self.core.next_deadline()

    def tick(self) -> list[Action]:
        if self._ended:
            return []
        self._read_clock()
        deadline = self.core.next_deadline()
        if deadline is not None and self._clock is None:
            self._now = max(self._now, deadline)
        return self._carry(self.core.handle(ev.Tick(), self._time()))

    # ==================================================================================== carrying actions out

    def _read_clock(self) -> None:
        """Once per thing that happens, as the supervisor reads the time once per wake-up: everything it
        does about one message (a run's spawn and its scripted end...) happens at one instant."""
        if self._clock is not None:
            self._now = self._clock()

    def _time(self) -> float:
        return self._now

    def _tell(self, event: ev.Event) -> None:
        if self._closing:
            return  # the agent is exiting: what its last kills cause is nobody's business
        self._do(self.core.handle(event, self._time()))

    def _carry(self, actions: list[act.Action]) -> list[Action]:
        """Carry ``actions`` out, then what the proxy wrote meanwhile (as the supervisor's loop reads it
        next), then the agent's end if the core is stopping; returns what the carrier has to do."""
        self._do(actions)
        while self._proxy_out and not self._ended:
            data, self._proxy_out = bytes(self._proxy_out), bytearray()
            self._tell(ev.ProxyOutput(data))
        if self.core.stopping and not self._ended:
            self._closing = True
            self._do(self.core.close())
            self._end()
        out, self._out = self._out, []
        return out

    def _do(self, actions: list[act.Action]) -> None:
        for action in actions:
            if self._ended:
                return  # the agent is gone: nothing it was still to do happens
            perform = self._performers.get(type(action))
            if perform is None:
                raise UnsupportedAction(f"the in-memory agent cannot carry out {type(action).__name__}")
            perform(self, action)

    def _end(self) -> None:
        self._ended = True
        self._children.clear()
        self._out.append(CRASH)

    def _spawn_child(self, kind: str) -> _Child:
        child = _Child(next(self._pids), kind)
        self._children[child.pid] = child
        return child

    def _running(self, run_id: int) -> _Child | None:
        for child in self._children.values():
            if child.request is not None and child.request.id == run_id:
                return child
        return None

    # ------------------------------------------------------------------------------------ runs

    def _send(self, action: act.Send) -> None:
        self._out.append(action.message)

    def _spawn(self, action: act.Spawn) -> None:
        if action.code_path is not None and action.code is not None:
            self.files[action.code_path] = bytearray(action.code)
        self._start(self._spawn_child("run"), action.run_id)

    def _hand_over(self, action: act.HandOver) -> None:
        child = self._children.get(action.pid)
        if child is None or child.kind != "prestart":
            self._tell(ev.HandOverFailed(action.run_id, f"no prestarted interpreter {action.pid}"))
            return
        self.files[action.code_path] = bytearray(action.code)
        child.kind = "run"
        self._start(child, action.run_id)

    def _start(self, child: _Child, run_id: int) -> None:
        """The run's process is up: it goes as scripted."""
        request = self._requests.pop(run_id)
        reply = self.script.run(request)
        if reply.crash:
            self._end()
            return
        child.request, child.reply = request, reply
        self._tell(ev.Spawned(run_id, child.pid, ev.Readings()))
        self._go(child, reply)

    def _go(self, child: _Child, reply: RunReply) -> None:
        if reply.hang:
            return
        if reply.seconds > 0:
            child.due = self._time() + reply.seconds
            self._out.append(After(reply.seconds, child.request.id))  # type: ignore[union-attr]
            return
        self._finish(child, reply)

    def _finish(self, child: _Child, reply: RunReply) -> None:
        """The run ends as scripted: its output, its files, then its end (a cell's or the process's)."""
        child.request = child.reply = None
        for fd, data in ((1, reply.stdout), (2, reply.stderr)):
            if data and not child.released:
                self._tell(ev.ChildOutput(child.pid, fd, data))
        for path, data in reply.files.items():
            self.files[path] = bytearray(data)
        if child.kind == "interpreter":
            self._tell(ev.CellDone(child.pid, reply.exit_code))
        else:
            self._exited(child, reply.exit_code << 8)

    def _exited(self, child: _Child, status: int) -> None:
        """``child`` is reaped with wait status ``status``, its pipes drained first (unless let go)."""
        del self._children[child.pid]
        if child.kind == "run" and not child.released:
            self._tell(ev.ChildOutputClosed(child.pid, 1))
            self._tell(ev.ChildOutputClosed(child.pid, 2))
        self._tell(ev.ChildExited(child.pid, status))

    def _write_stdin(self, action: act.WriteStdin) -> None:
        child = self._children.get(action.pid)
        if child is not None and not child.stdin_closed:
            child.stdin += action.data
            child.stdin_closed = action.eof

    def _kill(self, action: act.Kill) -> None:
        child = self._children.get(action.pid)
        if child is None:
            return
        if child.kind == "interpreter" and action.signum == signal.SIGINT:
            # A KeyboardInterrupt ends the cell and keeps the interpreter (and its state).
            if child.request is not None:
                child.request = child.reply = None
                self._tell(ev.CellDone(child.pid, 128 + signal.SIGINT))
            return
        self._exited(child, action.signum)  # the wait status of a death by signal

    def _release(self, action: act.Release) -> None:
        child = self._children.get(action.pid)
        if child is not None:
            child.released = True

    def _collect(self, action: act.Collect) -> None:
        errors: dict[str, str] = {}
        room = action.max_file_bytes
        for path in action.output_paths:
            data = self.files.get(path)
            if data is None:
                errors[path] = f"{path}: no such file"
            elif len(data) > room:
                errors[path] = f"{path}: over the limit of {action.max_file_bytes} bytes for output files"
            else:
                room -= len(data)
                self._out.append(protocol.FileData(id=action.run_id, path=path, data=bytes(data)))
        self._tell(ev.Collected(action.run_id, ev.Readings(), errors))

    # ------------------------------------------------------------------------------------ prestarts

    def _arm_prestarts(self, action: act.ArmPrestarts) -> None:
        pids = [self._spawn_child("prestart").pid for _ in action.prestarts]
        self._tell(ev.PrestartsArmed(pids, [""] * len(pids)))

    def _start_fork_server(self, action: act.StartForkServer) -> None:
        # In memory a prestart is a scripted child either way: the fork server only changes how it is made.
        self._tell(ev.ForkServerStarted())

    def _drop_prestart(self, action: act.DropPrestart) -> None:
        self._children.pop(action.pid, None)

    def _check_warmth(self, action: act.CheckWarmth) -> None:
        self._tell(ev.Warmth(all_warm=True))  # an interpreter in memory starts at once

    # ------------------------------------------------------------------------------------ sessions

    def _prepare_cwd(self, action: act.PrepareCwd) -> None:
        self._tell(ev.Prepared(action.run_id))

    def _start_interpreter(self, action: act.StartInterpreter) -> None:
        self._tell(ev.InterpreterStarted(action.run_id, self._spawn_child("interpreter").pid))

    def _send_cell(self, action: act.SendCell) -> None:
        child = self._children.get(action.pid)
        if child is None:
            self._tell(ev.CellFailed(action.run_id, "the interpreter is gone"))
            return
        request = self._requests.pop(action.run_id)
        reply = self.script.run(request)
        if reply.crash:
            self._end()
            return
        child.request, child.reply = request, reply
        self._tell(ev.CellSent(action.run_id, ev.Readings()))
        self._go(child, reply)

    # ------------------------------------------------------------------------------------ files

    def _write_file(self, action: act.WriteFile) -> None:
        put = action.put
        data = self.files.setdefault(put.path, bytearray())
        if not put.offset:
            data.clear()  # a file's first chunk truncates it
        data[put.offset:put.offset + len(put.data)] = put.data
        self._tell(ev.FileWritten(put))

    def _send_file(self, action: act.SendFile) -> None:
        data = self.files.get(action.path)
        if data is None:
            self._tell(ev.FileSent(action.op_id, f"{action.path}: no such file"))
        elif len(data) > action.max_bytes:
            self._tell(ev.FileSent(action.op_id, f"{action.path}: over the limit of {action.max_bytes} bytes"))
        else:
            self._out.append(protocol.FileData(id=action.op_id, path=action.path, data=bytes(data)))
            self._tell(ev.FileSent(action.op_id))

    # ------------------------------------------------------------------------------------ configuration, network

    def _install_filter(self, action: act.InstallFilter) -> None:
        self.user_filter = action.bpf

    def _start_proxy(self, action: act.StartNetwork | act.StartProxy) -> None:
        proxy_child = self._spawn_child("proxy")
        self._tell(ev.ProxyStarted(proxy_child.pid))
        self._proxy_says(proxy.Listening(port=action.port))

    def _to_proxy(self, action: act.ToProxy) -> None:
        line = action.line
        if isinstance(line, proxy.SetPolicy):
            self._proxy_says(proxy.PolicyOk(run=line.run))
        elif "network" in self._verified:
            self._proxy_says(proxy.ResetOk())
        else:
            self._proxy_says(proxy.ResetFailed(message="scripted: the reset did not verify the network"))

    def _proxy_says(self, line: proxy.Out) -> None:
        self._proxy_out += proxy.encoder.encode(line) + b"\n"

    def _await_proxy(self, action: act.AwaitProxy) -> None:
        # The proxy in memory answers at once: what it wrote is there, or it never answers.
        while self.core.awaiting_proxy and not self._ended:
            if not self._proxy_out:
                self._tell(ev.ProxySilent())
                return
            data, self._proxy_out = bytes(self._proxy_out), bytearray()
            self._tell(ev.ProxyOutput(data))

    # ------------------------------------------------------------------------------------ the reset, the end

    def _sweep(self, action: act.Sweep) -> None:
        self.generation += 1
        self._verified = frozenset(self.script.verified(self))
        verified = self._verified
        for child in list(self._children.values()):
            if child.pid not in action.kept:
                child.released = True  # the sweep kills it: its pipes say nothing more
                self._exited(child, signal.SIGKILL)
        removed = len(self.files)
        self.files.clear()
        self._requests.clear()
        self._tell(ev.Swept(settled="processes" in verified, counted="tasks" in verified, ipc_removed=0,
                            ipc_clean="ipc" in verified, files_removed=removed))

    def _inspect(self, action: act.Inspect) -> None:
        differences = [] if "files" in self._verified else ["/sandbox unlike its first record (scripted)"]
        leftovers = [] if "state" in self._verified else ["a socket nobody holds (scripted)"]
        self._tell(ev.Inspected(differences, leftovers))

    def _kill_all(self, action: act.KillAll) -> None:
        for pid in list(self._children):
            if pid not in action.kept:
                del self._children[pid]

    #: Every action of :mod:`isol8rt.agent.core.actions`, and how it is done in memory.
    _performers: dict[type, Callable[..., None]] = {
        act.Send: _send, act.Spawn: _spawn, act.HandOver: _hand_over, act.WriteStdin: _write_stdin,
        act.Kill: _kill, act.Release: _release, act.Collect: _collect,
        act.ArmPrestarts: _arm_prestarts, act.StartForkServer: _start_fork_server, act.DropPrestart: _drop_prestart,
        act.CheckWarmth: _check_warmth,
        act.PrepareCwd: _prepare_cwd, act.StartInterpreter: _start_interpreter, act.SendCell: _send_cell,
        act.WriteFile: _write_file, act.SendFile: _send_file,
        act.InstallFilter: _install_filter, act.StartNetwork: _start_proxy, act.StartProxy: _start_proxy,
        act.ToProxy: _to_proxy, act.AwaitProxy: _await_proxy,
        act.Sweep: _sweep, act.Inspect: _inspect, act.KillAll: _kill_all,
    }
