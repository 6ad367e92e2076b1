"""The agent core's filtered networking, on messages alone: runs held until the proxy listens and their
policy is in force, a refused policy, no firewall, the proxy's log lines, and the proxy's part of a
reset (its answers, its silence, its death)."""

from __future__ import annotations

import signal

import pytest

from isol8rt.agent.core import actions as act
from isol8rt.agent.core import events as ev
from isol8rt.agent.core.network import PROXY_ANSWER_TIMEOUT_S
from isol8rt.agent.protocol import (
    PROTOCOL_VERSION, Configure, Done, Failed, Log, NetworkConfig, NetworkPolicy, Ready, Reset, Run,
)
from isol8rt.agent.proxy_protocol import ResetConnections, SetPolicy

from .core_kit import CLEAN, CLEAN_DETAIL, NOTHING, exited, sent, user_env

CONTAINER_POLICY = NetworkPolicy(allow=[r"\.example\.com$"])
RUN_POLICY = NetworkPolicy(deny=["evil"], connect_ports=[8443])
LISTENING = b'{"type":"listening","port":8080}\n'
RESET_OK = b'{"type":"reset_ok","closed":2,"refused":1}\n'
REQUEST = b'{"type":"request","timestamp":"t","run":"1","method":"GET","host":"a","port":80,"action":"ALLOW",' \
          b'"status":200,"bytes_in":1,"bytes_out":2,"duration_ms":1.0}'
PROXY = 50


def policy_ok(run: str) -> bytes:
    return b'{"type":"policy_ok","run":"%s"}\n' % run.encode()


def run(run_id: int, **fields) -> Run:
    return Run(id=run_id, argv=["curl", "x"], env={}, **fields)


def spawn(run_id: int) -> act.Spawn:
    return act.Spawn(run_id, ["curl", "x"], user_env({}), "/sandbox")


@pytest.fixture
def filtered(core):
    """A core configured for filtered networking, its proxy started (not listening yet)."""
    actions = core.host(Configure(network=NetworkConfig(proxy_port=8080, policy=CONTAINER_POLICY)))
    assert actions == [act.StartNetwork(8080, CONTAINER_POLICY), act.ArmPrestarts([])]
    assert core.tell(ev.ProxyStarted(PROXY)) == []
    assert sent(core.tell(ev.PrestartsArmed([], []))) == [Ready(version=PROTOCOL_VERSION, pid=1, reason="configured")]
    return core


@pytest.fixture
def listening(filtered):
    assert filtered.tell(ev.ProxyOutput(LISTENING)) == []
    return filtered


def test_runs_wait_for_the_proxy_to_listen_then_start_in_order(filtered):
    assert filtered.host(run(1)) == []
    assert filtered.host(run(2)) == []
    assert filtered.tell(ev.ProxyOutput(LISTENING[:10])) == []  # half a line
    assert filtered.tell(ev.ProxyOutput(LISTENING[10:])) == [spawn(1), spawn(2)]


def test_a_run_with_its_own_policy_waits_for_the_proxy_to_confirm_it(listening):
    wanted = SetPolicy(run="1", deny=["evil"], connect_ports=[8443])
    assert listening.host(run(1, network_policy=RUN_POLICY)) == [act.ToProxy(wanted)]
    assert listening.host(run(2)) == []  # behind it, and it wants the container's policy back
    back = SetPolicy(run="2", allow=[r"\.example\.com$"], connect_ports=[443, 80])
    assert listening.tell(ev.ProxyOutput(policy_ok("1"))) == [spawn(1), act.ToProxy(back)]
    listening.tell(ev.Spawned(1, 20, NOTHING))
    assert listening.tell(ev.ProxyOutput(policy_ok("2"))) == [spawn(2)]
    listening.tell(ev.Spawned(2, 21, NOTHING))
    # The policy in force is the one asked for: the next run of the same policy goes at once.
    assert listening.host(run(3)) == [spawn(3)]


def test_a_refused_policy_fails_its_run_and_opens_nothing(listening):
    listening.host(run(1, network_policy=RUN_POLICY))
    listening.host(run(2))
    actions = listening.tell(ev.ProxyOutput(b'{"type":"error","message":"bad regex","run":"1"}\n'))
    back = SetPolicy(run="2", allow=[r"\.example\.com$"], connect_ports=[443, 80])
    # Which policy is in force is not known any more: the next run asks for its own again.
    assert actions == [act.Send(Log(level="warning", message="proxy: bad regex")),
                       act.Send(Failed(id=1, message="network policy refused: bad regex", kind="bad_request")),
                       act.ToProxy(back)]


def test_without_the_firewall_every_run_fails(filtered):
    core = filtered
    core.host(run(1))
    actions = core.tell(ev.NetworkRefused("nft failed (1): no nftables"))
    assert sent(actions) == [
        Log(level="error", message="cannot set up filtered networking: nft failed (1): no nftables")]
    failure = "filtered networking could not be set up: nft failed (1): no nftables"
    assert sent(core.host(run(2))) == [Failed(id=1, message=failure, kind="network"),
                                       Failed(id=2, message=failure, kind="network")]
    core.host(Reset(id=3))
    assert core.tell(CLEAN) == [act.Inspect(proxy_pid=PROXY)]
    core.tell(ev.Inspected([], []))
    assert "network" not in sent(core.tell(ev.PrestartsArmed([], [])))[-1].verified


def test_the_proxys_log_lines_go_with_the_run_that_asked_for_them(listening):
    core = listening
    core.spawned(run(1, log_network=True), 20)
    core.spawned(run(2), 21)
    assert core.tell(ev.ProxyOutput(REQUEST + b"\n")) == []
    # Tunnels are logged when they close: the proxy closes the run's connections before its Exit.
    assert core.ended(20) == [act.ToProxy(ResetConnections())]
    assert core.tell(ev.ProxyOutput(REQUEST + b"\n" + RESET_OK)) == [act.Collect(1, [], 512 * 1024 * 1024)]
    assert core.collected(1).network_log == [REQUEST, REQUEST]
    core.ended(21)
    assert core.collected(2).network_log == []  # not asked for


def test_what_the_proxy_writes_on_stderr_is_logged_and_unreadable_lines_are_errors(listening):
    assert sent(listening.tell(ev.ProxyStderr(b"Traceback ...\n"))) == [
        Log(level="warning", message="proxy: Traceback ...")]
    assert sent(listening.tell(ev.ProxyOutput(b"garbage\n"))) == [
        Log(level="warning", message="proxy: unreadable proxy output: b'garbage'")]
    assert listening.tell(ev.ProxyOutput(b'{"type":"reset_failed","message":"x"}\n')) == []  # answers nothing


def test_a_proxy_that_exits_holds_runs_back_until_a_reset_starts_it_again(listening):
    core = listening
    assert sent(core.tell(ev.ChildExited(PROXY, exited(1)))) == [
        Log(level="error", message="the proxy exited (status 256); it restarts with the next reset")]
    assert core.host(run(1)) == []
    assert core.host(Reset(id=2)) == [act.Sweep([])]  # no proxy to keep
    assert core.tell(CLEAN) == [act.StartProxy(8080, CONTAINER_POLICY)]
    # It comes up on its own; runs wait for it meanwhile.
    assert core.tell(ev.ProxyStarted(51)) == [act.Inspect(proxy_pid=51)]
    core.tell(ev.Inspected([], []))
    assert "network" in sent(core.tell(ev.PrestartsArmed([], [])))[-1].verified
    assert core.host(run(3)) == []
    assert core.tell(ev.ProxyOutput(LISTENING)) == [spawn(3)]


def finish(core, op_id: int = 2) -> tuple[Done, Ready]:
    core.tell(ev.Inspected([], []))
    *_, done, ready = sent(core.tell(ev.PrestartsArmed([], [])))
    assert done.id == op_id
    return done, ready


def test_a_reset_closes_the_proxys_connections_and_waits_for_its_answer(listening):
    core = listening
    assert core.host(Reset(id=2)) == [act.Sweep([PROXY])]  # the sweep leaves the proxy's tasks alone
    assert core.tell(CLEAN) == [act.ToProxy(ResetConnections()), act.AwaitProxy(PROXY_ANSWER_TIMEOUT_S)]
    assert core.core.awaiting_proxy
    # A log line of the run that is over answers nothing.
    assert core.tell(ev.ProxyOutput(REQUEST + b"\n")) == []
    assert core.tell(ev.ProxyOutput(RESET_OK)) == [act.Inspect(proxy_pid=PROXY)]
    assert not core.core.awaiting_proxy
    done, ready = finish(core)
    assert done.detail == {**CLEAN_DETAIL, "connections_closed": 2, "connections_refused": 1}
    assert ready.verified == ["processes", "tasks", "ipc", "network", "files", "state"]


def reset_after_a_run_of_its_own_policy(core) -> list:
    """A run that had a policy of its own, then a reset: the actions once the proxy closed everything."""
    core.host(run(1, network_policy=RUN_POLICY))
    core.tell(ev.ProxyOutput(policy_ok("1")))
    core.tell(ev.Spawned(1, 20, NOTHING))
    core.host(Reset(id=2))
    core.tell(CLEAN)
    return core.tell(ev.ProxyOutput(RESET_OK))


def test_a_reset_puts_the_containers_policy_back(listening):
    core = listening
    back = SetPolicy(run="reset", allow=[r"\.example\.com$"], connect_ports=[443, 80])
    assert reset_after_a_run_of_its_own_policy(core) == [act.ToProxy(back), act.AwaitProxy(PROXY_ANSWER_TIMEOUT_S)]
    assert core.tell(ev.ProxyOutput(policy_ok("reset"))) == [act.Inspect(proxy_pid=PROXY)]
    assert "network" in finish(core)[1].verified
    assert core.host(run(3)) == [spawn(3)]  # the container's policy is in force again


def test_a_policy_pending_when_the_reset_comes_holds_nothing_back_after_it(listening):
    core = listening
    core.host(run(1, network_policy=RUN_POLICY))  # asked for; the reset comes before the answer
    core.host(Reset(id=2))
    core.tell(CLEAN)
    core.tell(ev.ProxyOutput(policy_ok("1") + RESET_OK))
    core.tell(ev.ProxyOutput(policy_ok("reset")))
    finish(core)
    assert core.host(run(3)) == [spawn(3)]


@pytest.mark.parametrize("answer", [
    ev.ProxySilent(), ev.ProxyOutput(b""), ev.ProxyOutput(b'{"type":"reset_failed","message":"EMFILE"}\n'),
])
def test_a_proxy_that_does_not_answer_the_reset_is_let_go(listening, answer):
    core = listening
    core.host(Reset(id=2))
    core.tell(CLEAN)
    assert core.tell(answer) == [act.Release(PROXY), act.Inspect(proxy_pid=0)]
    assert "network" not in finish(core)[1].verified
    assert core.tell(ev.ChildExited(PROXY, signal.SIGKILL)) == []  # let go already
    # The next reset starts another.
    core.host(Reset(id=3))
    assert core.tell(CLEAN) == [act.StartProxy(8080, CONTAINER_POLICY)]


def test_a_refused_policy_during_the_reset_is_its_verdict(listening):
    core = listening
    reset_after_a_run_of_its_own_policy(core)
    # An error about another line is not the answer.
    assert core.tell(ev.ProxyOutput(b'{"type":"error","message":"x","run":"7"}\n')) == []
    assert core.tell(ev.ProxyOutput(b'{"type":"error","message":"x","run":"reset"}\n')) == [
        act.Release(PROXY), act.Inspect(proxy_pid=0)]


def test_a_proxy_not_listening_yet_has_nothing_to_close(filtered):
    filtered.host(Reset(id=2))
    assert filtered.tell(CLEAN) == [act.Inspect(proxy_pid=PROXY)]
    assert "network" in finish(filtered)[1].verified


def test_runs_waiting_for_the_proxy_are_dropped_by_a_reset(filtered):
    filtered.host(run(1))
    filtered.host(Reset(id=2))
    filtered.tell(CLEAN)
    finish(filtered)
    assert filtered.tell(ev.ProxyOutput(LISTENING)) == []  # run 1 is not started after all


def test_closing_leaves_the_proxy_to_die_with_the_agent(listening):
    assert listening.core.close() == [act.KillAll([PROXY])]


def test_a_run_past_its_deadline_while_waiting_for_the_proxys_log(listening):
    """A run that ended is not killed again while its Exit waits for the proxy's answer."""
    core = listening
    core.spawned(run(1, log_network=True, timeout_ms=1000), 20)
    core.ended(20)
    assert core.tick(after=2) == []
    assert core.tell(ev.ProxyOutput(RESET_OK)) == [act.Collect(1, [], 512 * 1024 * 1024)]
    assert core.tell(ev.Collected(1, NOTHING)) != []
