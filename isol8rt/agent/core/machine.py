"""The agent's side of the conversation with the host, and the life of every run, as a state machine
that does no I/O (see the package's docstring for the rules it keeps)."""

from __future__ import annotations

import os
import signal
from collections import deque
from typing import TYPE_CHECKING, Callable

from ..protocol import (
    PROTOCOL_VERSION,
    AgentMessage,
    Configure,
    Done,
    Exit,
    Failed,
    GetFile,
    HostMessage,
    Log,
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
    agent_decoder,
)
from . import events as ev
from .actions import (
    Action,
    ArmPrestarts,
    CheckWarmth,
    Collect,
    DropPrestart,
    HandOver,
    Inspect,
    InstallFilter,
    Kill,
    KillAll,
    PrepareCwd,
    Release,
    Send,
    SendCell,
    SendFile,
    Spawn,
    StartForkServer,
    StartInterpreter,
    StartNetwork,
    Sweep,
    ToProxy,
    WriteFile,
    WriteStdin,
)
from .prestarts import PIPE_SIZE, WARM_POLL_S, Prestarts
from .runs import ActiveRun, Runs
from .sessions import Interpreter, Sessions

if TYPE_CHECKING:  # only filtered networking loads it (and the proxy's lines): see _configure
    from .network import Network

_SANDBOX_PATH = "/sandbox/.local/bin:/sandbox/node_modules/.bin:/sandbox/.npm-global/bin:"
# Variables of the container's own environment that describe the agent, not the user's programs.
_NOT_INHERITED = ("HOME", "PWD", "OLDPWD")


class DriverError(Exception):
    """The driver used the core out of order: anything before :meth:`AgentCore.start`, a second
    ``start``, a host message while an action's report is owed, or an event the core does not know. A
    bug in the driver, never caused by the host."""


class _Starting:
    """A run admitted whose process (or cell) has not started yet."""

    __slots__ = ("request", "arrived", "prestart_pid")

    def __init__(self, request: Run, arrived: float) -> None:
        self.request = request
        self.arrived = arrived
        #: The prestarted interpreter being handed the program (0: none).
        self.prestart_pid = 0


class _Resetting:
    """A reset under way: what it removed, and each verdict as it comes (None: not judged)."""

    __slots__ = ("op_id", "detail", "processes", "tasks", "ipc", "network", "starting_proxy")

    def __init__(self, op_id: int) -> None:
        self.op_id = op_id
        self.detail: dict[str, int] = {}
        self.processes = self.tasks = self.ipc = False
        #: None without filtered networking (then not named at all).
        self.network: bool | None = None
        self.starting_proxy = False

    def verified(self, files: bool, state: bool) -> list[str]:
        verdicts = (("processes", self.processes), ("tasks", self.tasks), ("ipc", self.ipc),
                    ("network", self.network), ("files", files), ("state", state))
        return [name for name, held in verdicts if held]


class _HostBroke:
    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what


_HOST_EOF = object()


class AgentCore:
    """The agent's core. ``container_env`` is the container's own environment (the image's ENV and what
    Docker adds; never secrets), under which user processes run; ``pid`` and ``version`` go in every
    Ready; ``debug`` sends the agent's info and debug lines to the host too.

    Every call takes ``now``, a monotonic time in seconds, and returns the actions to carry out in order.
    """

    def __init__(self, container_env: dict[str, str], *, pid: int = 0, debug: bool = False,
                 version: int = PROTOCOL_VERSION) -> None:
        self._base_env = {key: value for key, value in container_env.items() if key not in _NOT_INHERITED}
        self._pid = pid
        self._debug = debug
        self._version = version
        self._started = False
        self._now = 0.0
        self._decoder = agent_decoder()
        self._inbox: deque[object] = deque()
        self._host_broken = False
        self._last_heard = 0.0
        #: The agent is to exit once what it has to say is written.
        self.stopping = False
        self._configured = False
        self._idle_timeout_s = 0.0
        self._shared_network = False
        self.generation = 0
        self.runs = Runs()
        self.prestarts = Prestarts()
        self.sessions = Sessions()
        #: Filtered networking, once a Configure asks for it.
        self.network: Network | None = None
        self._starting: dict[int, _Starting] = {}
        self._collecting: dict[int, ActiveRun] = {}
        #: The Failed answer owed for a file put in chunks that did not all arrive whole, by operation id.
        self._failed_puts: dict[int, Failed] = {}
        self._resetting: _Resetting | None = None
        #: While prestarts are armed: the messages to send once they are, and the Ready to announce then.
        self._arming: tuple[list[AgentMessage], Ready] | None = None
        self._handlers: dict[type, Callable] = {
            ev.Tick: self._on_tick, ev.Terminated: self._on_stop, ev.HostGone: self._on_stop,
            ev.ChildOutput: self._on_output, ev.ChildOutputClosed: self._on_output_closed,
            ev.ChildExited: self._on_exited, ev.CellDone: self._on_cell_done,
            ev.ProxyOutput: self._on_proxy_output, ev.ProxyStderr: self._on_proxy_stderr,
            ev.ProxySilent: self._on_proxy_silent,
            ev.Spawned: self._on_spawned, ev.PrepareFailed: self._on_prepare_failed,
            ev.SpawnFailed: self._on_spawn_failed, ev.HandOverFailed: self._on_hand_over_failed,
            ev.PrestartsArmed: self._on_prestarts_armed, ev.Warmth: self._on_warmth,
            ev.ForkServerStarted: self._on_fork_server_started,
            ev.Prepared: self._on_prepared, ev.InterpreterStarted: self._on_interpreter_started,
            ev.InterpreterFailed: self._on_interpreter_failed, ev.CellSent: self._on_cell_sent,
            ev.CellFailed: self._on_cell_failed, ev.FilterRefused: self._on_filter_refused,
            ev.ProxyStarted: self._on_proxy_started, ev.NetworkRefused: self._on_network_refused,
            ev.FileWritten: self._on_file_written, ev.FileNotWritten: self._on_file_not_written,
            ev.FileSent: self._on_file_sent, ev.Collected: self._on_collected,
            ev.Swept: self._on_swept, ev.Inspected: self._on_inspected,
        }

    # ==================================================================================== the driver's API

    def start(self, now: float, greeted: bool = False) -> list[Action]:
        """The agent serves: its first word to the host is a Ready. ``greeted``: the driver has sent that
        Ready already (:mod:`isol8rt.agent.greeting`, before it loaded the rest of the agent)."""
        if self._started:
            raise DriverError("start() is called once")
        self._started = True
        self._now = self._last_heard = now
        return [] if greeted else [Send(Ready(version=self._version, generation=0, pid=self._pid))]

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes the host sent (b"": its stream ended). Each complete message waits, in order, for
        :meth:`next_actions`."""
        self._require_started(now)
        self._last_heard = now
        if not data:
            self._inbox.append(_HOST_EOF)
        elif not self._host_broken:
            try:
                self._inbox.extend(self._decoder.feed(data))
            except ProtocolError as exc:
                self._host_broken = True
                self._inbox.append(_HostBroke(str(exc)))

    def next_actions(self, now: float) -> list[Action] | None:
        """The actions for the next message received, or None when none waits. Carry them all out (and
        report what they report) before asking again: a message sees every effect of the one before."""
        if not self._inbox:
            return None
        item = self._inbox.popleft()
        if item is _HOST_EOF:
            self._require_started(now)
            self.stopping = True  # nobody can ever talk to us again
            return []
        if isinstance(item, _HostBroke):
            self._require_started(now)
            return self._host_broke(item.what)
        return self.receive(item, now)  # type: ignore[arg-type]

    def receive(self, message: HostMessage, now: float) -> list[Action]:
        """The actions for one host message (decoded elsewhere: by a test, or an in-memory agent)."""
        self._require_started(now)
        kind = type(message)
        if self._resetting is not None or self._arming is not None or self._starting or self._collecting:
            # It would be handled in the middle of the one before (in a container being swept, before
            # the reset's Done...): the driver has not reported every action of that one yet.
            raise DriverError(f"{kind.__name__} given while an action's report is owed")
        if kind is Run:
            return self._admit(message)  # type: ignore[arg-type]
        if kind is Stdin:
            run = self.runs.get(message.id)  # type: ignore[union-attr]
            if run is None or run.session is not None:
                return []  # over already (the host could not know), or in a session: no stdin pipe
            return [WriteStdin(run.pid, message.data, message.eof)]  # type: ignore[union-attr]
        if kind is Signal:
            run = self.runs.get(message.id)  # type: ignore[union-attr]
            if run is None or run.status is not None:
                return []
            return [Kill(run.pid, message.signum)]  # type: ignore[union-attr]
        if kind is PutFile:
            # Whatever a prestarted interpreter would have seen at start-up may have changed.
            self.prestarts.stale = True
            return [WriteFile(message)]  # type: ignore[arg-type]
        if kind is GetFile:
            return [SendFile(message.id, message.path, message.max_bytes)]  # type: ignore[union-attr]
        if kind is Configure:
            return self._configure(message)  # type: ignore[arg-type]
        if kind is Reset:
            return self._begin_reset(message.id)  # type: ignore[union-attr]
        if kind is Ping:
            return [Send(Done(id=message.id))]  # type: ignore[union-attr]
        if kind is Shutdown:
            self.stopping = True
            return []
        raise DriverError(f"{kind.__name__} is not a host message")

    def handle(self, event: ev.Event, now: float) -> list[Action]:
        """The actions for something that happened (see :mod:`.events`)."""
        self._require_started(now)
        handler = self._handlers.get(type(event))
        if handler is None:
            raise DriverError(f"{type(event).__name__} is not an event")
        return handler(event)

    def next_deadline(self) -> float | None:
        """When the core wants a Tick at the latest (None: only when something happens)."""
        deadlines = []
        run_deadline = self.runs.next_deadline()
        if run_deadline is not None and run_deadline != float("inf"):
            deadlines.append(run_deadline)
        if self.prestarts.pending is not None:
            deadlines.append(self._now + WARM_POLL_S)
        # The idle limit counts only while nothing runs (see on_tick): a run that outlives it would
        # otherwise leave this deadline in the past, and a driver that waits for it would spin.
        if self._idle_timeout_s > 0 and not len(self.runs):
            deadlines.append(self._last_heard + self._idle_timeout_s)
        return min(deadlines, default=None)

    @property
    def awaiting_proxy(self) -> bool:
        """A reset waits for the proxy's answer (see :class:`~.actions.AwaitProxy`)."""
        return self.network is not None and self.network.awaiting

    def close(self) -> list[Action]:
        """The agent is exiting: what to kill on the way out."""
        actions: list[Action] = [Kill(run.pid, signal.SIGKILL) for run in self.runs]
        actions += [DropPrestart(pid) for pid in self.prestarts.drop_all()]
        actions.append(KillAll(self._kept()))
        return actions

    # ==================================================================================== helpers

    def _require_started(self, now: float) -> None:
        if not self._started:
            raise DriverError("the core is given nothing before start()")
        self._now = now

    def _log(self, level: str, message: str) -> list[Action]:
        if self._debug or level in ("warning", "error"):
            return [Send(Log(level=level, message=message))]  # type: ignore[arg-type]
        return []

    def _host_broke(self, what: str) -> list[Action]:
        """The host broke the protocol: nothing it says can be trusted any more, and the agent exits
        (its container with it), as the host gives up on an agent that breaks it."""
        self.stopping = True
        return self._log("error", f"protocol error from host: {what}")

    def _on_stop(self, event: ev.Event) -> list[Action]:
        self.stopping = True
        return []

    def _environment(self, env: dict[str, str]) -> dict[str, str]:
        """A user process's environment: the container's (the image's ENV, as `docker exec` would give),
        under the run's own. PATH gets the sandbox's tool directories in front unless the run sets one."""
        merged = {**self._base_env, **env}
        if "PATH" not in env:
            merged["PATH"] = _SANDBOX_PATH + self._base_env.get("PATH", os.defpath)
        return merged

    def _kept(self) -> list[int]:
        """Processes whose tasks a sweep leaves alone besides the agent's own: the proxy, if there is one."""
        if self.network is not None and self.network.proxy_pid:
            return [self.network.proxy_pid]
        return []

    # ==================================================================================== time

    def _on_tick(self, event: ev.Tick) -> list[Action]:
        actions = self.runs.enforce_deadlines(self._now)
        actions += self._check_warmth()
        if (self._idle_timeout_s > 0 and not len(self.runs)
                and self._now - self._last_heard >= self._idle_timeout_s):
            actions += self._log("info", f"no word from the host for {self._idle_timeout_s:g} s: exiting")
            self.stopping = True
        return actions

    # ==================================================================================== configure, readiness

    def _configure(self, message: Configure) -> list[Action]:
        if self._configured:
            return self._host_broke("Configure is sent once")
        self._configured = True
        actions: list[Action] = []
        if message.user_filter:
            actions.append(InstallFilter(message.user_filter))
        self._idle_timeout_s = message.idle_timeout_s
        self._shared_network = message.shared_network
        if message.network is not None:
            from .network import Network  # only filtered networking loads the proxy's lines

            self.network = Network(message.network)
            actions.append(StartNetwork(message.network.proxy_port, message.network.policy))
        self.prestarts.specs = list(message.prestart)
        if message.preload is not None and message.prestart:
            # After the filter (the server's runs install it) and before the first arming (they are its forks).
            spec = message.prestart[0]
            path = self._environment(spec.env).get("PATH", os.defpath)
            actions.append(StartForkServer(spec.argv[0] if spec.argv else "", list(message.preload), path))
        ready = Ready(version=self._version, generation=self.generation, pid=self._pid, reason="configured")
        return actions + self._arm([], ready)

    def _on_fork_server_started(self, event: ev.ForkServerStarted) -> list[Action]:
        if event.problem:
            return self._log("warning", f"{event.problem}; runs start fresh interpreters")
        return []

    def _on_filter_refused(self, event: ev.FilterRefused) -> list[Action]:
        return self._log("error", f"the per-run seccomp filter is unusable: {event.reason}")

    def _arm(self, then: list[AgentMessage], ready: Ready) -> list[Action]:
        """Start the prestarted interpreters afresh; once they are, send ``then`` and announce ``ready``."""
        actions: list[Action] = [DropPrestart(pid) for pid in self.prestarts.drop_all()]
        self._arming = (then, ready)
        launches = [Prestart(argv=spec.argv, env=self._environment(spec.env), cwd=spec.cwd,
                             code_path=spec.code_path) for spec in self.prestarts.specs]
        actions.append(ArmPrestarts(launches))
        return actions

    def _on_prestarts_armed(self, event: ev.PrestartsArmed) -> list[Action]:
        if self._arming is None:
            return []
        self.prestarts.armed(event.pids)
        actions: list[Action] = []
        for spec, reason in zip(self.prestarts.specs, event.problems):
            if reason:
                program = spec.argv[0] if spec.argv else "an empty argv"
                actions += self._log("warning", f"cannot prestart {program}: {reason}")
        then, ready = self._arming
        self._arming = None
        actions += [Send(message) for message in then]
        self.prestarts.announce(ready, self._now)
        return actions + self._check_warmth()

    def _check_warmth(self) -> list[Action]:
        if self.prestarts.pending is None:
            return []
        if self.prestarts.ready_now(self._now):
            return [Send(self.prestarts.release())]
        return [CheckWarmth(self.prestarts.pids)]

    def _on_warmth(self, event: ev.Warmth) -> list[Action]:
        if event.all_warm and self.prestarts.pending is not None:
            return [Send(self.prestarts.release())]
        return []

    # ==================================================================================== runs: start

    def _admit(self, request: Run) -> list[Action]:
        """Start a run now, or once filtered networking is ready for it."""
        if self.network is None:
            return self._start_run(request)
        self.network.deferred.append(request)
        return self._admit_deferred()

    def _admit_deferred(self) -> list[Action]:
        network = self.network
        assert network is not None  # runs are deferred only with filtered networking
        failed, started, actions = network.admissible()
        out: list[Action] = [Send(answer) for answer in failed]
        for request in started:
            out += self._start_run(request)
        return out + actions

    def _start_run(self, request: Run) -> list[Action]:
        if request.id in self.runs or request.id in self._starting:
            return [Send(Failed(id=request.id, message=f"run {request.id} is already running", kind="busy"))]
        failed = self._failed_puts.pop(request.id, None)
        if failed is not None:
            return [Send(failed)]  # a file of the run did not arrive whole: that is the run's answer
        if request.session is not None:
            return self._start_session_run(request)
        starting = self._starting[request.id] = _Starting(request, self._now)
        pid = self.prestarts.take(request)
        if pid is not None:
            starting.prestart_pid = pid
            return [HandOver(request.id, pid, request.code_path, request.code)]  # type: ignore[arg-type]
        return self._start_cold(request)

    def _start_cold(self, request: Run) -> list[Action]:
        # Interpreters started before this run would have seen another process come first: discarded.
        actions: list[Action] = [DropPrestart(pid) for pid in self.prestarts.drop_all()]
        actions.append(Spawn(request.id, request.argv, self._environment(request.env), request.cwd,
                             request.code_path, request.code))
        return actions

    def _on_hand_over_failed(self, event: ev.HandOverFailed) -> list[Action]:
        starting = self._starting.get(event.run_id)
        if starting is None or not starting.prestart_pid:
            return []
        actions = self._log("warning", f"prestarted process unusable: {event.reason}")
        actions.append(DropPrestart(starting.prestart_pid))
        starting.prestart_pid = 0
        return actions + self._start_cold(starting.request)

    def _on_spawned(self, event: ev.Spawned) -> list[Action]:
        starting = self._starting.pop(event.run_id, None)
        if starting is None:
            return []
        if starting.prestart_pid:
            # Anything else started before this run would now have seen another process come first.
            self.prestarts.stale = True
        request = starting.request
        self.runs.add(ActiveRun(request, event.pid, starting.arrived, self._now, event.before))
        if request.stdin or not request.stdin_open:
            return [WriteStdin(event.pid, request.stdin, eof=not request.stdin_open)]
        return []

    def _on_prepare_failed(self, event: ev.PrepareFailed) -> list[Action]:
        starting = self._starting.pop(event.run_id, None)
        if starting is None:
            return []
        if starting.request.session is not None:
            self.sessions.free(starting.request.session, event.run_id)
        return [Send(Failed(id=event.run_id, message=event.message, kind=event.kind))]

    def _on_spawn_failed(self, event: ev.SpawnFailed) -> list[Action]:
        starting = self._starting.pop(event.run_id, None)
        if starting is None:
            return []
        # As a shell reports it: the run happened and failed, with 127 (not found) or 126.
        argv = starting.request.argv
        message = f"isol8rt: cannot run {argv[0] if argv else 'an empty argv'}: {event.reason}\n"
        return [Send(Output(id=event.run_id, fd=2, data=message.encode())),
                Send(Exit(id=event.run_id, exit_code=127 if event.not_found else 126))]

    # ==================================================================================== runs: sessions

    def _start_session_run(self, request: Run) -> list[Action]:
        name: str = request.session  # type: ignore[assignment]
        if request.code is None:
            return [Send(Failed(id=request.id, message="a run in a persistent session needs code",
                                kind="bad_request"))]
        if self.sessions.busy_with(name) is not None:
            return [Send(Failed(id=request.id, message=f"the {name} session is busy with another run", kind="busy"))]
        if len(request.stdin) > PIPE_SIZE:
            return [Send(Failed(id=request.id, message=f"stdin for a session run is limited to {PIPE_SIZE} bytes",
                                kind="too_large"))]
        self.sessions.claim(name, request.id)
        self._starting[request.id] = _Starting(request, self._now)
        return [PrepareCwd(request.id, request.cwd)]

    def _on_prepared(self, event: ev.Prepared) -> list[Action]:
        starting = self._starting.get(event.run_id)
        if starting is None:
            return []
        request = starting.request
        name: str = request.session  # type: ignore[assignment]  # a session run's
        interpreter = self.sessions.get(name)
        if interpreter is None:
            return [StartInterpreter(event.run_id, name, self._environment(request.env))]
        return self._send_cell(starting, interpreter)

    def _on_interpreter_started(self, event: ev.InterpreterStarted) -> list[Action]:
        starting = self._starting.get(event.run_id)
        if starting is None:
            return []
        interpreter = self.sessions.started(starting.request.session, event.pid)  # type: ignore[arg-type]
        return self._send_cell(starting, interpreter)

    def _on_interpreter_failed(self, event: ev.InterpreterFailed) -> list[Action]:
        return self._session_run_failed(event.run_id, "spawn",
                                        lambda name: f"cannot start the {name} session: {event.reason}")

    def _send_cell(self, starting: _Starting, interpreter: Interpreter) -> list[Action]:
        request = starting.request
        if request.stdin and not interpreter.takes_stdin:
            return self._session_run_failed(request.id, "unsupported", lambda name: (
                f"stdin is not available to runs in a persistent {name} session"))
        code: bytes = request.code  # type: ignore[assignment]  # a session run without code is refused at once
        return [SendCell(request.id, interpreter.pid, code.decode("utf-8", "replace"), request.cwd,
                         self._environment(request.env), request.stdin)]

    def _session_run_failed(self, run_id: int, kind: str, describe: Callable[[str], str]) -> list[Action]:
        """A session run that did not start: ``describe`` says why, given the session's name."""
        starting = self._starting.pop(run_id, None)
        if starting is None:
            return []
        name: str = starting.request.session  # type: ignore[assignment]
        self.sessions.free(name, run_id)
        return [Send(Failed(id=run_id, message=describe(name), kind=kind))]

    def _on_cell_sent(self, event: ev.CellSent) -> list[Action]:
        starting = self._starting.pop(event.run_id, None)
        if starting is None:
            return []
        request = starting.request
        interpreter = self.sessions.get(request.session)  # type: ignore[arg-type]
        assert interpreter is not None  # it was just given the cell
        self.runs.add(ActiveRun(request, interpreter.pid, starting.arrived, self._now, event.before,
                                session=interpreter.name))
        return []

    def _on_cell_failed(self, event: ev.CellFailed) -> list[Action]:
        starting = self._starting.get(event.run_id)
        if starting is None:
            return []
        actions = self._session_run_failed(event.run_id, "spawn",
                                           lambda name: f"the {name} session is gone: {event.reason}")
        interpreter = self.sessions.get(starting.request.session)  # type: ignore[arg-type]
        if interpreter is not None:
            actions += self._end_session(interpreter, None)
        return actions

    def _on_cell_done(self, event: ev.CellDone) -> list[Action]:
        interpreter = self.sessions.of_process(event.pid)
        if interpreter is None:
            return []
        run = self._session_run(interpreter)
        if run is None:
            return []
        run.cell_status = event.status
        return self._maybe_finish(run)

    def _session_run(self, interpreter: Interpreter) -> ActiveRun | None:
        run_id = self.sessions.busy_with(interpreter.name)
        return None if run_id is None else self.runs.get(run_id)

    def _end_session(self, interpreter: Interpreter, status: int | None) -> list[Action]:
        """The interpreter is gone (it exited, or its control socket failed): its run, if one is going,
        ends with it (killed, when no wait status says otherwise)."""
        self.sessions.ended(interpreter)
        actions: list[Action] = [Release(interpreter.pid)]
        run = self._session_run(interpreter)
        if run is not None and not run.ended:
            run.status = status if status is not None else signal.SIGKILL  # a wait status: killed
            actions += self._maybe_finish(run)
        return actions

    # ==================================================================================== runs: going and ending

    def _run_of(self, pid: int) -> ActiveRun | None:
        """The run that output of child ``pid`` belongs to: its own, or its session's current one."""
        run = self.runs.of_process(pid)
        if run is not None:
            return run
        interpreter = self.sessions.of_process(pid)
        return None if interpreter is None else self._session_run(interpreter)

    def _on_output(self, event: ev.ChildOutput) -> list[Action]:
        run = self._run_of(event.pid)
        if run is None:
            return []  # a session's output between runs belongs to no run: dropped
        output = run.forward(event.fd, event.data)
        return [] if output is None else [Send(output)]

    def _on_output_closed(self, event: ev.ChildOutputClosed) -> list[Action]:
        run = self.runs.of_process(event.pid)
        if run is None:
            return []
        run.open_streams.discard(event.fd)
        return self._maybe_finish(run)

    def _on_exited(self, event: ev.ChildExited) -> list[Action]:
        pid = event.pid
        run = self.runs.of_process(pid)
        if run is not None:
            run.status = event.status
            run.usage = event.usage
            return self._maybe_finish(run)
        if self.prestarts.died(pid):
            return [DropPrestart(pid, kill=False)]
        interpreter = self.sessions.of_process(pid)
        if interpreter is not None:
            session_run = self._session_run(interpreter)
            if session_run is not None and session_run.usage is None:
                session_run.usage = event.usage
            return self._end_session(interpreter, event.status)
        if self.network is not None and pid == self.network.proxy_pid:
            self.network.proxy_gone()
            return self._log("error", f"the proxy exited (status {event.status}); it restarts with the next reset")
        return []  # an orphan the agent reaped as init, or a child it had already let go

    def _maybe_finish(self, run: ActiveRun) -> list[Action]:
        """Once a run has ended and its output is all in: its Exit is on its way (after the proxy's log
        of its connections, when it asked for that, and its output files)."""
        if not run.ended or run.open_streams or run.flushing:
            return []
        request = run.request
        network = self.network
        if request.log_network and network is not None and network.proxy_ready and not run.network_log_flushed:
            # Tunnels are logged when they close: have the proxy close this run's connections first.
            from ..proxy_protocol import ResetConnections

            run.flushing = True
            run.network_log_flushed = True
            return [ToProxy(ResetConnections())]
        self.runs.remove(run)
        self._last_heard = self._now  # a session's idle time counts from its last run's end too
        if run.session is not None:
            self.sessions.free(run.session, request.id)
        run.ended_at = self._now
        self._collecting[request.id] = run
        session_pid = run.pid if run.session is not None and run.usage is None else 0
        return [Collect(request.id, list(request.output_paths), request.max_file_bytes, session_pid)]

    def _on_collected(self, event: ev.Collected) -> list[Action]:
        run = self._collecting.pop(event.run_id, None)
        if run is None:
            return []
        return [Send(run.exit(event.after, event.file_errors))]

    # ==================================================================================== files

    def _on_file_written(self, event: ev.FileWritten) -> list[Action]:
        put = event.put
        if not (put.ack and put.last):
            return []
        # An earlier chunk of this file that failed is the answer: the file is not whole.
        failed = self._failed_puts.pop(put.id, None)
        return [Send(failed or Done(id=put.id))]

    def _on_file_not_written(self, event: ev.FileNotWritten) -> list[Action]:
        put = event.put
        failed = Failed(id=put.id, message=f"cannot write file {event.reason}", kind=event.kind)
        if put.ack and put.last:
            self._failed_puts.pop(put.id, None)  # one answer per operation: this one
            return [Send(failed)]
        # Answered later: by the acknowledged last chunk, or by the Run that comes with this id.
        self._failed_puts.setdefault(put.id, failed)
        return []

    def _on_file_sent(self, event: ev.FileSent) -> list[Action]:
        error = event.error
        if error is None:
            return [Send(Done(id=event.op_id))]
        kind = "not_found" if "no such file" in error else ("too_large" if "limit" in error else "bad_path")
        return [Send(Failed(id=event.op_id, message=error, kind=kind))]

    # ==================================================================================== filtered networking

    def _on_network_refused(self, event: ev.NetworkRefused) -> list[Action]:
        if self.network is None:
            return []
        # Without the firewall, filtered mode would be no filter at all: every run is refused instead.
        self.network.failure = f"filtered networking could not be set up: {event.reason}"
        return self._log("error", f"cannot set up filtered networking: {event.reason}")

    def _on_proxy_started(self, event: ev.ProxyStarted) -> list[Action]:
        if self.network is None:
            return []
        self.network.proxy_started(event.pid)
        resetting = self._resetting
        if resetting is not None and resetting.starting_proxy:
            resetting.starting_proxy = False
            resetting.network = True  # it comes up on its own; runs wait for it meanwhile
            return self._inspect()
        return []

    def _on_proxy_stderr(self, event: ev.ProxyStderr) -> list[Action]:
        return self._log("warning", f"proxy: {event.data.decode(errors='replace').strip()}")

    def _on_proxy_output(self, event: ev.ProxyOutput) -> list[Action]:
        network = self.network
        if network is None:
            return []
        if not event.data:
            if network.awaiting:  # the proxy is gone before answering the reset
                network.reset_unanswered()
                return self._network_verdict(False)
            return []
        actions: list[Action] = []
        for line, raw in network.lines(event.data):
            if network.awaiting:
                verdict, more = network.reset_answer(line, self._resetting.detail)  # type: ignore[union-attr]
                actions += more
                if verdict is not None:
                    actions += self._network_verdict(verdict)
            else:
                actions += self._on_proxy_line(line, raw)
        return actions

    def _on_proxy_line(self, line, raw: bytes) -> list[Action]:
        from ..proxy_protocol import Error, Listening, PolicyOk, RequestLog, ResetOk

        network = self.network
        assert network is not None  # the proxy's lines are read only with filtered networking
        kind = type(line)
        if kind is RequestLog:
            for run in self.runs:
                run.network_log.append(raw)
            return []
        if kind is Listening:
            network.listening = True
            return self._admit_deferred()
        if kind is PolicyOk:
            network.policy_pending = False
            return self._admit_deferred()
        if kind is ResetOk:
            actions: list[Action] = []
            for run in self.runs:
                if run.flushing:
                    run.flushing = False
                    actions += self._maybe_finish(run)
            return actions
        if kind is Error:
            actions = self._log("warning", f"proxy: {line.message}")
            refused = network.policy_refused()
            if refused is not None:
                # The policy a run asked for was refused (bad regex...): that run fails, nothing opens up.
                actions.append(Send(Failed(id=refused.id, message=f"network policy refused: {line.message}",
                                           kind="bad_request")))
                actions += self._admit_deferred()
            return actions
        return []  # reset_failed outside a reset answers nothing

    def _on_proxy_silent(self, event: ev.ProxySilent) -> list[Action]:
        if self.network is None or not self.network.awaiting:
            return []
        self.network.reset_unanswered()
        return self._network_verdict(False)

    # ==================================================================================== the reset

    def _begin_reset(self, op_id: int) -> list[Action]:
        """Back to a never-used state (see reset.py): forget every run, session and prestart, then have the
        driver sweep the container; the verdicts come in as the sweep, the proxy and the last look
        report, and the Ready names every one that held."""
        actions: list[Action] = []
        for run in self.runs.clear():
            if run.session is None:
                actions.append(Release(run.pid))  # its output is nobody's any more
        self._starting.clear()
        self._collecting.clear()
        for interpreter in self.sessions.clear():
            actions += [Kill(interpreter.pid, signal.SIGKILL), Release(interpreter.pid)]
        actions += [DropPrestart(pid) for pid in self.prestarts.drop_all()]
        self._resetting = _Resetting(op_id)
        actions.append(Sweep(self._kept()))
        return actions

    def _on_swept(self, event: ev.Swept) -> list[Action]:
        resetting = self._resetting
        if resetting is None:
            return []
        resetting.detail["ipc_removed"] = event.ipc_removed
        resetting.detail["files_removed"] = event.files_removed
        # No task of the sandbox user lives; with a census, the kernel's count says nothing else does.
        resetting.processes = event.settled
        resetting.tasks = event.settled and event.counted
        resetting.ipc = event.ipc_clean
        if self.network is None:
            return self._inspect()
        verdict, actions = self.network.begin_reset()
        if verdict is not None:
            resetting.network = verdict
            return actions + self._inspect()
        resetting.starting_proxy = not self.network.awaiting
        return actions

    def _network_verdict(self, held: bool) -> list[Action]:
        assert self.network is not None  # a verdict on filtered networking
        actions: list[Action] = []
        if not held:
            pid = self.network.proxy_gone()
            if pid:
                actions.append(Release(pid))
        if self._resetting is None:
            return actions
        self._resetting.network = held
        return actions + self._inspect()

    def _inspect(self) -> list[Action]:
        proxy_pid = self.network.proxy_pid if self.network is not None else 0
        return [Inspect(self._shared_network, proxy_pid)]

    def _on_inspected(self, event: ev.Inspected) -> list[Action]:
        resetting = self._resetting
        if resetting is None:
            return []
        self._resetting = None
        actions: list[Action] = []
        for difference in event.differences + event.leftovers:
            actions += self._log("warning", f"reset left {difference}")
        self._failed_puts.clear()
        verified = resetting.verified(files=not event.differences, state=not event.leftovers)
        self.generation += 1
        ready = Ready(version=self._version, generation=self.generation, pid=self._pid, reason="reset",
                      verified=verified)
        return actions + self._arm([Done(id=resetting.op_id, detail=resetting.detail)], ready)
