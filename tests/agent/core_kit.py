"""Driving the agent's core by hand in tests: host messages (as bytes) and events in, actions out, on a
clock the test turns itself. No root, no process, no sleep."""

from __future__ import annotations

from isol8rt.agent import protocol
from isol8rt.agent.core import AgentCore
from isol8rt.agent.core import actions as act
from isol8rt.agent.core import events as ev
from isol8rt.agent.protocol import Prestart, Run

#: The container's environment as the agent finds it (HOME and PWD describe the agent: not inherited).
CONTAINER_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/root", "PWD": "/"}
#: What a user process gets from it when the run sets no PATH of its own.
USER_PATH = "/sandbox/.local/bin:/sandbox/node_modules/.bin:/sandbox/.npm-global/bin:/usr/bin:/bin"
PY = ["python3", "/sandbox/main.py"]
PRESTART = Prestart(argv=PY, env={"A": "1"}, cwd="/sandbox", code_path="/sandbox/main.py")
NOTHING = ev.Readings(oom_kills=0)
#: A reset's sweep that removed nothing and left nothing, and the detail its Done reports then.
CLEAN = ev.Swept(settled=True, counted=True, ipc_removed=0, ipc_clean=True, files_removed=0)
CLEAN_DETAIL = {"ipc_removed": 0, "files_removed": 0}


def user_env(env: dict[str, str]) -> dict[str, str]:
    return {"LANG": "C.UTF-8", "PATH": USER_PATH, **env}


def python_run(run_id: int, code: bytes = b"print(1)", **fields) -> Run:
    """A run that matches PRESTART."""
    return Run(id=run_id, argv=PY, env={"A": "1"}, cwd="/sandbox", code=code, code_path="/sandbox/main.py", **fields)


def sent(actions: list) -> list:
    """The messages among ``actions`` that go to the host."""
    return [action.message for action in actions if type(action) is act.Send]


def others(actions: list) -> list:
    """The actions that are not messages to the host."""
    return [action for action in actions if type(action) is not act.Send]


def exited(status: int = 0) -> int:
    """The wait status of a process that exited with ``status``."""
    return status << 8


class CoreHarness:
    def __init__(self, *, debug: bool = False) -> None:
        self.core = AgentCore(CONTAINER_ENV, pid=1, debug=debug)
        self.now = 100.0
        self.encoder = protocol.FrameEncoder()

    def start(self) -> list:
        return self.core.start(self.now)

    def host(self, message, *, after: float = 0.0) -> list:
        """The actions for one host message, sent as bytes."""
        self.now += after
        self.core.receive_data(self.encoder.encode(message), self.now)
        actions = self.core.next_actions(self.now)
        assert self.core.next_actions(self.now) is None
        return actions

    def tell(self, event, *, after: float = 0.0) -> list:
        self.now += after
        return self.core.handle(event, self.now)

    def tick(self, after: float = 0.0) -> list:
        return self.tell(ev.Tick(), after=after)

    # ------------------------------------------------------------------------ common paths, checked on the way

    def configure(self, prestarts: list[Prestart] = (), warm_pids: list[int] = (), **fields) -> list:
        """Configure, prestarts armed as ``warm_pids`` and warm at once; the actions after the arming."""
        actions = self.host(protocol.Configure(prestart=list(prestarts), **fields))
        assert type(actions[-1]) is act.ArmPrestarts
        done = self.tell(ev.PrestartsArmed(pids=list(warm_pids), problems=[""] * len(warm_pids)))
        if warm_pids:
            assert done == [act.CheckWarmth(list(warm_pids))]
            done = self.tell(ev.Warmth(all_warm=True))
        assert sent(done)[-1] == protocol.Ready(version=protocol.PROTOCOL_VERSION, pid=1, reason="configured")
        return actions

    def spawned(self, run: Run, pid: int, before: ev.Readings = NOTHING, *, after: float = 0.0) -> list:
        """``run`` started cold as ``pid``; the actions that follow its start."""
        actions = self.host(run, after=after)
        assert type(actions[-1]) in (act.Spawn, act.HandOver), actions
        return self.tell(ev.Spawned(run.id, pid, before), after=0.001)

    def ended(self, pid: int, status: int = 0, *, after: float = 0.0) -> list:
        """The process ``pid`` closed both pipes and exited; the actions then."""
        self.tell(ev.ChildOutputClosed(pid, 1), after=after)
        self.tell(ev.ChildOutputClosed(pid, 2))
        return self.tell(ev.ChildExited(pid, status, ev.ChildUsage(3.0, 4.0, 5000)))

    def session_run(self, run: Run, pid: int, before: ev.Readings = NOTHING) -> list:
        """``run`` (in a session) handed to the interpreter ``pid`` as a cell, the interpreter started
        first if it is not there yet; the actions once the cell is sent."""
        assert self.host(run) == [act.PrepareCwd(run.id, run.cwd)]
        actions = self.tell(ev.Prepared(run.id))
        if type(actions[0]) is act.StartInterpreter:
            actions = self.tell(ev.InterpreterStarted(run.id, pid))
        assert type(actions[-1]) is act.SendCell and actions[-1].pid == pid, actions
        return self.tell(ev.CellSent(run.id, before))

    def finish_reset(self) -> tuple[protocol.Done, protocol.Ready]:
        """After a Reset's own actions (no filtered networking): a clean sweep and last look, no prestarts
        armed; the reset's Done and Ready."""
        assert self.tell(CLEAN)[-1].__class__ is act.Inspect
        assert self.tell(ev.Inspected([], []))[-1].__class__ is act.ArmPrestarts
        *_, done, ready = sent(self.tell(ev.PrestartsArmed([], [])))
        return done, ready

    def reset(self, generation: int) -> protocol.Ready:
        """A whole clean reset, which must be the ``generation``-th; its Ready."""
        actions = self.host(protocol.Reset(id=10_000 + generation))
        assert type(actions[-1]) is act.Sweep
        done, ready = self.finish_reset()
        assert done == protocol.Done(id=10_000 + generation, detail=CLEAN_DETAIL)
        assert (ready.reason, ready.generation) == ("reset", generation)
        return ready

    def collected(self, run_id: int, after: ev.Readings = NOTHING, file_errors: dict | None = None) -> protocol.Exit:
        [exit_message] = sent(self.tell(ev.Collected(run_id, after, file_errors or {})))
        return exit_message
