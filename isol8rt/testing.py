"""In-memory stand-ins for testing code that drives isol8rt's engine: no Docker, no root, no waiting.

In the spirit of :mod:`trio.testing`::

    script = AgentScript(run=lambda run: RunReply(stdout=b"hi\\n"))
    async with open_memory_backend(script) as backend:
        async with DockerIsol8(Isol8Options(), backend=backend) as engine:
            result = await engine.execute(ExecutionRequest(code="print('hi')"))

:class:`MemoryBackend` is a :class:`~isol8rt.engine.backend.ContainerBackend` whose containers live in
this process. Attaching to one gives one end of a :func:`trio.testing.memory_stream_pair`; on the other
end a :class:`FakeAgent` answers the host as the real agent would, as its :class:`AgentScript` says.
Everything happens on trio's clock, so under ``trio.testing.MockClock(autojump_threshold=0)`` a run
scripted to take ten seconds takes none, and the pool's timers fire as soon as nothing else can happen.

The fake agent is the real agent's core (:mod:`isol8rt.agent.core`, which keeps every rule of the
conversation) driven in memory: host messages in, the core's actions carried out on fake children, files
in a dict and a proxy that answers at once (:mod:`isol8rt._fake_agent`, no I/O). :class:`MemoryBackend`
only carries its bytes, its timers and the core's deadlines.
"""

from __future__ import annotations

import builtins  # annotations after the `list` method below mean the type, not the method
import contextlib
import itertools
import math
from typing import AsyncIterator

import trio
import trio.testing

from ._fake_agent import CRASH, Action, After, AgentScript, FakeAgent, RunReply, UnsupportedAction
from .agent import protocol
from .engine.backend import SandboxSpec
from .runtimes import LABEL_MANAGED_BY, MANAGED_BY

__all__ = ["After", "AgentScript", "CRASH", "FakeAgent", "MemoryAgentStream", "MemoryBackend", "RunReply",
           "UnsupportedAction", "open_memory_backend"]


class MemoryAgentStream:
    """:class:`~isol8rt.engine.backend.AgentStream` over the host's end of a memory stream pair: every
    byte that arrives is the agent's stdout."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream

    async def send_all(self, data: bytes) -> None:
        await self._stream.send_all(data)

    async def receive(self) -> list[tuple[int, bytes]]:
        data = await self._stream.receive_some()
        return [(1, bytes(data))] if data else []

    async def aclose(self) -> None:
        await self._stream.aclose()


#: One end of a memory stream pair.
_Attachment = trio.StapledStream[trio.testing.MemorySendStream, trio.testing.MemoryReceiveStream]


class MemoryContainer:
    """One container of a :class:`MemoryBackend`.

    As on Docker (stdin stays open across attaches): the agent outlives an attach. When the host hangs
    up, the agent goes on, and what it says meanwhile is lost; the next attach talks to it again. Only
    :meth:`stop` (kill, remove, or the agent's own crash) ends it."""

    def __init__(self, container_id: str, spec: SandboxSpec, agent: FakeAgent) -> None:
        self.id = container_id
        self.spec = spec
        self.agent = agent
        self.labels = {LABEL_MANAGED_BY: MANAGED_BY, **spec.labels}
        #: "created", "running", "exited" or "removed".
        self.state = "created"
        #: The agent's end of the current attach (None before the first one).
        self._attachment: _Attachment | None = None
        self._attached = trio.Event()
        self._scope = trio.CancelScope()

    def attach(self) -> MemoryAgentStream:
        """A new connection to the agent's stdin and stdout, replacing the current one (which ends)."""
        host_end, agent_end = trio.testing.memory_stream_pair()
        if self._attachment is not None:
            _close(self._attachment)
        self._attachment = agent_end
        self._attached.set()
        self._attached = trio.Event()
        if self.state not in ("created", "running"):
            _close(agent_end)  # attached to a container that has exited: the stream ends at once
        return MemoryAgentStream(host_end)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The agent's life: greet, then answer whoever is attached, until :meth:`stop`. Its timers and
        the core's deadlines run on trio's clock."""
        encoder = protocol.FrameEncoder()
        acted = trio.Event()
        with self._scope:
            self.state = "running"
            task_status.started()
            async with trio.open_nursery() as timers:

                async def act(actions: builtins.list[Action]) -> None:
                    nonlocal acted
                    acted.set()  # the core's next deadline may have moved
                    acted = trio.Event()
                    messages = []
                    for action in actions:
                        if isinstance(action, After):
                            timers.start_soon(fire, action)
                        elif action is not CRASH:
                            messages.append(action)
                    if messages and self._attachment is not None:
                        try:
                            await self._attachment.send_all(encoder.encode_many(messages))
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            pass  # nobody attached: lost, as on Docker
                    if CRASH in actions:
                        self.stop()  # what it had to say is written: the agent exits

                async def fire(after: After) -> None:
                    await trio.sleep(after.seconds)
                    await act(self.agent.timer(after.run_id))

                async def tick() -> None:
                    # A Tick at the core's deadline (a run's timeout, the idle limit), as the
                    # supervisor's epoll wait ends then.
                    ticked = -math.inf
                    while True:
                        deadline = self.agent.next_deadline()
                        if deadline is None or deadline <= ticked:
                            # None, or one the last tick left where it was (the idle limit while a run
                            # outlives it): only something happening can move it.
                            deadline = math.inf
                        with trio.move_on_at(deadline) as waiting:
                            await acted.wait()
                        if waiting.cancelled_caught:
                            ticked = trio.current_time()
                            await act(self.agent.tick())

                await act(self.agent.greet())
                timers.start_soon(tick)
                while True:
                    attachment = self._attachment
                    if attachment is None:
                        await self._attached.wait()
                        continue
                    decoder = protocol.agent_decoder()  # each attach is a stream of its own
                    while True:
                        try:
                            data = await attachment.receive_some()
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            data = b""
                        if not data:
                            break
                        for message in decoder.feed(data):
                            await act(self.agent.receive(message))
                    if attachment is self._attachment:
                        await self._attached.wait()  # the host hung up: the agent waits for the next attach

    def stop(self) -> None:
        """The agent exits: the attached host reads the end of its stream, and its timers stop."""
        if self.state in ("created", "running"):
            self.state = "exited"
        self._scope.cancel()
        if self._attachment is not None:
            _close(self._attachment)


def _close(stream: _Attachment) -> None:
    """Both directions at once (a memory stream closes without waiting): the other end reads EOF."""
    stream.send_stream.close()
    stream.receive_stream.close()


class MemoryBackend:
    """A :class:`~isol8rt.engine.backend.ContainerBackend` whose containers are :class:`FakeAgent`\\ s in
    this process. Make one with :func:`open_memory_backend`, whose nursery runs the agents.

    ``containers`` holds every container made, removed ones too (``state`` says), for tests to look at.
    An attach is one end of a memory stream pair (see :class:`MemoryContainer` for what ends it).
    ``attach`` and ``start`` raise LookupError for a container it does not have (or removed); ``kill``
    and ``remove`` of such a container do nothing, as Docker's backend does."""

    def __init__(self, nursery: trio.Nursery, script: AgentScript | None = None) -> None:
        self.script = script or AgentScript()
        self.containers: dict[str, MemoryContainer] = {}
        self._nursery = nursery
        self._ids = itertools.count(1)

    def running(self) -> builtins.list[str]:
        """Ids of the containers whose agent is up."""
        return [c.id for c in self.containers.values() if c.state == "running"]

    def _get(self, container_id: str) -> MemoryContainer:
        container = self.containers.get(container_id)
        if container is None or container.state == "removed":
            raise LookupError(f"no container {container_id}")
        return container

    async def create(self, spec: SandboxSpec) -> str:
        await trio.lowlevel.checkpoint()
        container_id = f"{next(self._ids):012x}{'0' * 52}"
        self.containers[container_id] = MemoryContainer(container_id, spec, FakeAgent(self.script, container_id,
                                                                                     clock=trio.current_time))
        return container_id

    async def attach(self, container_id: str) -> MemoryAgentStream:
        await trio.lowlevel.checkpoint()
        return self._get(container_id).attach()

    async def start(self, container_id: str) -> None:
        container = self._get(container_id)
        await self._nursery.start(container.serve)

    async def kill(self, container_id: str) -> None:
        await trio.lowlevel.checkpoint()
        container = self.containers.get(container_id)
        if container is not None:
            container.stop()

    async def remove(self, container_id: str) -> None:
        await trio.lowlevel.checkpoint()
        container = self.containers.get(container_id)
        if container is not None:
            container.stop()
            container.state = "removed"

    async def list(self, labels: dict[str, str]) -> builtins.list[str]:
        await trio.lowlevel.checkpoint()
        return [c.id for c in self.containers.values()
                if c.state != "removed" and labels.items() <= c.labels.items()]

    async def find_running(self, labels: dict[str, str | None]) -> builtins.list[tuple[str, dict[str, str]]]:
        await trio.lowlevel.checkpoint()
        return [(c.id, dict(c.labels)) for c in self.containers.values() if c.state == "running"
                and all(name in c.labels and value in (None, c.labels[name]) for name, value in labels.items())]

    async def out_of_memory(self, container_id: str) -> bool:
        await trio.lowlevel.checkpoint()
        return False

    async def find_baked_image(self, runtime: str, packages: builtins.list[str]) -> str | None:
        await trio.lowlevel.checkpoint()
        return None

    async def image_preload(self, image: str) -> builtins.list[str] | None:
        await trio.lowlevel.checkpoint()
        return None

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@contextlib.asynccontextmanager
async def open_memory_backend(script: AgentScript | None = None) -> AsyncIterator[MemoryBackend]:
    """A :class:`MemoryBackend` whose agents run in a nursery of this block; they stop at its end."""
    async with trio.open_nursery() as nursery:
        yield MemoryBackend(nursery, script)
        nursery.cancel_scope.cancel()
