"""The kit's fake agent keeps the real agent's rules, because it is the real agent's core: Ready first,
Configure once, one terminal message per operation, Reset -> Done -> Ready(verified), stragglers dropped
by id, run deadlines, sessions, prestarts and filtered networking. Each is shown here as the host sees
it, through the in-memory backend's bytes, on trio's mock clock (no sleep stands in for anything)."""

from __future__ import annotations

import contextlib
import signal

import msgspec
import pytest
import trio

from isol8rt.agent import protocol
from isol8rt.agent.core import actions as act
from isol8rt.agent.protocol import (
    Configure,
    Done,
    Exit,
    Failed,
    FileData,
    GetFile,
    Log,
    NetworkConfig,
    NetworkPolicy,
    Output,
    Ping,
    Prestart,
    PutFile,
    Ready,
    Reset,
    Run,
    Signal,
    Stdin,
)
from isol8rt.engine.backend import SandboxSpec
from isol8rt.testing import AgentScript, FakeAgent, RunReply, UnsupportedAction, open_memory_backend

VERSION = protocol.PROTOCOL_VERSION
SPEC = SandboxSpec(image="img", labels={}, memory_bytes=2**29, nano_cpus=10**9, pids_limit=64)
PY = ["python3", "/sandbox/main.py"]


def _script(run: Run) -> RunReply:
    """Runs are scripted by their argv: ["sleep", seconds], ["hang"], or anything else: prints its code."""
    if run.argv[0] == "sleep":
        return RunReply(stdout=b"slept", seconds=float(run.argv[1]))
    return RunReply(stdout=run.code or b"", hang=run.argv[0] == "hang")


class Host:
    """The host's end of one attach: messages out, the agent's messages in."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.encoder = protocol.FrameEncoder()
        self.decoder = protocol.host_decoder()
        self.inbox: list = []

    async def send(self, *messages) -> None:
        await self.stream.send_all(self.encoder.encode_many(list(messages)))

    async def until(self, done) -> list:
        """The agent's messages up to the first one ``done`` accepts (it included)."""
        received = []
        while True:
            while self.inbox:
                message = self.inbox.pop(0)
                received.append(message)
                if done(message):
                    return received
            chunks = await self.stream.receive()
            if not chunks:
                raise EOFError(f"the agent's stream ended after {received}")
            self.inbox += self.decoder.feed(chunks[0][1])

    async def answer(self, op_id: int) -> list:
        """Everything up to the terminal message of operation ``op_id``."""
        return await self.until(lambda m: type(m) in (Exit, Done, Failed) and m.id == op_id)

    async def ended(self) -> bool:
        return await self.stream.receive() == []


@contextlib.asynccontextmanager
async def agent(configure: Configure = Configure(), script: AgentScript = AgentScript(run=_script)):
    """A configured agent in a memory container: the host's end, and the fake agent."""
    async with open_memory_backend(script) as backend:
        container_id = await backend.create(SPEC)
        host = Host(await backend.attach(container_id))
        await backend.start(container_id)
        assert await host.until(lambda m: True) == [Ready(version=VERSION)]  # Ready first
        await host.send(configure)
        assert (await host.until(lambda m: type(m) is Ready))[-1].reason == "configured"
        yield host, backend.containers[container_id].agent


def test_every_action_of_the_core_is_carried_out_in_memory():
    kinds = {cls for cls in vars(act).values() if isinstance(cls, type) and issubclass(cls, act.Action)}
    kinds.discard(act.Action)
    assert kinds == set(FakeAgent._performers) and len(kinds) >= 20


def test_an_action_it_cannot_carry_out_is_refused_by_name():
    class Teleport(act.Action, frozen=True):
        pass

    fake = FakeAgent(AgentScript())
    fake.greet()
    with pytest.raises(UnsupportedAction, match="cannot carry out Teleport"):
        fake._carry([Teleport()])


def test_nothing_is_heard_before_the_greeting():
    with pytest.raises(Exception, match="before start"):
        FakeAgent(AgentScript()).receive(Ping(id=1))


async def test_a_reset_is_answered_done_then_ready_naming_what_it_verified(autojump_clock):
    async with agent() as (host, fake):
        await host.send(PutFile(id=1, path="/sandbox/a", data=b"x", ack=True), Run(id=2, argv=["hang"], env={}))
        assert await host.answer(1) == [Done(id=1)]
        await host.send(Reset(id=3))
        # The hanging run is killed without an Exit; the file is wiped, then Done, then the next generation.
        assert await host.until(lambda m: type(m) is Ready) == [
            Done(id=3, detail={"ipc_removed": 0, "files_removed": 1}),
            Ready(version=VERSION, generation=1, reason="reset",
                  verified=["processes", "tasks", "ipc", "files", "state"])]
        assert fake.files == {} and fake.running == {} and fake.generation == 1


async def test_a_reset_that_verified_less_says_so(autojump_clock):
    script = AgentScript(run=_script, verified=lambda agent: ["processes", "ipc", "state"])
    async with agent(script=script) as (host, _):
        await host.send(Reset(id=1))
        *logs, done, ready = await host.until(lambda m: type(m) is Ready)
        assert [type(m) for m in logs] == [Log] and done == Done(id=1, detail={"ipc_removed": 0, "files_removed": 0})
        assert ready.verified == ["processes", "ipc", "state"]  # "tasks" needs the kernel's count; "files" failed


async def test_stragglers_of_a_run_that_is_over_are_dropped_by_id(autojump_clock):
    async with agent() as (host, fake):
        await host.send(Run(id=1, argv=["x"], env={}, code=b"hi"))
        assert await host.answer(1) == [Output(id=1, fd=1, data=b"hi"), Exit(id=1, exit_code=0)]
        # Stdin and a signal for run 1 come late: nothing answers them, and the next operation is the next answer.
        await host.send(Stdin(id=1, data=b"late", eof=True), Signal(id=1, signum=9), Ping(id=2))
        assert await host.answer(2) == [Done(id=2)]
        assert fake.received[-3:] == [Stdin(id=1, data=b"late", eof=True), Signal(id=1, signum=9), Ping(id=2)]


async def test_one_terminal_message_per_operation(autojump_clock):
    async with agent() as (host, _):
        await host.send(Run(id=1, argv=["sleep", "5"], env={}), Run(id=1, argv=["x"], env={}), Ping(id=2),
                        GetFile(id=3, path="/sandbox/none"))
        answers = await host.until(lambda m: type(m) is Failed and m.id == 3)
        assert answers == [Failed(id=1, message="run 1 is already running", kind="busy"), Done(id=2),
                           Failed(id=3, message="/sandbox/none: no such file", kind="not_found")]
        started = trio.current_time()
        assert await host.answer(1) == [Output(id=1, fd=1, data=b"slept"), Exit(id=1, exit_code=0, duration_ms=5000)]
        assert trio.current_time() - started == 5


async def test_a_run_past_its_own_timeout_is_killed_by_the_agent(autojump_clock):
    async with agent() as (host, _):
        started = trio.current_time()
        await host.send(Run(id=1, argv=["hang"], env={}, timeout_ms=2500))
        assert await host.answer(1) == [Exit(id=1, exit_code=137, signal=signal.SIGKILL, timed_out=True,
                                             duration_ms=2500)]
        assert trio.current_time() - started == 2.5


async def test_a_signal_cancels_a_run_with_an_exit_that_names_it(autojump_clock):
    async with agent() as (host, _):
        await host.send(Run(id=1, argv=["hang"], env={}, stdin_open=True))
        await trio.sleep(1)
        await host.send(Stdin(id=1, data=b"in"), Signal(id=1, signum=signal.SIGTERM))
        assert await host.answer(1) == [Exit(id=1, exit_code=143, signal=signal.SIGTERM, duration_ms=1000)]


async def test_files_a_run_leaves_come_before_its_exit(autojump_clock):
    script = AgentScript(run=lambda run: RunReply(files={"/sandbox/out": b"42"}))
    async with agent(script=script) as (host, _):
        await host.send(Run(id=1, argv=["x"], env={}, output_paths=["/sandbox/out", "/sandbox/no"]))
        assert await host.answer(1) == [
            FileData(id=1, path="/sandbox/out", data=b"42"),
            Exit(id=1, exit_code=0, file_errors={"/sandbox/no": "/sandbox/no: no such file"})]


async def test_a_session_keeps_one_interpreter_serves_one_run_at_a_time_and_interrupts_a_late_cell(autojump_clock):
    async with agent() as (host, fake):
        await host.send(Run(id=1, argv=["x"], env={}, code=b"a", session="python"))
        assert await host.answer(1) == [Output(id=1, fd=1, data=b"a"), Exit(id=1, exit_code=0)]
        [interpreter] = [c for c in fake._children.values() if c.kind == "interpreter"]
        await host.send(Run(id=2, argv=["hang"], env={}, code=b"b", session="python", timeout_ms=1000),
                        Run(id=3, argv=["x"], env={}, code=b"c", session="python"))
        assert await host.answer(3) == [
            Failed(id=3, message="the python session is busy with another run", kind="busy")]
        # Past its timeout the cell gets SIGINT (a KeyboardInterrupt keeps the session), and its Exit says so.
        assert (await host.answer(2))[-1] == Exit(id=2, exit_code=137, timed_out=True, duration_ms=1000)
        await host.send(Run(id=4, argv=["x"], env={}, code=b"d", session="python"))
        assert await host.answer(4) == [Output(id=4, fd=1, data=b"d"), Exit(id=4, exit_code=0)]
        assert [c.pid for c in fake._children.values() if c.kind == "interpreter"] == [interpreter.pid]


async def test_a_matching_run_takes_the_prestarted_interpreter(autojump_clock):
    prestart = Prestart(argv=PY, env={}, cwd="/sandbox", code_path="/sandbox/main.py")
    async with agent(Configure(prestart=[prestart]), AgentScript(run=lambda run: RunReply(hang=True))) as (host, fake):
        [armed] = [c.pid for c in fake._children.values() if c.kind == "prestart"]
        await host.send(Run(id=1, argv=PY, env={}, code=b"print(1)", code_path="/sandbox/main.py", stdin_open=True))
        await trio.testing.wait_all_tasks_blocked()
        assert {pid: child.request.id for pid, child in fake._children.items() if child.request} == {armed: 1}
        await host.send(Signal(id=1, signum=9))
        assert (await host.answer(1))[-1] == Exit(id=1, exit_code=137, signal=9)
        assert fake.files["/sandbox/main.py"] == b"print(1)"


async def test_filtered_networking_runs_after_the_proxy_and_its_reset_is_verified(autojump_clock):
    network = NetworkConfig(proxy_port=8080, policy=NetworkPolicy(allow=["example.com"]))
    async with agent(Configure(network=network)) as (host, _):
        await host.send(Run(id=1, argv=["x"], env={}, code=b"a", network_policy=NetworkPolicy(deny=["."])))
        assert await host.answer(1) == [Output(id=1, fd=1, data=b"a"), Exit(id=1, exit_code=0)]
        await host.send(Reset(id=2))
        *_, done, ready = await host.until(lambda m: type(m) is Ready)
        # The proxy closed the run's connections and put the container's policy back.
        assert done.detail == {"ipc_removed": 0, "files_removed": 0, "connections_closed": 0, "connections_refused": 0}
        assert "network" in ready.verified


async def test_filtered_networking_whose_reset_failed_is_not_verified(autojump_clock):
    script = AgentScript(run=_script, verified=lambda agent: ["processes", "tasks", "files", "ipc", "state"])
    async with agent(Configure(network=NetworkConfig(proxy_port=8080)), script) as (host, _):
        await host.send(Reset(id=1))
        ready = (await host.until(lambda m: type(m) is Ready))[-1]
        assert ready.verified == ["processes", "tasks", "ipc", "files", "state"]


async def test_a_second_configure_breaks_the_protocol_and_the_agent_exits(autojump_clock):
    async with agent() as (host, fake):
        await host.send(Configure())
        assert [type(m) for m in await host.until(lambda m: type(m) is Log)] == [Log]
        assert await host.ended()


async def test_the_idle_limit_ends_an_agent_nobody_talks_to(autojump_clock):
    async with agent(Configure(idle_timeout_s=30)) as (host, _):
        started = trio.current_time()
        assert await host.ended()
        assert trio.current_time() - started == 30


async def test_the_idle_limit_waits_for_a_run_that_outlives_it(autojump_clock):
    async with agent(Configure(idle_timeout_s=30)) as (host, _):
        started = trio.current_time()
        await host.send(Run(id=1, argv=["sleep", "100"], env={}, timeout_ms=0))
        assert (await host.answer(1))[-1] == Exit(id=1, exit_code=0, duration_ms=100_000)
        assert await host.ended()  # idle from the run's end on
        assert trio.current_time() - started == 130


async def test_a_shutdown_ends_the_agent(autojump_clock):
    async with agent() as (host, _):
        await host.send(Run(id=1, argv=["hang"], env={}), protocol.Shutdown())
        assert await host.ended()


def test_the_fake_speaks_the_wire_format():
    # What it sends is what a real agent sends: every message encodes and decodes as itself.
    fake = FakeAgent(AgentScript(run=_script))
    messages = fake.greet() + fake.receive(Configure()) + fake.receive(Run(id=1, argv=["x"], env={}, code=b"hi"))
    decoded = protocol.host_decoder().feed(protocol.FrameEncoder().encode_many(messages))
    assert decoded == messages and all(isinstance(m, msgspec.Struct) for m in messages)
