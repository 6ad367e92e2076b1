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

The fake agent's behaviour lives in one place, :meth:`FakeAgent.receive` (host messages in, agent
messages and timers out, no I/O); :class:`MemoryBackend` only carries its bytes.
"""

from __future__ import annotations

import builtins  # annotations after the `list` method below mean the type, not the method
import contextlib
import itertools
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Iterable, Union

import trio
import trio.testing

from .agent import protocol
from .engine.backend import SandboxSpec
from .runtimes import LABEL_MANAGED_BY, MANAGED_BY

__all__ = ["After", "AgentScript", "CRASH", "FakeAgent", "MemoryAgentStream", "MemoryBackend", "RunReply",
           "open_memory_backend"]

#: Everything a real agent's reset can verify; the default script reports all of it.
ALL_CHECKS = ("processes", "tasks", "files", "ipc", "state", "network")


@dataclass(frozen=True)
class RunReply:
    """How a scripted run goes."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0
    #: How long the run takes, on trio's clock (its Exit comes this much later).
    seconds: float = 0.0
    #: Files the run leaves under /sandbox (sent back when the Run asks for them in ``output_paths``).
    files: dict[str, bytes] = field(default_factory=dict)
    #: The run never ends on its own: only a signal ends it (its Exit then reports the signal).
    hang: bool = False
    #: The agent dies instead of running it: the container's stream ends.
    crash: bool = False


def _every_check(agent: FakeAgent) -> Iterable[str]:
    return ALL_CHECKS


@dataclass(frozen=True)
class AgentScript:
    """What a fake agent does: ``run`` says how each Run goes, ``verified`` what each reset reports
    verified (given the agent, whose ``generation`` and ``container_id`` say which reset of which
    container it is), ``version`` the protocol version it greets with."""

    run: Callable[[protocol.Run], RunReply] = lambda run: RunReply()
    verified: Callable[[FakeAgent], Iterable[str]] = _every_check
    version: int = protocol.PROTOCOL_VERSION


@dataclass(frozen=True)
class After:
    """A timer: the driver calls :meth:`FakeAgent.timer` with ``run_id`` after ``seconds``."""

    seconds: float
    run_id: int


class _Crash:
    __slots__ = ()

    def __repr__(self) -> str:
        return "CRASH"


#: The agent exits: its stream ends, and so does its container.
CRASH = _Crash()

#: What the fake agent asks its driver to do: send a message, start a timer, or crash.
Action = Union[protocol.Ready, protocol.Output, protocol.FileData, protocol.Exit, protocol.Done, protocol.Failed,
               After, _Crash]


class FakeAgent:
    """A scripted agent without I/O: :meth:`greet` once, then :meth:`receive` for each host message and
    :meth:`timer` for each timer that fires; each returns the actions to carry out, in order.

    It keeps what a real agent would: the files put into /sandbox, the runs going on, the generation.
    ``received`` is everything the host sent, for tests to look at."""

    def __init__(self, script: AgentScript, container_id: str = "") -> None:
        self.script = script
        self.container_id = container_id
        self.generation = 0
        self.configure: protocol.Configure | None = None
        self.files: dict[str, bytearray] = {}
        #: Runs started and not ended, by id.
        self.running: dict[int, tuple[protocol.Run, RunReply]] = {}
        self.received: list[protocol.HostMessage] = []

    def greet(self) -> list[Action]:
        return [protocol.Ready(version=self.script.version, generation=self.generation)]

    def receive(self, message: protocol.HostMessage) -> list[Action]:
        self.received.append(message)
        match message:
            case protocol.Run():
                return self._start(message)
            case protocol.Signal(id=run_id, signum=signum):
                if self.running.pop(run_id, None) is None:
                    return []  # a run that is over: ignored, as the real agent does
                return [protocol.Exit(id=run_id, exit_code=128 + signum, signal=signum)]
            case protocol.PutFile():
                data = self.files.setdefault(message.path, bytearray())
                if not message.offset:
                    data.clear()  # a file's first chunk truncates it
                data[message.offset:message.offset + len(message.data)] = message.data
                return [protocol.Done(id=message.id)] if message.ack and message.last else []
            case protocol.GetFile(id=op_id, path=path):
                if path not in self.files:
                    return [protocol.Failed(id=op_id, message=f"{path}: no such file", kind="not_found")]
                return [protocol.FileData(id=op_id, path=path, data=bytes(self.files[path])), protocol.Done(id=op_id)]
            case protocol.Configure():
                self.configure = message
                return [protocol.Ready(version=self.script.version, generation=self.generation, reason="configured")]
            case protocol.Reset(id=op_id):
                # As the real agent: runs still going are killed without an Exit, and /sandbox is wiped.
                self.running.clear()
                self.files.clear()
                self.generation += 1
                verified = list(self.script.verified(self))
                return [protocol.Done(id=op_id), protocol.Ready(version=self.script.version, generation=self.generation,
                                                                reason="reset", verified=verified)]
            case protocol.Ping(id=op_id):
                return [protocol.Done(id=op_id)]
            case protocol.Shutdown():
                return [CRASH]
        return []  # Stdin: kept in ``received`` only

    def timer(self, run_id: int) -> list[Action]:
        """A run's time is up: its end, unless a signal ended it first."""
        if run_id not in self.running:
            return []
        return self._finish(run_id)

    def _start(self, run: protocol.Run) -> list[Action]:
        if run.id in self.running:
            return [protocol.Failed(id=run.id, message=f"run {run.id} is already running", kind="busy")]
        reply = self.script.run(run)
        if reply.crash:
            return [CRASH]
        self.running[run.id] = (run, reply)
        if reply.hang:
            return []
        if reply.seconds > 0:
            return [After(reply.seconds, run.id)]
        return self._finish(run.id)

    def _finish(self, run_id: int) -> list[Action]:
        run, reply = self.running.pop(run_id)
        actions: list[Action] = []
        if reply.stdout:
            actions.append(protocol.Output(id=run_id, fd=1, data=reply.stdout))
        if reply.stderr:
            actions.append(protocol.Output(id=run_id, fd=2, data=reply.stderr))
        for path, data in reply.files.items():
            self.files[path] = bytearray(data)
        errors = {}
        for path in run.output_paths:
            if path in self.files:
                actions.append(protocol.FileData(id=run_id, path=path, data=bytes(self.files[path])))
            else:
                errors[path] = f"{path}: no such file"
        actions.append(protocol.Exit(id=run_id, exit_code=reply.exit_code, duration_ms=reply.seconds * 1000,
                                     file_errors=errors))
        return actions


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
        """The agent's life: greet, then answer whoever is attached, until :meth:`stop`."""
        encoder = protocol.FrameEncoder()
        with self._scope:
            self.state = "running"
            task_status.started()
            async with trio.open_nursery() as timers:

                async def act(actions: builtins.list[Action]) -> None:
                    messages = []
                    for action in actions:
                        if isinstance(action, After):
                            timers.start_soon(fire, action)
                        elif action is CRASH:
                            self.stop()
                            return
                        else:
                            messages.append(action)
                    if messages and self._attachment is not None:
                        try:
                            await self._attachment.send_all(encoder.encode_many(messages))
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            pass  # nobody attached: lost, as on Docker

                async def fire(after: After) -> None:
                    await trio.sleep(after.seconds)
                    await act(self.agent.timer(after.run_id))

                await act(self.agent.greet())
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
        self.containers[container_id] = MemoryContainer(container_id, spec, FakeAgent(self.script, container_id))
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
