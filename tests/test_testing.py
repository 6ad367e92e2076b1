"""The test kit itself: the fake agent answers as the real one does (on messages alone), and the
in-memory backend carries its bytes and behaves as a container platform (on trio's clock)."""

from __future__ import annotations

import trio
import trio.testing

from isol8rt.agent import protocol
from isol8rt.agent.protocol import Configure, Done, Exit, Failed, FileData, GetFile, Log, Output, Ping, PutFile, Ready
from isol8rt.agent.protocol import Reset, Run, Signal, Stdin
from isol8rt.engine.backend import SandboxSpec
from isol8rt.runtimes import LABEL_MANAGED_BY, MANAGED_BY
from isol8rt.testing import CRASH, After, AgentScript, FakeAgent, RunReply, open_memory_backend

VERSION = protocol.PROTOCOL_VERSION
SPEC = SandboxSpec(image="img", labels={"team": "a"}, memory_bytes=2**29, nano_cpus=10**9, pids_limit=64)


def agent(**script) -> FakeAgent:
    return FakeAgent(AgentScript(**script), "c1")


def greeted(**script) -> FakeAgent:
    """An agent past its greeting (the core hears nothing before it has said Ready)."""
    fake = agent(**script)
    fake.greet()
    return fake


def run(op_id: int, **fields) -> Run:
    return Run(id=op_id, argv=["x"], env={}, **fields)


def test_greets_and_answers_configure_and_ping():
    fake = agent()
    assert fake.greet() == [Ready(version=VERSION)]
    assert fake.receive(Configure(idle_timeout_s=1)) == [Ready(version=VERSION, reason="configured")]
    assert fake.configure == Configure(idle_timeout_s=1)
    assert fake.receive(Ping(id=4)) == [Done(id=4)]
    assert agent(version=99).greet() == [Ready(version=99)]


def test_a_run_as_scripted():
    fake = greeted(run=lambda r: RunReply(stdout=r.code or b"", stderr=b"e", exit_code=3, files={"/sandbox/o": b"out"}))
    assert fake.receive(run(1, code=b"hi", output_paths=["/sandbox/o", "/sandbox/none"])) == [
        Output(id=1, fd=1, data=b"hi"), Output(id=1, fd=2, data=b"e"),
        FileData(id=1, path="/sandbox/o", data=b"out"),
        Exit(id=1, exit_code=3, file_errors={"/sandbox/none": "/sandbox/none: no such file"})]
    assert fake.running == {}


def test_a_run_that_takes_time_ends_when_its_timer_fires_unless_signalled():
    fake = greeted(run=lambda r: RunReply(stdout=b"done", seconds=5))
    assert fake.receive(run(1)) == [After(5, 1)]
    assert fake.receive(run(1)) == [Failed(id=1, message="run 1 is already running", kind="busy")]
    assert fake.timer(1) == [Output(id=1, fd=1, data=b"done"), Exit(id=1, exit_code=0, duration_ms=5000)]
    assert fake.receive(run(2)) == [After(5, 2)]
    assert fake.receive(Signal(id=2, signum=9)) == [Exit(id=2, exit_code=137, signal=9)]
    assert fake.timer(2) == []  # already over
    assert fake.receive(Signal(id=2, signum=9)) == []


def test_hang_and_crash():
    fake = greeted(run=lambda r: RunReply(hang=bool(r.id % 2), crash=not r.id % 2))
    assert fake.receive(run(1)) == []
    assert fake.receive(Signal(id=1, signum=2)) == [Exit(id=1, exit_code=130, signal=2)]
    assert fake.receive(run(2)) == [CRASH]


def test_files_in_chunks_out_and_missing():
    fake = greeted()
    assert fake.receive(PutFile(id=1, path="f", data=b"ab", last=False)) == []
    assert fake.receive(PutFile(id=1, path="f", data=b"cd", offset=2, ack=True)) == [Done(id=1)]
    assert fake.receive(GetFile(id=2, path="f")) == [FileData(id=2, path="f", data=b"abcd"), Done(id=2)]
    assert fake.receive(PutFile(id=3, path="f", data=b"x", ack=True)) == [Done(id=3)]  # offset 0 truncates
    assert fake.receive(GetFile(id=4, path="f"))[0].data == b"x"
    assert fake.receive(GetFile(id=5, path="g")) == [Failed(id=5, message="g: no such file", kind="not_found")]


def test_reset_wipes_kills_and_reports_what_the_script_verified():
    fake = greeted(run=lambda r: RunReply(hang=True), verified=lambda a: ["processes"] if a.generation == 2 else ["files"])
    fake.receive(PutFile(id=1, path="f", data=b"x"))
    fake.receive(run(2))
    # As the real agent: what the reset could not verify is logged, then its Done and the next Ready.
    assert fake.receive(Reset(id=3)) == [
        Log(level="warning", message="reset left a socket nobody holds (scripted)"),
        Done(id=3, detail={"ipc_removed": 0, "files_removed": 1}),
        Ready(version=VERSION, generation=1, reason="reset", verified=["files"])]
    assert fake.files == {} and fake.running == {}
    assert fake.receive(Reset(id=4))[-1].verified == ["processes"]
    assert fake.receive(Stdin(id=9, data=b"kept")) == []
    assert fake.received[-1] == Stdin(id=9, data=b"kept")


async def test_the_backend_carries_the_agents_bytes_and_its_end():
    async with open_memory_backend() as backend:
        container_id = await backend.create(SPEC)
        stream = await backend.attach(container_id)
        await backend.start(container_id)
        decoder = protocol.host_decoder()
        [(fd, data)] = await stream.receive()
        assert fd == 1 and decoder.feed(data) == [Ready(version=VERSION)]
        await stream.send_all(protocol.FrameEncoder().encode(Ping(id=1)))
        assert decoder.feed((await stream.receive())[0][1]) == [Done(id=1)]
        assert backend.running() == [container_id]
        await backend.kill(container_id)
        assert await stream.receive() == []  # the agent is gone: end of stream
        assert backend.containers[container_id].state == "exited"


async def test_a_crashing_run_ends_the_stream():
    async with open_memory_backend(AgentScript(run=lambda r: RunReply(crash=True))) as backend:
        container_id = await backend.create(SPEC)
        stream = await backend.attach(container_id)
        await backend.start(container_id)
        await stream.receive()  # the greeting
        await stream.send_all(protocol.FrameEncoder().encode(run(1)))
        assert await stream.receive() == []
        assert backend.running() == []


async def test_timers_run_on_trios_clock(autojump_clock):
    async with open_memory_backend(AgentScript(run=lambda r: RunReply(seconds=60))) as backend:
        container_id = await backend.create(SPEC)
        stream = await backend.attach(container_id)
        await backend.start(container_id)
        await stream.receive()
        started = trio.current_time()
        await stream.send_all(protocol.FrameEncoder().encode(run(1, timeout_ms=0)))  # no deadline of its own
        [exit_message] = protocol.host_decoder().feed((await stream.receive())[0][1])
        assert exit_message == Exit(id=1, exit_code=0, duration_ms=60_000)
        assert trio.current_time() - started == 60


async def test_the_agent_outlives_an_attach_as_on_docker():
    async with open_memory_backend() as backend:
        container_id = await backend.create(SPEC)
        first = await backend.attach(container_id)
        await backend.start(container_id)
        await first.receive()  # the greeting
        await first.send_all(protocol.FrameEncoder().encode(PutFile(id=1, path="f", data=b"kept")))
        await first.aclose()  # the host hangs up...
        await trio.testing.wait_all_tasks_blocked()
        assert backend.running() == [container_id]  # ...and the agent lives on
        again = await backend.attach(container_id)
        await again.send_all(protocol.FrameEncoder().encode(GetFile(id=2, path="f")))
        assert protocol.host_decoder().feed((await again.receive())[0][1]) == [
            FileData(id=2, path="f", data=b"kept"), Done(id=2)]
        third = await backend.attach(container_id)
        assert await again.receive() == []  # a new attach replaces the old one
        await backend.remove(container_id)
        assert await third.receive() == []


async def test_listing_finding_and_removing():
    async with open_memory_backend() as backend:
        first, second = await backend.create(SPEC), await backend.create(SPEC)
        for container_id in (first, second):
            await backend.attach(container_id)
        await backend.start(first)
        assert await backend.list({"team": "a"}) == [first, second]
        assert await backend.list({LABEL_MANAGED_BY: MANAGED_BY, "team": "b"}) == []
        assert await backend.find_running({"team": None}) == [(first, {LABEL_MANAGED_BY: MANAGED_BY, "team": "a"})]
        assert await backend.find_running({"other": None}) == []
        await backend.remove(first)
        await backend.remove(first)  # removing twice is no error, as on Docker
        assert await backend.list({}) == [second]
        assert not await backend.out_of_memory(second)
        assert await backend.find_baked_image("python", ["numpy"]) is None
