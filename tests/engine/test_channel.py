"""The agent channel over an AgentStream: exactly the stream's declared exceptions become ChannelBroken,
anything else (a bug) goes through as it is."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from isol8rt.engine.channel import AgentChannel, ChannelBroken


class ScriptedStream:
    """An AgentStream whose reads are given in advance; an exception in the script is raised in its turn."""

    def __init__(self, *reads: list[tuple[int, bytes]] | BaseException, send_error: BaseException | None = None) -> None:
        self.reads = list(reads)
        self.send_error = send_error
        self.sent = b""
        self.closed = False

    async def send_all(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        if self.send_error is not None:
            raise self.send_error
        self.sent += data

    async def receive(self) -> list[tuple[int, bytes]]:
        await trio.lowlevel.checkpoint()
        item = self.reads.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()


async def test_stdout_is_returned_and_stderr_kept_for_the_agents_last_words():
    channel = AgentChannel(ScriptedStream([(2, b"Traceback: boom")], [(1, b"a"), (2, b"x"), (1, b"b")], []))
    assert await channel.receive() == b"ab"
    with pytest.raises(ChannelBroken, match="the agent exited; it said: Traceback: boomx"):
        await channel.receive()
    with pytest.raises(ChannelBroken, match="closed"):
        await channel.receive()


@pytest.mark.parametrize("error", [trio.BrokenResourceError("gone"), trio.ClosedResourceError("closed")])
async def test_the_streams_declared_errors_break_the_channel(error):
    reading = AgentChannel(ScriptedStream(error))
    with pytest.raises(ChannelBroken, match="cannot read from the agent"):
        await reading.receive()
    assert reading.closed
    writing = AgentChannel(ScriptedStream(send_error=error))
    with pytest.raises(ChannelBroken, match="cannot write to the agent"):
        await writing.send(b"x")
    assert writing.closed


async def test_anything_else_is_a_bug_and_is_not_disguised():
    with pytest.raises(trio.BusyResourceError):
        await AgentChannel(ScriptedStream(trio.BusyResourceError("two readers"))).receive()
    with pytest.raises(ValueError):
        await AgentChannel(ScriptedStream(send_error=ValueError("bad"))).send(b"x")


async def test_aclose_closes_the_stream_even_when_cancelled():
    stream = ScriptedStream()
    channel = AgentChannel(stream)
    with trio.CancelScope() as scope:
        scope.cancel()
        await channel.aclose()
    assert stream.closed and channel.closed


async def test_a_memory_stream_keeps_the_promise():
    """trio's own streams (the test kit's attach) raise what AgentStream declares, and nothing else."""
    host, agent = trio.testing.memory_stream_pair()

    class HostEnd:
        async def send_all(self, data: bytes) -> None:
            await host.send_all(data)

        async def receive(self) -> list[tuple[int, bytes]]:
            data = await host.receive_some()
            return [(1, bytes(data))] if data else []

        async def aclose(self) -> None:
            await host.aclose()

    channel = AgentChannel(HostEnd())
    await channel.aclose()
    with pytest.raises(ChannelBroken):
        await channel.send(b"x")
    await agent.aclose()
