"""Sandbox, the trio driver of the agent conversation, over the in-memory backend: its timeouts, what a
failure makes of the container, and the mapping of everything to SandboxError (trio's mock clock, no
Docker)."""

from __future__ import annotations

import contextlib

import pytest
import trio
import trio.testing

from isol8rt.agent import protocol
from isol8rt.agent.protocol import Exit, FileData, GetFile, Output, PutFile, Run, Signal, Stdin
from isol8rt.engine.backend import SandboxSpec
from isol8rt.engine.channel import AgentChannel
from isol8rt.engine.conversation import Conversation, State
from isol8rt.engine.container import AGENT_GRACE_S, RESET_CHECKS, Container, required_checks
from isol8rt.testing import MemoryAgentStream
from isol8rt.errors import SandboxError
from isol8rt.testing import AgentScript, RunReply, open_memory_backend

SPEC = SandboxSpec(image="img", labels={}, memory_bytes=2**29, nano_cpus=10**9, pids_limit=64)


@contextlib.asynccontextmanager
async def container_of(script: AgentScript | None = None, spec: SandboxSpec = SPEC):
    async with open_memory_backend(script) as backend:
        container = await Container.create(backend, spec, protocol.Configure())
        yield container, backend


async def collect(container: Container, messages, timeout_s: float | None = None) -> list:
    op_id = messages[-1].id
    return [event async for event in container.operate(messages, op_id, timeout_s)]


def run(container: Container, **fields) -> list:
    return [Run(id=container.next_id(), argv=["x"], env={}, **fields)]


async def test_a_new_sandbox_is_configured_and_idle():
    async with container_of() as (container, backend):
        assert backend.running() == [container.container_id]
        assert backend.containers[container.container_id].agent.configure == protocol.Configure()
        assert container.conversation.state is State.IDLE and not container.broken


async def test_an_out_of_date_agent_is_refused_and_its_container_removed():
    async with open_memory_backend(AgentScript(version=protocol.PROTOCOL_VERSION + 1)) as backend:
        with pytest.raises(SandboxError, match="the agent in img speaks protocol .* run `isol8rt setup`"):
            await Container.create(backend, SPEC)
        [container] = backend.containers.values()
        assert container.state == "removed"


async def test_a_run_yields_its_answers_up_to_its_exit():
    async with container_of(AgentScript(run=lambda r: RunReply(stdout=b"hi", exit_code=4))) as (container, _):
        messages = run(container)
        events = await collect(container, messages)
        op_id = messages[-1].id
        assert events == [Output(id=op_id, fd=1, data=b"hi"), Exit(id=op_id, exit_code=4)]
        assert container.pending_op is None and not container.broken


async def test_files_in_and_out():
    async with container_of() as (container, _):
        op_id = container.next_id()
        events = await collect(container, [PutFile(id=op_id, path="/sandbox/a", data=b"12", last=False),
                                         PutFile(id=op_id, path="/sandbox/a", data=b"3", offset=2, ack=True)])
        assert [type(e).__name__ for e in events] == ["Done"]
        op_id = container.next_id()
        events = await collect(container, [GetFile(id=op_id, path="/sandbox/a")])
        assert events[0] == FileData(id=op_id, path="/sandbox/a", data=b"123")


async def test_an_agent_that_stops_answering_breaks_the_sandbox_after_the_runs_timeout_and_grace(autojump_clock):
    async with container_of(AgentScript(run=lambda r: RunReply(hang=True))) as (container, _):
        started = trio.current_time()
        with pytest.raises(SandboxError, match="stopped answering"):
            await collect(container, run(container), timeout_s=10)
        assert trio.current_time() - started == 10 + AGENT_GRACE_S
        assert container.broken and container.pending_op is not None


async def test_an_agent_that_dies_mid_run_breaks_the_sandbox():
    async with container_of(AgentScript(run=lambda r: RunReply(crash=True))) as (container, _):
        with pytest.raises(SandboxError, match="failed: the agent exited"):
            await collect(container, run(container))
        assert container.broken


async def test_a_run_walked_away_from_is_interrupted_and_the_sandbox_survives(autojump_clock):
    async with container_of(AgentScript(run=lambda r: RunReply(hang=True))) as (container, backend):
        messages = run(container)
        op_id = messages[-1].id
        async with contextlib.aclosing(container.operate(messages, op_id, None)) as events:
            with trio.move_on_after(1):
                async for _ in events:
                    pass
        assert container.broken and container.pending_op == op_id
        assert await container.interrupt(op_id, gentle=True)
        assert not container.broken and container.pending_op is None
        assert backend.containers[container.container_id].agent.received[-1] == Signal(id=op_id, signum=2)


async def test_an_operation_after_one_walked_away_from_drops_its_stragglers(autojump_clock):
    async with container_of(AgentScript(run=lambda r: RunReply(hang=True))) as (container, _):
        messages = run(container)
        old = messages[-1].id
        async with contextlib.aclosing(container.operate(messages, old, None)) as events:
            with trio.move_on_after(1):  # walked away before any answer
                async for _ in events:
                    pass
        await container.control(Signal(id=old, signum=9))  # its Exit is now on its way...
        op_id = container.next_id()
        events = await collect(container, [PutFile(id=op_id, path="f", data=b"", ack=True)])
        assert [(type(e).__name__, e.id) for e in events] == [("Done", op_id)]  # ...and dropped


async def test_stdin_and_signals_go_to_the_run_once_it_is_sent(nursery, autojump_clock):
    async with container_of(AgentScript(run=lambda r: RunReply(hang=True))) as (container, backend):
        messages = run(container, stdin_open=True)
        op_id = messages[-1].id

        async def feed() -> None:
            await container.control(Stdin(id=op_id, data=b"line\n", eof=True))
            await container.control(Signal(id=op_id, signum=15))

        events = [event async for event in container.operate(messages, op_id, None,
                                                           on_sent=lambda: nursery.start_soon(feed))]
        assert events == [Exit(id=op_id, exit_code=143, signal=15)]
        assert Stdin(id=op_id, data=b"line\n", eof=True) in backend.containers[container.container_id].agent.received


async def test_a_reset_that_verified_everything_required():
    async with container_of() as (container, _):
        await container.begin_reset()
        assert container.conversation.awaiting_ready
        await container.settle()
        assert container.generation == 1 and not container.broken and not container.conversation.awaiting_ready


@pytest.mark.parametrize(("network", "verified", "missing"), [
    ("none", ["processes", "tasks", "files", "state"], "['ipc']"),
    ("none", ["processes", "files", "ipc"], "['state', 'tasks']"),  # what an agent before the kernel's verdict said
    ("filtered", sorted(RESET_CHECKS), "['network']"),  # filtered networking also requires the proxy's reset
    ("none", [], "['files', 'ipc', 'processes', 'state', 'tasks']"),
])
async def test_a_reset_that_did_not_verify_breaks_the_sandbox(network, verified, missing):
    spec = SandboxSpec(image="img", labels={}, memory_bytes=2**29, nano_cpus=10**9, pids_limit=64, network=network)
    async with container_of(AgentScript(verified=lambda agent: verified), spec) as (container, _):
        await container.begin_reset()
        with pytest.raises(SandboxError, match=f"could not verify its reset: {missing.replace('[', '.')}"):
            await container.settle()
        assert container.broken


async def test_a_later_host_adopts_a_running_agent_and_ignores_what_was_meant_for_the_earlier_one(autojump_clock):
    script = AgentScript(run=lambda r: RunReply(stdout=b"late", seconds=float(r.argv[0])))
    async with container_of(script) as (earlier, backend):
        op_id = earlier.next_id()
        await collect(earlier, [PutFile(id=op_id, path="/sandbox/state", data=b"kept", ack=True)])
        slow = [Run(id=earlier.next_id(), argv=["5"], env={})]
        async with contextlib.aclosing(earlier.operate(slow, slow[0].id, None)) as events:
            with trio.move_on_after(1):
                async for _ in events:
                    pass
        await earlier.channel.aclose()  # the earlier host goes away mid-run; the container lives on
        later = await Container.adopt(backend, SPEC, earlier.container_id)
        assert later.conversation.state is State.IDLE and later.next_id() > 1_000_000
        op_id = later.next_id()
        events = await collect(later, [GetFile(id=op_id, path="/sandbox/state")])
        assert events[0] == FileData(id=op_id, path="/sandbox/state", data=b"kept")
        await trio.sleep(10)  # the earlier host's run ends meanwhile: its Output and Exit reach the later host
        mine = [Run(id=later.next_id(), argv=["0"], env={})]
        events = await collect(later, mine)
        assert events == [Output(id=mine[0].id, fd=1, data=b"late"), Exit(id=mine[0].id, exit_code=0)]


def test_the_checks_a_reset_must_verify():
    assert required_checks(SPEC) == RESET_CHECKS == {"processes", "tasks", "files", "ipc", "state"}
    filtered = SandboxSpec(image="i", labels={}, memory_bytes=1, nano_cpus=1, pids_limit=1, network="filtered")
    assert required_checks(filtered) == RESET_CHECKS | {"network"}


# --------------------------------------------------------------------------------------------------
# an agent that breaks the protocol (played by the test on the other end of a memory stream)


async def test_an_agent_that_breaks_the_protocol_breaks_the_sandbox_for_good():
    async with open_memory_backend() as backend:
        host, agent = trio.testing.memory_stream_pair()
        conversation = Conversation(RESET_CHECKS)
        conversation.receive_messages([protocol.Ready(version=protocol.PROTOCOL_VERSION)])
        conversation.next_event()
        container = Container(backend, SPEC, "c" * 64, AgentChannel(MemoryAgentStream(host)), conversation)
        messages = run(container)
        op_id = messages[-1].id
        encoder = protocol.FrameEncoder()
        await agent.send_all(encoder.encode_many([Exit(id=op_id, exit_code=0), Exit(id=op_id, exit_code=0)]))
        assert await collect(container, messages) == [Exit(id=op_id, exit_code=0)]
        with pytest.raises(SandboxError, match=f"the agent broke the protocol: sent Exit for operation {op_id}, "
                                               "which is not under way"):
            await collect(container, run(container))
        assert container.broken and container.channel.closed
        with pytest.raises(SandboxError, match="broke the protocol earlier"):
            await collect(container, run(container))
