"""The agent core's reset, on messages alone: Reset -> Done -> Ready naming each verdict that held, what
it forgets, the stragglers of what it ended, and what the host sends meanwhile."""

from __future__ import annotations

import signal

import pytest

from isol8rt.agent import protocol
from isol8rt.agent.core import DriverError
from isol8rt.agent.core import actions as act
from isol8rt.agent.core import events as ev
from isol8rt.agent.protocol import (
    PROTOCOL_VERSION, Configure, Done, Exit, Failed, Log, Ping, PutFile, Ready, Reset, Run, Signal, Stdin,
)

from .core_kit import CLEAN, CLEAN_DETAIL, NOTHING, PRESTART, python_run, sent

EVERY_VERDICT = ["processes", "tasks", "ipc", "files", "state"]


def ready(generation: int, verified: list[str]) -> Ready:
    return Ready(version=PROTOCOL_VERSION, generation=generation, pid=1, reason="reset", verified=verified)


def test_reset_sweeps_inspects_rearms_then_answers_done_and_ready(core):
    assert core.host(Reset(id=5)) == [act.Sweep([])]
    swept = ev.Swept(settled=True, counted=True, ipc_removed=2, ipc_clean=True, files_removed=7)
    assert core.tell(swept) == [act.Inspect(shared_network=False, proxy_pid=0)]
    assert core.tell(ev.Inspected([], [])) == [act.ArmPrestarts([])]
    assert sent(core.tell(ev.PrestartsArmed([], []))) == [
        Done(id=5, detail={"ipc_removed": 2, "files_removed": 7}), ready(1, EVERY_VERDICT)]


@pytest.mark.parametrize(("swept", "inspected", "verified", "logged"), [
    # Tasks of the sandbox user outlived the kill: neither verdict holds.
    (ev.Swept(False, True, 0, True, 0), ev.Inspected([], []), ["ipc", "files", "state"], []),
    # No pids cgroup (not a container's init): a scan of /proc said none is left, nothing counted them.
    (ev.Swept(True, False, 0, True, 0), ev.Inspected([], []), ["processes", "ipc", "files", "state"], []),
    (ev.Swept(True, True, 0, False, 0), ev.Inspected([], []), ["processes", "tasks", "files", "state"], []),
    (CLEAN, ev.Inspected(["/sandbox: mode 511, was 493"], []), ["processes", "tasks", "ipc", "state"],
     ["reset left /sandbox: mode 511, was 493"]),
    (CLEAN, ev.Inspected([], ["unix socket 0: 2 ..."]), ["processes", "tasks", "ipc", "files"],
     ["reset left unix socket 0: 2 ..."]),
])
def test_each_verdict_is_named_only_when_it_held(core, swept, inspected, verified, logged):
    core.host(Reset(id=5))
    core.tell(swept)
    actions = core.tell(inspected)
    assert sent(actions) == [Log(level="warning", message=line) for line in logged]
    assert sent(core.tell(ev.PrestartsArmed([], [])))[-1] == ready(1, verified)


def test_the_socket_look_is_skipped_in_the_hosts_network_namespace(core):
    core.configure(shared_network=True)
    core.host(Reset(id=2))
    assert core.tell(CLEAN) == [act.Inspect(shared_network=True, proxy_pid=0)]


def test_each_reset_is_a_generation(core):
    for generation in (1, 2, 3):
        core.reset(generation)
        assert core.core.generation == generation


def test_a_reset_ends_runs_without_an_exit_and_drops_their_stragglers(core):
    core.spawned(Run(id=1, argv=["sleep", "9"], env={}, stdin_open=True), 20)
    core.spawned(Run(id=2, argv=["sleep", "9"], env={}, timeout_ms=1000), 21)
    # Their output is nobody's any more: our ends of their pipes are closed; the sweep kills them.
    assert core.host(Reset(id=3)) == [act.Release(20), act.Release(21), act.Sweep([])]
    assert core.tell(ev.ChildExited(20, signal.SIGKILL)) == []  # reaped during the sweep
    done, new_ready = core.finish_reset()
    assert (done, new_ready) == (Done(id=3, detail=CLEAN_DETAIL), ready(1, EVERY_VERDICT))
    for late in (ev.ChildOutput(21, 1, b"x"), ev.ChildOutputClosed(21, 1), ev.ChildExited(21, signal.SIGKILL),
                 ev.Spawned(1, 20, NOTHING), ev.Collected(1, NOTHING), ev.CellDone(20, 0)):
        assert core.tell(late) == [], late
    assert core.host(Stdin(id=1, data=b"late", eof=True)) == []
    assert core.host(Signal(id=2, signum=9)) == []
    assert core.tick(after=5) == []  # no deadline left to enforce
    assert core.core.next_deadline() is None


def test_a_reset_forgets_a_file_that_failed(core):
    """The failure of a file sent without ack belongs to the operation that the reset ended: a Run reusing
    the id afterwards starts (the host never reuses one, but nothing of before may leak through)."""
    put = PutFile(id=3, path="../x", data=b"x")
    core.host(put)
    core.tell(ev.FileNotWritten(put, "path '../x' contains '..'", "bad_path"))
    core.reset(1)
    assert type(core.host(Run(id=3, argv=["x"], env={}))[-1]) is act.Spawn


def test_messages_in_the_same_read_as_the_reset_come_after_its_done(core):
    """The host may send on before the reset's Ready (it does not, but a frame may carry more): each
    message waits until the one before it is over, so nothing runs in a container being swept."""
    core.configure([PRESTART], [7])
    data = protocol.FrameEncoder().encode_many([Reset(id=2), Ping(id=3), python_run(4)])
    core.core.receive_data(data, core.now)
    assert core.core.next_actions(core.now) == [act.DropPrestart(7), act.Sweep([])]
    assert core.tell(CLEAN) == [act.Inspect()]
    core.tell(ev.Inspected([], []))
    armed = core.tell(ev.PrestartsArmed([8], [""]))
    # The Ready waits: the interpreter is not warm yet.
    assert sent(armed) == [Done(id=2, detail=CLEAN_DETAIL)] and armed[-1] == act.CheckWarmth([8])
    assert core.core.next_actions(core.now) == [act.Send(Done(id=3))]
    # The run takes the new interpreter as soon as it is armed (it would have waited on its own clock).
    assert core.core.next_actions(core.now) == [act.HandOver(4, 8, "/sandbox/main.py", b"print(1)")]
    assert core.core.next_actions(core.now) is None
    core.tell(ev.Spawned(4, 8, NOTHING))
    # Nothing is left to wait for: the Ready goes at the next look.
    assert sent(core.tick(after=0.002)) == [ready(1, EVERY_VERDICT)]


def test_reports_that_answer_no_reset_are_dropped(core):
    for stray in (CLEAN, ev.Inspected([], []), ev.PrestartsArmed([], []), ev.Warmth(all_warm=True),
                  ev.ProxyOutput(b'{"type":"reset_ok"}\n'), ev.ProxySilent(), ev.ProxyStarted(50)):
        assert core.tell(stray) == [], stray


def test_a_reset_kills_and_forgets_the_sessions(core):
    core.session_run(Run(id=1, argv=[], env={}, session="python", code=b"x = 1"), 40)
    core.tell(ev.CellDone(40, 0))
    core.collected(1)
    assert core.host(Reset(id=2)) == [act.Kill(40, signal.SIGKILL), act.Release(40), act.Sweep([])]
    core.finish_reset()
    assert core.tell(ev.ChildExited(40, signal.SIGKILL)) == []
    # The next run in the session starts a new interpreter.
    assert core.host(Run(id=3, argv=[], env={}, session="python", code=b"print(x)")) == [act.PrepareCwd(3, "/sandbox")]
    assert type(core.tell(ev.Prepared(3))[0]) is act.StartInterpreter


def test_an_exit_owed_before_the_reset_is_not_sent_after_it(core):
    """A run whose process ended but whose pipes a background process holds open: the reset ends it
    for good, and the pipes' end after it produces no Exit."""
    core.spawned(Run(id=1, argv=["x"], env={}), 20)
    assert core.tell(ev.ChildExited(20, 0)) == []  # waiting for its pipes
    core.host(Reset(id=2))
    core.finish_reset()
    assert core.tell(ev.ChildOutputClosed(20, 1)) == [] and core.tell(ev.ChildOutputClosed(20, 2)) == []


def test_a_busy_run_id_and_its_failure_are_gone_after_a_reset(core):
    core.spawned(Run(id=1, argv=["x"], env={}), 20)
    core.reset(1)
    assert type(core.host(Run(id=1, argv=["x"], env={}))[-1]) is act.Spawn
    assert Failed not in {type(message) for message in sent(core.tell(ev.Spawned(1, 21, NOTHING)))}
    core.ended(21)
    assert type(core.collected(1)) is Exit


def test_configure_after_a_reset_is_still_a_second_configure(core):
    core.configure()
    core.reset(1)
    assert sent(core.host(Configure())) == [
        Log(level="error", message="protocol error from host: Configure is sent once")]
    assert core.core.stopping


@pytest.mark.parametrize("step", ["sweep", "last look", "arming"])
def test_a_host_message_in_the_middle_of_a_reset_is_the_drivers_mistake(core, step):
    """Bytes may arrive at any time (they wait their turn, above); but a message handed over while the
    reset still owes reports would run in a container being swept, or be answered before its Done."""
    core.host(Reset(id=2))
    if step != "sweep":
        core.tell(CLEAN)
    if step == "arming":
        core.tell(ev.Inspected([], []))
    with pytest.raises(DriverError):
        core.core.receive(Ping(id=3), core.now)
