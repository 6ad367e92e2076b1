"""The agent core's runs, on messages alone: start, output and its budget, stdin, signals, deadlines, the
end in any order, the Exit and what it reports, and files in and out."""

from __future__ import annotations

import signal

import pytest

from isol8rt.agent.core import DriverError
from isol8rt.agent.core import actions as act
from isol8rt.agent.core import events as ev
from isol8rt.agent.protocol import Done, Exit, Failed, GetFile, Output, PutFile, Run, Signal, Stdin, Usage

from .core_kit import NOTHING, exited, others, sent, user_env


def test_a_run_from_its_message_to_its_exit(core):
    run = Run(id=1, argv=["python3", "main.py"], env={"TOKEN": "t"}, cwd="/sandbox/w", code=b"print(1)",
              code_path="main.py", output_paths=["out.txt"], max_file_bytes=99, timeout_ms=5000)
    assert core.host(run) == [act.Spawn(1, ["python3", "main.py"], user_env({"TOKEN": "t"}), "/sandbox/w", "main.py",
                                        b"print(1)")]
    before = ev.Readings(oom_kills=2, net_rx=100, net_tx=10)
    # Whole stdin (none), then the pipe is closed.
    assert core.tell(ev.Spawned(1, 20, before), after=0.004) == [act.WriteStdin(20, b"", eof=True)]
    assert core.tell(ev.ChildOutput(20, 1, b"1\n"), after=0.01) == [act.Send(Output(id=1, fd=1, data=b"1\n"))]
    assert core.tell(ev.ChildOutputClosed(20, 1)) == []
    assert core.tell(ev.ChildOutputClosed(20, 2)) == []
    usage = ev.ChildUsage(cpu_user_ms=3.0, cpu_system_ms=4.0, peak_kb=5000)
    assert core.tell(ev.ChildExited(20, exited(0), usage), after=0.02) == [act.Collect(1, ["out.txt"], 99)]
    exit_message = core.collected(1, ev.Readings(oom_kills=2, net_rx=150, net_tx=15), {"out.txt": "no such file"})
    assert exit_message == Exit(id=1, exit_code=0, duration_ms=pytest.approx(30), start_ms=pytest.approx(4),
                                usage=Usage(cpu_user_ms=3.0, cpu_system_ms=4.0, peak_memory_kb=5000, net_rx_bytes=50,
                                            net_tx_bytes=5),
                                file_errors={"out.txt": "no such file"})
    assert core.tell(ev.Collected(1, NOTHING)) == []  # answered once


@pytest.mark.parametrize("order", ["exit first", "pipes first", "exit between"])
def test_the_exit_waits_for_the_status_and_both_pipes_in_any_order(core, order):
    core.spawned(Run(id=1, argv=["x"], env={}), 20)
    steps = [ev.ChildOutputClosed(20, 1), ev.ChildOutputClosed(20, 2)]
    steps.insert({"exit first": 0, "pipes first": 2, "exit between": 1}[order], ev.ChildExited(20, exited(3)))
    assert [core.tell(step) for step in steps[:2]] == [[], []]
    assert core.tell(steps[2]) == [act.Collect(1, [], 512 * 1024 * 1024)]
    assert core.collected(1).exit_code == 3


@pytest.mark.parametrize(("status", "exit_code", "signum"), [
    (exited(0), 0, 0), (exited(42), 42, 0), (signal.SIGKILL, 137, 9), (signal.SIGTERM, 143, 15),
])
def test_exit_codes_from_the_wait_status(core, status, exit_code, signum):
    core.spawned(Run(id=1, argv=["x"], env={}), 20)
    core.ended(20, status)
    exit_message = core.collected(1)
    assert (exit_message.exit_code, exit_message.signal, exit_message.timed_out) == (exit_code, signum, False)


def test_each_stream_has_its_own_budget(core):
    core.spawned(Run(id=1, argv=["x"], env={}, max_output=5), 20)
    assert sent(core.tell(ev.ChildOutput(20, 1, b"abc"))) == [Output(id=1, fd=1, data=b"abc")]
    assert sent(core.tell(ev.ChildOutput(20, 1, b"defg"))) == [Output(id=1, fd=1, data=b"de")]
    assert sent(core.tell(ev.ChildOutput(20, 1, b"h"))) == []  # read and dropped
    assert sent(core.tell(ev.ChildOutput(20, 2, b"err"))) == [Output(id=1, fd=2, data=b"err")]
    core.ended(20)
    exit_message = core.collected(1)
    assert (exit_message.truncated_stdout, exit_message.truncated_stderr) == (True, False)


def test_a_run_past_its_deadline_is_killed_once_and_reported_timed_out(core):
    core.spawned(Run(id=1, argv=["x"], env={}, timeout_ms=1000), 20)
    assert core.tick(after=0.998) == []
    assert core.tick(after=0.002) == [act.Kill(20, signal.SIGKILL)]
    assert core.tick(after=5) == []
    assert core.core.next_deadline() is None
    core.ended(20, signal.SIGKILL)
    exit_message = core.collected(1, ev.Readings(oom_kills=5))
    # Killed for its time, not for memory, whatever the cgroup's count did meanwhile.
    assert (exit_message.exit_code, exit_message.timed_out, exit_message.oom_killed) == (137, True, False)


def test_no_deadline_without_a_timeout(core):
    core.spawned(Run(id=1, argv=["x"], env={}, timeout_ms=0), 20)
    assert core.core.next_deadline() is None and core.tick(after=10**6) == []


@pytest.mark.parametrize(("before", "after", "flagged"), [(0, 1, True), (1, 1, False), (-1, 3, False)])
def test_the_oom_flag_compares_the_cgroups_count_around_the_run(core, before, after, flagged):
    core.spawned(Run(id=1, argv=["x"], env={}), 20, ev.Readings(oom_kills=before))
    core.ended(20, signal.SIGKILL)
    assert core.collected(1, ev.Readings(oom_kills=after)).oom_killed is flagged


def test_stdin_whole_or_streamed_and_nothing_once_the_run_is_over(core):
    assert core.spawned(Run(id=1, argv=["x"], env={}, stdin=b"all"), 20) == [act.WriteStdin(20, b"all", eof=True)]
    core.ended(20)
    core.collected(1)
    assert core.host(Stdin(id=1, data=b"late")) == []
    # Kept open: nothing written until the host sends some.
    assert core.spawned(Run(id=2, argv=["x"], env={}, stdin_open=True), 21) == []
    assert core.spawned(Run(id=3, argv=["x"], env={}, stdin=b"a", stdin_open=True), 22) == [act.WriteStdin(22, b"a")]
    assert core.host(Stdin(id=2, data=b"b\n")) == [act.WriteStdin(21, b"b\n")]
    assert core.host(Stdin(id=2, eof=True)) == [act.WriteStdin(21, b"", eof=True)]


def test_signals_reach_the_group_until_the_run_has_ended(core):
    core.spawned(Run(id=1, argv=["x"], env={}), 20)
    assert core.host(Signal(id=1, signum=15)) == [act.Kill(20, 15)]
    core.tell(ev.ChildExited(20, signal.SIGTERM))
    assert core.host(Signal(id=1, signum=9)) == []  # its pipes are still open, but its process is gone


def test_a_program_that_cannot_start_is_a_run_that_failed_as_a_shell_says(core):
    core.host(Run(id=1, argv=["nope"], env={}))
    assert sent(core.tell(ev.SpawnFailed(1, not_found=True, reason="No such file or directory"))) == [
        Output(id=1, fd=2, data=b"isol8rt: cannot run nope: No such file or directory\n"), Exit(id=1, exit_code=127)]
    core.host(Run(id=2, argv=["./x"], env={}))
    answers = sent(core.tell(ev.SpawnFailed(2, not_found=False, reason="Permission denied")))
    assert answers[-1] == Exit(id=2, exit_code=126)


def test_a_run_that_cannot_be_prepared_fails(core):
    core.host(Run(id=1, argv=["x"], env={}, code=b"x", code_path="../x"))
    assert sent(core.tell(ev.PrepareFailed(1, "path '../x' contains '..'", "bad_path"))) == [
        Failed(id=1, message="path '../x' contains '..'", kind="bad_path")]
    assert core.tell(ev.Spawned(1, 20, NOTHING)) == []  # a report for nothing under way: dropped


def test_a_run_id_that_is_running_is_answered_busy(core):
    core.spawned(Run(id=1, argv=["x"], env={}), 20)
    assert sent(core.host(Run(id=1, argv=["y"], env={}))) == [Failed(id=1, message="run 1 is already running",
                                                                     kind="busy")]


def test_a_run_sets_its_own_path(core):
    assert core.host(Run(id=1, argv=["x"], env={"PATH": "/mine"}))[-1].env == {"LANG": "C.UTF-8", "PATH": "/mine"}


def test_stragglers_of_a_run_that_is_over(core):
    core.spawned(Run(id=1, argv=["x"], env={}), 20)
    core.ended(20)
    core.collected(1)
    for late in (ev.ChildOutput(20, 1, b"x"), ev.ChildOutputClosed(20, 1), ev.ChildExited(20, 0), ev.Tick(),
                 ev.CellDone(20, 0), ev.Collected(1, NOTHING)):
        assert core.tell(late) == [], late
    assert core.host(Signal(id=1, signum=9)) == []


# ---------------------------------------------------------------------------------------------- files


def test_a_file_in_chunks_is_answered_by_its_last_chunk(core):
    first = PutFile(id=1, path="f", data=b"ab", last=False)
    last = PutFile(id=1, path="f", data=b"cd", offset=2, ack=True)
    assert core.host(first) == [act.WriteFile(first)]
    assert core.tell(ev.FileWritten(first)) == []
    assert core.host(last) == [act.WriteFile(last)]
    assert sent(core.tell(ev.FileWritten(last))) == [Done(id=1)]


def test_a_chunk_that_failed_is_the_answer_of_the_file_once(core):
    """Not Done for a file whose middle is missing; and one answer, the first failure's."""
    chunks = [PutFile(id=7, path="w", data=b"a", last=False),
              PutFile(id=7, path="../o", data=b"b", offset=1, last=False),
              PutFile(id=7, path="../p", data=b"c", offset=2, last=False),
              PutFile(id=7, path="w", data=b"d", offset=3, ack=True)]
    replies = [ev.FileWritten(chunks[0]), ev.FileNotWritten(chunks[1], "first", "bad_path"),
               ev.FileNotWritten(chunks[2], "second", "bad_path"), ev.FileWritten(chunks[3])]
    answers = []
    for chunk, reply in zip(chunks, replies):
        core.host(chunk)
        answers += sent(core.tell(reply))
    assert answers == [Failed(id=7, message="cannot write file first", kind="bad_path")]
    assert sent(core.tell(ev.FileWritten(chunks[3]))) == [Done(id=7)]  # the failure was owed once


def test_a_failed_file_of_a_run_is_the_runs_answer(core):
    put = PutFile(id=3, path="big", data=b"x")
    core.host(put)
    core.tell(ev.FileNotWritten(put, "big: no space left in /sandbox", "io"))
    assert core.host(Run(id=3, argv=["x"], env={})) == [
        act.Send(Failed(id=3, message="cannot write file big: no space left in /sandbox", kind="io"))]
    assert core.host(Run(id=4, argv=["x"], env={}))[-1] == act.Spawn(4, ["x"], user_env({}), "/sandbox")


def test_an_acknowledged_put_that_failed_is_answered_failed(core):
    put = PutFile(id=5, path="/etc/x", data=b"", ack=True)
    core.host(put)
    assert sent(core.tell(ev.FileNotWritten(put, "path '/etc/x' is outside /sandbox", "bad_path"))) == [
        Failed(id=5, message="cannot write file path '/etc/x' is outside /sandbox", kind="bad_path")]


@pytest.mark.parametrize(("error", "kind"), [
    ("a: no such file", "not_found"), ("a: 9 bytes, over the 1-byte limit for output files", "too_large"),
    ("a: is a symlink that points outside /sandbox; refusing to read it", "bad_path"),
])
def test_get_file_answers(core, error, kind):
    assert core.host(GetFile(id=2, path="a", max_bytes=1)) == [act.SendFile(2, "a", 1)]
    assert sent(core.tell(ev.FileSent(2, error))) == [Failed(id=2, message=error, kind=kind)]
    core.host(GetFile(id=3, path="b"))
    assert sent(core.tell(ev.FileSent(3))) == [Done(id=3)]


def test_output_files_go_with_the_run(core):
    run = Run(id=1, argv=["x"], env={}, output_paths=["a", "b"], max_file_bytes=10)
    core.spawned(run, 20)
    assert others(core.ended(20)) == [act.Collect(1, ["a", "b"], 10)]


def test_a_host_message_before_the_spawn_is_reported_is_the_drivers_mistake(core):
    core.host(Run(id=1, argv=["x"], env={}))
    with pytest.raises(DriverError):
        core.core.receive(Signal(id=1, signum=9), core.now)
    core.tell(ev.Spawned(1, 20, NOTHING))
    assert core.host(Signal(id=1, signum=9)) == [act.Kill(20, 9)]
