"""The agent core's prestarted interpreters, on messages alone: which run takes one, what makes them
stale, a hand-over that fails, one that dies, and their re-arming."""

from __future__ import annotations

import pytest

from isol8rt.agent.core import actions as act
from isol8rt.agent.core import events as ev
from isol8rt.agent.core.prestarts import PIPE_SIZE
from isol8rt.agent.protocol import Log, Output, Prestart, PutFile, Reset, Run

from .core_kit import NOTHING, PRESTART, PY, python_run, sent, user_env


def test_a_matching_run_is_handed_to_the_prestarted_interpreter(core):
    core.configure([PRESTART], [7])
    assert core.host(python_run(1, b"print(2)")) == [act.HandOver(1, 7, "/sandbox/main.py", b"print(2)")]
    assert core.tell(ev.Spawned(1, 7, NOTHING)) == [act.WriteStdin(7, b"", eof=True)]
    assert sent(core.tell(ev.ChildOutput(7, 1, b"2\n"))) == [Output(id=1, fd=1, data=b"2\n")]


@pytest.mark.parametrize("differs", [
    {"argv": ["python3", "other.py"]}, {"env": {"A": "2"}}, {"cwd": "/sandbox/w"}, {"code_path": "/sandbox/x.py"},
    {"code": None}, {"code": b"x" * (PIPE_SIZE + 1)},
])
def test_a_run_the_interpreter_was_not_started_for_runs_cold_and_discards_it(core, differs):
    core.configure([PRESTART], [7])
    fields = {"argv": PY, "env": {"A": "1"}, "cwd": "/sandbox", "code": b"print(1)", "code_path": "/sandbox/main.py",
              **differs}
    actions = core.host(Run(id=1, **fields))
    assert actions == [act.DropPrestart(7), act.Spawn(1, fields["argv"], user_env(fields["env"]), fields["cwd"],
                                                      fields["code_path"], fields["code"])]


def test_after_one_run_the_others_are_stale(core):
    """Two interpreters armed: the first run takes one; the second would have seen another process come
    first, so the next run is cold and discards it."""
    core.configure([PRESTART, PRESTART], [7, 8])
    assert core.host(python_run(1))[-1] == act.HandOver(1, 7, "/sandbox/main.py", b"print(1)")
    core.tell(ev.Spawned(1, 7, NOTHING))
    assert core.host(python_run(2)) == [act.DropPrestart(8), act.Spawn(2, PY, user_env({"A": "1"}), "/sandbox",
                                                                       "/sandbox/main.py", b"print(1)")]


def test_a_file_put_makes_them_stale(core):
    core.configure([PRESTART], [7])
    core.host(PutFile(id=1, path="data.csv", data=b"x", ack=True))
    assert core.host(python_run(2))[0] == act.DropPrestart(7)


def test_a_failed_hand_over_falls_back_to_a_cold_start(core):
    core.configure([PRESTART, PRESTART], [7, 8])
    core.host(python_run(1))
    actions = core.tell(ev.HandOverFailed(1, "Broken pipe"))
    assert actions == [act.Send(Log(level="warning", message="prestarted process unusable: Broken pipe")),
                       act.DropPrestart(7), act.DropPrestart(8),
                       act.Spawn(1, PY, user_env({"A": "1"}), "/sandbox", "/sandbox/main.py", b"print(1)")]
    assert core.tell(ev.Spawned(1, 30, NOTHING)) == [act.WriteStdin(30, b"", eof=True)]


def test_an_interpreter_that_dies_while_armed_is_dropped_and_not_used(core):
    core.configure([PRESTART], [7])
    assert core.tell(ev.ChildExited(7, 1 << 8)) == [act.DropPrestart(7, kill=False)]
    assert core.host(python_run(1))[-1].__class__ is act.Spawn
    assert core.tell(ev.ChildExited(7, 1 << 8)) == []  # nothing of ours


def test_a_reset_arms_them_again_and_its_ready_waits_for_them(core):
    core.configure([PRESTART], [7])
    core.spawned(python_run(1), 7)
    core.ended(7)
    core.collected(1)
    actions = core.host(Reset(id=2))
    assert act.DropPrestart(7) not in actions  # taken by the run: not armed any more
    core.tell(ev.Swept(True, True, 0, True, 0))
    assert core.tell(ev.Inspected([], []))[-1] == act.ArmPrestarts(
        [Prestart(argv=PY, env=user_env({"A": "1"}), cwd="/sandbox", code_path="/sandbox/main.py")])
    done = core.tell(ev.PrestartsArmed([9], [""]))
    assert [type(m).__name__ for m in sent(done)] == ["Done"] and done[-1] == act.CheckWarmth([9])
    assert core.host(python_run(3))[-1] == act.HandOver(3, 9, "/sandbox/main.py", b"print(1)")
