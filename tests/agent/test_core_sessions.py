"""The agent core's persistent sessions, on messages alone: one interpreter per session, one run at a time,
its cells, their output and deadlines, and an interpreter that fails, dies or is gone."""

from __future__ import annotations

import signal

import pytest

from isol8rt.agent.core import actions as act
from isol8rt.agent.core import events as ev
from isol8rt.agent.core.prestarts import PIPE_SIZE
from isol8rt.agent.protocol import Exit, Failed, Output, Run, Signal, Stdin, Usage

from .core_kit import NOTHING, exited, sent, user_env


def cell(run_id: int, code: bytes = b"x = 1", session: str = "python", **fields) -> Run:
    return Run(id=run_id, argv=[], env={"T": "1"}, code=code, session=session, **fields)


def one_cell(core) -> None:
    """Cell 1 of the python session, run to its Exit in the interpreter 40."""
    core.session_run(cell(1), 40)
    core.tell(ev.CellDone(40, 0))
    core.collected(1)


def test_a_cell_from_its_message_to_its_exit(core):
    run = cell(1, b"print(x)", cwd="/sandbox/w", timeout_ms=5000)
    assert core.host(run) == [act.PrepareCwd(1, "/sandbox/w")]
    assert core.tell(ev.Prepared(1)) == [act.StartInterpreter(1, "python", user_env({"T": "1"}))]
    assert core.tell(ev.InterpreterStarted(1, 40)) == [
        act.SendCell(1, 40, "print(x)", "/sandbox/w", user_env({"T": "1"}), b"")]
    before = ev.Readings(oom_kills=0, net_rx=5, cpu_user_ms=100.0, cpu_system_ms=20.0)
    assert core.tell(ev.CellSent(1, before), after=0.003) == []
    assert sent(core.tell(ev.ChildOutput(40, 1, b"1\n"))) == [Output(id=1, fd=1, data=b"1\n")]
    # The interpreter's pipes stay open: the cell's end is its status on the control socket.
    assert core.tell(ev.CellDone(40, 0), after=0.01) == [act.Collect(1, [], 512 * 1024 * 1024, session_pid=40)]
    after = ev.Readings(oom_kills=0, net_rx=9, cpu_user_ms=130.0, cpu_system_ms=21.0, peak_kb=9000)
    assert core.collected(1, after) == Exit(
        id=1, exit_code=0, duration_ms=pytest.approx(10), start_ms=pytest.approx(3),
        usage=Usage(cpu_user_ms=30.0, cpu_system_ms=1.0, peak_memory_kb=9000, net_rx_bytes=4))


def test_the_next_cell_goes_to_the_same_interpreter(core):
    one_cell(core)
    core.host(cell(2, b"print(x)"))
    assert core.tell(ev.Prepared(2)) == [act.SendCell(2, 40, "print(x)", "/sandbox", user_env({"T": "1"}), b"")]
    core.tell(ev.CellSent(2, NOTHING))
    # Each session is its own interpreter.
    core.host(cell(3, session="node"))
    assert core.tell(ev.Prepared(3)) == [act.StartInterpreter(3, "node", user_env({"T": "1"}))]


def test_output_between_cells_belongs_to_no_run(core):
    one_cell(core)
    assert core.tell(ev.ChildOutput(40, 1, b"from a thread")) == []
    assert core.tell(ev.ChildOutputClosed(40, 1)) == []


def test_one_cell_at_a_time(core):
    core.session_run(cell(1), 40)
    assert sent(core.host(cell(2))) == [
        Failed(id=2, message="the python session is busy with another run", kind="busy")]
    # Each session for itself.
    core.session_run(cell(3, session="node"), 41)
    assert sent(core.host(cell(4, session="node"))) == [
        Failed(id=4, message="the node session is busy with another run", kind="busy")]


@pytest.mark.parametrize(("run", "answer"), [
    (cell(1, code=None), Failed(id=1, message="a run in a persistent session needs code", kind="bad_request")),
    (cell(1, stdin=b"x" * (PIPE_SIZE + 1)),
     Failed(id=1, message=f"stdin for a session run is limited to {PIPE_SIZE} bytes", kind="too_large")),
])
def test_cells_refused_before_anything_starts(core, run, answer):
    assert core.host(run) == [act.Send(answer)]


def test_a_cell_whose_cwd_cannot_be_made_fails_and_frees_the_session(core):
    core.host(cell(1, cwd="/sandbox/f/w"))
    assert sent(core.tell(ev.PrepareFailed(1, "cannot prepare the run: File exists", "io"))) == [
        Failed(id=1, message="cannot prepare the run: File exists", kind="io")]
    assert core.host(cell(2)) == [act.PrepareCwd(2, "/sandbox")]


def test_an_interpreter_that_cannot_start_fails_the_cell_and_frees_the_session(core):
    core.host(cell(1, session="ruby"))
    core.tell(ev.Prepared(1))
    assert sent(core.tell(ev.InterpreterFailed(1, "no persistent interpreter for 'ruby'"))) == [
        Failed(id=1, message="cannot start the ruby session: no persistent interpreter for 'ruby'", kind="spawn")]
    assert core.host(cell(2, session="ruby")) == [act.PrepareCwd(2, "/sandbox")]


def test_stdin_goes_with_a_python_cell_and_is_refused_to_a_node_one(core):
    core.host(cell(1, stdin=b"in"))
    core.tell(ev.Prepared(1))
    assert core.tell(ev.InterpreterStarted(1, 40))[-1].stdin == b"in"
    core.tell(ev.CellSent(1, NOTHING))
    core.host(cell(2, session="node", stdin=b"in"))
    core.tell(ev.Prepared(2))
    assert sent(core.tell(ev.InterpreterStarted(2, 41))) == [
        Failed(id=2, message="stdin is not available to runs in a persistent node session", kind="unsupported")]
    # The interpreter lives on for the next cell.
    core.host(cell(3, session="node"))
    assert core.tell(ev.Prepared(3))[-1].pid == 41


def test_stdin_messages_and_signals_for_a_cell(core):
    core.session_run(cell(1), 40)
    assert core.host(Stdin(id=1, data=b"x", eof=True)) == []  # it has no stdin pipe of its own
    assert core.host(Signal(id=1, signum=signal.SIGINT)) == [act.Kill(40, signal.SIGINT)]


def test_a_cell_that_cannot_be_handed_over_ends_the_session(core):
    core.host(cell(1))
    core.tell(ev.Prepared(1))
    core.tell(ev.InterpreterStarted(1, 40))
    actions = core.tell(ev.CellFailed(1, "Broken pipe"))
    assert actions == [act.Send(Failed(id=1, message="the python session is gone: Broken pipe", kind="spawn")),
                       act.Release(40)]
    assert core.tell(ev.ChildExited(40, exited(0))) == []  # let go already
    core.host(cell(2))
    assert type(core.tell(ev.Prepared(2))[0]) is act.StartInterpreter


def test_a_cell_past_its_deadline_is_interrupted_then_killed(core):
    core.session_run(cell(1, timeout_ms=1000), 40)
    assert core.tick(after=1.0) == [act.Kill(40, signal.SIGINT)]  # a KeyboardInterrupt keeps the session
    assert core.tick(after=0.999) == []
    assert core.tick(after=0.001) == [act.Kill(40, signal.SIGKILL)]


def test_an_interrupted_cell_reports_a_timeout_and_the_session_lives_on(core):
    core.session_run(cell(1, timeout_ms=1000), 40)
    core.tick(after=1.0)
    core.tell(ev.CellDone(40, 130))
    assert (core.collected(1).exit_code, core.core.sessions.get("python").pid) == (137, 40)
    assert core.core.next_deadline() is None


@pytest.mark.parametrize(("status", "exit_code", "signum"), [(signal.SIGKILL, 137, 9), (exited(5), 5, 0)])
def test_an_interpreter_that_dies_in_a_cell_ends_it_with_its_status(core, status, exit_code, signum):
    core.session_run(cell(1), 40)
    assert core.tell(ev.ChildOutput(40, 2, b"last words")) != []
    actions = core.tell(ev.ChildExited(40, status, ev.ChildUsage(7.0, 8.0, 9000)))
    # Its own wait status carries its usage: no need to read the dead interpreter's.
    assert actions == [act.Release(40), act.Collect(1, [], 512 * 1024 * 1024)]
    exit_message = core.collected(1)
    assert (exit_message.exit_code, exit_message.signal) == (exit_code, signum)
    assert exit_message.usage == Usage(cpu_user_ms=7.0, cpu_system_ms=8.0, peak_memory_kb=9000)
    core.host(cell(2))
    assert type(core.tell(ev.Prepared(2))[0]) is act.StartInterpreter


def test_an_interpreter_that_dies_between_cells_is_started_again(core):
    one_cell(core)
    assert core.tell(ev.ChildExited(40, exited(0))) == [act.Release(40)]
    core.host(cell(2))
    assert type(core.tell(ev.Prepared(2))[0]) is act.StartInterpreter


def test_stragglers_of_a_session(core):
    one_cell(core)
    for late in (ev.CellDone(40, 0), ev.CellSent(1, NOTHING), ev.CellFailed(1, "x"), ev.Prepared(1),
                 ev.InterpreterStarted(1, 41), ev.InterpreterFailed(1, "x")):
        assert core.tell(late) == [], late
