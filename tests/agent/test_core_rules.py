"""The agent core's conversation rules, on messages alone: Ready first, Configure once, frames split
anywhere, one message at a time, how the agent comes to stop, its clock."""

from __future__ import annotations

import pytest

from isol8rt.agent import protocol
from isol8rt.agent.core import AgentCore, DriverError
from isol8rt.agent.core import actions as act
from isol8rt.agent.core import events as ev
from isol8rt.agent.protocol import (
    PROTOCOL_VERSION, Configure, Done, Failed, Log, Ping, PutFile, Ready, Run, Shutdown, Signal, Stdin,
)

from .core_kit import CONTAINER_ENV, PRESTART, PY, CoreHarness, exited, python_run, sent, user_env


def test_ready_comes_first_and_the_driver_must_start_the_core():
    core = AgentCore(CONTAINER_ENV, pid=1)
    with pytest.raises(DriverError):
        core.receive(Ping(id=1), 0.0)
    with pytest.raises(DriverError):
        core.handle(ev.Tick(), 0.0)
    with pytest.raises(DriverError):
        core.receive_data(b"x", 0.0)
    assert core.start(0.0) == [act.Send(Ready(version=PROTOCOL_VERSION, generation=0, pid=1, reason="start"))]
    with pytest.raises(DriverError):
        core.start(0.0)
    assert AgentCore({}, version=99).start(0.0) == [act.Send(Ready(version=99))]


def test_a_driver_that_hands_the_core_something_else_is_told(core):
    with pytest.raises(DriverError):
        core.tell(object())
    with pytest.raises(DriverError):
        core.core.receive(protocol.Ready(version=1), core.now)


def test_configure_arms_the_prestarts_and_answers_once_they_are_warm(core):
    actions = core.host(Configure(prestart=[PRESTART], idle_timeout_s=0))
    # The interpreter gets the container's environment under its own (HOME and PWD stay the agent's).
    assert actions == [act.ArmPrestarts([protocol.Prestart(argv=PY, env=user_env({"A": "1"}), cwd="/sandbox",
                                                           code_path="/sandbox/main.py")])]
    assert core.tell(ev.PrestartsArmed(pids=[7], problems=[""])) == [act.CheckWarmth([7])]
    assert core.tell(ev.Warmth(all_warm=False)) == []
    assert core.core.next_deadline() == pytest.approx(core.now + 0.002)  # it is looked at again soon
    assert core.tick(after=0.5) == [act.CheckWarmth([7])]
    assert sent(core.tell(ev.Warmth(all_warm=True))) == [Ready(version=PROTOCOL_VERSION, pid=1, reason="configured")]
    assert core.tick(after=0.1) == []  # announced once


def test_a_ready_waits_for_warmth_one_second_at_most(core):
    core.host(Configure(prestart=[PRESTART]))
    core.tell(ev.PrestartsArmed(pids=[7], problems=[""]))
    assert core.tick(after=0.999) == [act.CheckWarmth([7])]
    assert sent(core.tick(after=0.001)) == [Ready(version=PROTOCOL_VERSION, pid=1, reason="configured")]


def test_a_prestart_that_could_not_start_is_logged_and_not_waited_for(core):
    core.host(Configure(prestart=[PRESTART]))
    actions = core.tell(ev.PrestartsArmed(pids=[0], problems=["no python3"]))
    assert sent(actions) == [Log(level="warning", message="cannot prestart python3: no python3"),
                             Ready(version=PROTOCOL_VERSION, pid=1, reason="configured")]


def test_configure_is_sent_once(core):
    core.configure()
    actions = core.host(Configure())
    assert sent(actions) == [Log(level="error", message="protocol error from host: Configure is sent once")]
    assert core.core.stopping


def test_configure_takes_the_filter_and_the_network(core):
    network = protocol.NetworkConfig(proxy_port=8080)
    actions = core.host(Configure(user_filter=b"\x00" * 8, network=network))
    assert actions[:2] == [act.InstallFilter(b"\x00" * 8), act.StartNetwork(8080, protocol.NetworkPolicy())]
    assert sent(core.tell(ev.FilterRefused("bad program"))) == [
        Log(level="error", message="the per-run seccomp filter is unusable: bad program")]


def test_frames_split_anywhere_and_one_message_is_handled_at_a_time(core):
    data = protocol.FrameEncoder().encode_many([Ping(id=1), Ping(id=2)])
    for byte in range(len(data)):
        core.core.receive_data(data[byte:byte + 1], core.now)
    # Each message's actions come alone: the driver carries them out (and reports) before the next.
    assert core.core.next_actions(core.now) == [act.Send(Done(id=1))]
    assert core.core.next_actions(core.now) == [act.Send(Done(id=2))]
    assert core.core.next_actions(core.now) is None


def test_a_message_sees_every_effect_of_the_one_before(core):
    """A failed chunk without ack, then the Run of the same operation in the same read: the Run must be
    answered by the chunk's failure, so it must not be handled before the chunk's write is reported."""
    put = PutFile(id=3, path="../x", data=b"x", last=False)
    core.core.receive_data(protocol.FrameEncoder().encode_many([put, python_run(3)]), core.now)
    assert core.core.next_actions(core.now) == [act.WriteFile(put)]
    assert core.tell(ev.FileNotWritten(put, "path '../x' contains '..'", "bad_path")) == []
    assert sent(core.core.next_actions(core.now)) == [
        Failed(id=3, message="cannot write file path '../x' contains '..'", kind="bad_path")]


def test_undecodable_frames_stop_the_agent_and_nothing_after_them_counts(core):
    core.core.receive_data(b"\x00\x00\x00\x03abc", core.now)
    assert sent(core.core.next_actions(core.now)) == [Log(level="error", message=(
        "protocol error from host: undecodable message: Expected `object`, got `int`"))]
    assert core.core.stopping
    core.core.receive_data(protocol.FrameEncoder().encode(Ping(id=1)), core.now)
    assert core.core.next_actions(core.now) is None


@pytest.mark.parametrize("stop", ["eof", "shutdown", "sigterm", "host gone"])
def test_ways_to_stop(core, stop):
    if stop == "eof":
        core.core.receive_data(b"", core.now)
        assert core.core.next_actions(core.now) == []
    elif stop == "shutdown":
        assert core.host(Shutdown()) == []
    else:
        assert core.tell(ev.Terminated() if stop == "sigterm" else ev.HostGone()) == []
    assert core.core.stopping


def test_closing_kills_runs_prestarts_and_every_sandbox_task(core):
    core.configure([PRESTART], [7])
    core.spawned(Run(id=1, argv=["sleep", "9"], env={}), 20)
    assert core.core.close() == [act.Kill(20, 9), act.KillAll([])]
    core = CoreHarness()
    core.start()
    core.configure([PRESTART], [7])
    assert core.core.close() == [act.DropPrestart(7), act.KillAll([])]


def test_the_idle_limit_counts_from_the_last_word_or_run(core):
    core.configure(idle_timeout_s=5)
    assert core.core.next_deadline() == pytest.approx(core.now + 5)
    core.spawned(Run(id=1, argv=["x"], env={}, timeout_ms=0), 20, after=4)
    assert not core.tick(after=6) and not core.core.stopping  # a run is going
    # ...so no deadline is due: one in the past would make a driver that waits for it spin until the run ends
    assert core.core.next_deadline() is None
    core.ended(20, exited(0))
    core.collected(1)
    assert not core.tick(after=4.9) and not core.core.stopping  # counted from the run's end
    assert core.tick(after=0.1) == [] and core.core.stopping


def test_any_bytes_from_the_host_count_as_word(core):
    core.configure(idle_timeout_s=5)
    core.now += 4
    core.core.receive_data(b"\x00\x00", core.now)  # half a frame header
    assert core.core.next_actions(core.now) is None
    core.tick(after=4)
    assert not core.core.stopping


def test_the_next_deadline_is_the_earliest_run_deadline(core):
    assert core.core.next_deadline() is None
    core.spawned(Run(id=1, argv=["x"], env={}, timeout_ms=2000), 20)
    core.spawned(Run(id=2, argv=["x"], env={}, timeout_ms=1000), 21)
    assert core.core.next_deadline() == pytest.approx(core.now + 1.0)


def test_ping_stdin_and_signals_for_nothing(core):
    assert core.host(Ping(id=4)) == [act.Send(Done(id=4))]
    assert core.host(Stdin(id=9, data=b"x", eof=True)) == []
    assert core.host(Signal(id=9, signum=9)) == []
