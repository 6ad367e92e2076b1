"""One sandbox: a container, the agent inside it, and the channel to that agent."""

from __future__ import annotations

import itertools
import os
from typing import AsyncGenerator, Callable, Sequence

import trio

from ..agent import protocol
from ..errors import SandboxError
from .backend import ContainerBackend, SandboxSpec, remove_quietly
from .channel import AgentChannel, ChannelBroken

#: What a reset must verify before a container may serve another run.
RESET_CHECKS = frozenset({"processes", "files", "ipc"})

#: How long a new container may take to report its agent ready (container start is ~250 ms here).
READY_TIMEOUT_S = 30.0

#: Beyond a run's own timeout (enforced by the agent), how long the host waits for the agent to report
#: before it gives the container up as broken.
AGENT_GRACE_S = 5.0

#: How long sending a run's messages (its files included) may take before the container is given up.
SEND_TIMEOUT_S = 120.0

#: How long a session's cell gets to stop on SIGINT before it is killed (and the session's state with it).
SESSION_INTERRUPT_GRACE_S = 2.0

_TERMINAL = (protocol.Exit, protocol.Failed, protocol.Done)


class Sandbox:
    """A started container whose agent is ready.

    A sandbox serves one operation at a time; the pool or the session that holds it makes sure of that.
    """

    def __init__(self, backend: ContainerBackend, spec: SandboxSpec, container_id: str, channel: AgentChannel):
        self.backend = backend
        self.spec = spec
        self.key = spec.pool_key()
        self.container_id = container_id
        self.channel = channel
        self.generation = 0
        #: A reset is under way in the agent; its Ready must arrive before the next run.
        self.resetting = False
        self.uses = 0
        # trio's clock, as the pool's: its age limit then runs under a test's MockClock too.
        self.created = trio.current_time()
        #: When the pool retires it: after this many runs, or this many seconds (the pool sets them).
        self.max_uses = float("inf")
        self.max_age_s = float("inf")
        self.broken = False
        #: The operation whose terminal answer has not arrived yet (what interrupt() ends).
        self.pending_op: int | None = None
        self._ids = itertools.count(1)

    @classmethod
    async def create(cls, backend: ContainerBackend, spec: SandboxSpec,
                     configure: protocol.Configure | None = None) -> Sandbox:
        # Shielded: a create cancelled in flight still makes the container, and then we would never
        # learn its id to remove it. Everything after this point cleans up on cancellation.
        with trio.CancelScope(shield=True):
            container_id = await backend.create(spec)
        try:
            # Attach before start: an attach to a container that has already exited hangs on this daemon.
            stream = await backend.attach(container_id)
            channel = AgentChannel(stream)
            await backend.start(container_id)
            sandbox = cls(backend, spec, container_id, channel)
            with trio.fail_after(READY_TIMEOUT_S):
                ready = await channel.receive()
            if not isinstance(ready, protocol.Ready):
                raise SandboxError(f"the agent in {spec.image} greeted with {type(ready).__name__}, not Ready")
            if ready.version != protocol.PROTOCOL_VERSION:
                raise SandboxError(
                    f"the agent in {spec.image} speaks protocol {ready.version}, this engine "
                    f"{protocol.PROTOCOL_VERSION}: the image is out of date, run `isol8rt setup`"
                )
            if configure is not None:
                await channel.send(configure)
                # Answered once its prestarted interpreters are warm: a run given to it waits for nothing.
                sandbox.resetting = True
                with trio.fail_after(READY_TIMEOUT_S):
                    await sandbox.settle()
            return sandbox
        except trio.TooSlowError:
            await remove_quietly(backend, container_id)
            raise SandboxError(f"the agent in {spec.image} did not start within {READY_TIMEOUT_S:.0f} s") from None
        except ChannelBroken as exc:
            await remove_quietly(backend, container_id)
            raise SandboxError(f"the sandbox from {spec.image} failed to start: {exc}") from None
        except BaseException:
            await remove_quietly(backend, container_id)
            raise

    @classmethod
    async def adopt(cls, backend: ContainerBackend, spec: SandboxSpec, container_id: str) -> Sandbox:
        """Attach to a running container whose agent another process talked to before (a detached session).

        Whatever the agent says before the answer to our Ping was meant for someone else: skipped."""
        stream = await backend.attach(container_id)
        channel = AgentChannel(stream)
        sandbox = cls(backend, spec, container_id, channel)
        # Ids far from any an earlier process used, so none of its stragglers is taken for ours.
        sandbox._ids = itertools.count(1_000_000 + int.from_bytes(os.urandom(3), "big"))
        ping = sandbox.next_id()
        try:
            await channel.send(protocol.Ping(id=ping))
            with trio.fail_after(READY_TIMEOUT_S):
                while True:
                    message = await channel.receive()
                    if isinstance(message, protocol.Done) and message.id == ping:
                        return sandbox
        except (trio.TooSlowError, ChannelBroken) as exc:
            await channel.aclose()
            raise SandboxError(f"the session container {container_id[:12]} does not answer: {exc}") from None

    def next_id(self) -> int:
        return next(self._ids)

    async def begin_reset(self) -> None:
        """Ask the agent to return the container to a never-used state; :meth:`settle` waits for it."""
        op_id = self.next_id()
        try:
            await self.channel.send(protocol.Reset(id=op_id))
        except ChannelBroken as exc:
            self.broken = True
            raise SandboxError(f"container {self.container_id[:12]} cannot be reset: {exc}") from None
        self.resetting = True

    async def settle(self) -> None:
        """Wait until a reset under way has finished and verified; a failed reset breaks the sandbox."""
        if not self.resetting:
            return
        try:
            with trio.fail_after(READY_TIMEOUT_S):
                while True:
                    message = await self.channel.receive()
                    if isinstance(message, protocol.Ready):
                        break
        except (trio.TooSlowError, ChannelBroken) as exc:
            self.broken = True
            raise SandboxError(f"container {self.container_id[:12]} did not come back from its reset: {exc}") from None
        self.resetting = False
        self.generation = message.generation
        if message.reason != "reset":
            return
        required = RESET_CHECKS | ({"network"} if self.spec.network == "filtered" else set())
        missing = required - set(message.verified)
        if missing:
            self.broken = True
            raise SandboxError(f"container {self.container_id[:12]} could not verify its reset: {sorted(missing)}")

    async def operate(self, messages: Sequence[protocol.HostMessage], op_id: int, timeout_s: float | None,
                      on_sent: Callable[[], None] | None = None) -> AsyncGenerator[protocol.AgentMessage, None]:
        """Send ``messages`` (ending with the operation ``op_id``) and yield the agent's answers to it,
        ending with its terminal message (Exit, Done or Failed).

        Not a single cancel scope spans a yield, so the consumer's own cancellation stays its own. If the
        consumer leaves early, the run may still be going on: the sandbox is marked broken and its holder
        must discard (or, for a session, :meth:`interrupt`) it.
        """
        finished = False
        self.pending_op = op_id
        try:
            # Bounded: a container whose agent stopped reading (killed for memory, say) must not hold the
            # caller forever on a full pipe.
            with trio.move_on_after(SEND_TIMEOUT_S) as sending:
                await self.channel.send(*messages)
            if sending.cancelled_caught:
                self.broken = True
                raise SandboxError(await self._failure("stopped taking input"))
            if on_sent is not None:
                on_sent()  # e.g. a RunControl may talk to the run now: the agent has it first
            deadline = trio.current_time() + (timeout_s + AGENT_GRACE_S if timeout_s else float("inf"))
            while True:
                message: protocol.AgentMessage | None = None
                with trio.move_on_at(deadline):
                    message = await self.channel.receive()
                if message is None:
                    self.broken = True
                    raise SandboxError(f"the agent in container {self.container_id[:12]} stopped answering")
                if getattr(message, "id", op_id) != op_id:
                    continue  # a straggler of an operation given up earlier
                finished = isinstance(message, _TERMINAL)
                if finished:
                    self.pending_op = None
                yield message
                if finished:
                    return
        except ChannelBroken as exc:
            self.broken = True
            raise SandboxError(await self._failure(str(exc))) from None
        finally:
            if not finished:
                self.broken = True

    async def _failure(self, what: str) -> str:
        """Why the container failed, in the user's terms: out of memory is the usual cause."""
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            if await self.backend.out_of_memory(self.container_id):
                return (f"the sandbox ran out of memory (its limit is {self.spec.memory_bytes // (1024 * 1024)} MiB, "
                        "which /sandbox's files count against) and its agent was killed; the run's outcome is lost")
        return f"container {self.container_id[:12]} failed: {what}"

    async def interrupt(self, op_id: int, *, gentle: bool = False) -> bool:
        """End a run a consumer walked away from and wait for its end; True when the sandbox survived
        (then it is no longer broken). ``gentle`` tries SIGINT first: in a session's live interpreter a
        KeyboardInterrupt ends the cell and keeps the session's state."""
        signals = (2, 9) if gentle else (9,)
        with trio.CancelScope(shield=True):
            for signum in signals:
                with trio.move_on_after(AGENT_GRACE_S if signum == 9 else SESSION_INTERRUPT_GRACE_S):
                    try:
                        await self.channel.send(protocol.Signal(id=op_id, signum=signum))
                        while True:
                            message = await self.channel.receive()
                            if isinstance(message, _TERMINAL) and getattr(message, "id", None) == op_id:
                                self.broken = False
                                self.pending_op = None
                                return True
                    except ChannelBroken:
                        return False
        return False

    async def discard(self) -> None:
        self.broken = True
        await self.channel.aclose()
        await remove_quietly(self.backend, self.container_id)
