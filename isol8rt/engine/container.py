"""One container: a started sandbox container, the agent inside it, and the conversation with that agent.

:class:`Container` is the trio driver of :class:`~.conversation.Conversation`: it carries bytes between the
conversation and the container's stream (:class:`~.channel.AgentChannel`) and owns every timeout. The
protocol's rules (what may be sent when, which answers count, what a reset must verify) are the
conversation's, which is tested on messages alone.
"""

from __future__ import annotations

import logging
import os
from typing import AsyncGenerator, Callable, Sequence

import trio

from ..agent import protocol
from ..errors import SandboxError
from .backend import ContainerBackend, SandboxSpec, remove_quietly
from .channel import AgentChannel, ChannelBroken
from .conversation import NEED_DATA, AgentReady, Conversation, Event, RemoteProtocolError, State

log = logging.getLogger("isol8rt.agent")

#: What a reset must verify before a container may serve another run (see protocol.Ready.verified): no
#: sandbox-user task alive, and the pids cgroup agreeing; the emptied directories empty and as they were
#: at start; no SysV IPC; no socket left, in flight or bound. Plus "network" with filtered networking: see
#: :func:`required_checks`.
RESET_CHECKS = frozenset({"processes", "tasks", "files", "ipc", "state"})

#: How long a new container may take to report its agent ready (container start is ~250 ms here).
READY_TIMEOUT_S = 30.0

#: Beyond a run's own timeout (enforced by the agent), how long the host waits for the agent to report
#: before it gives the container up as broken.
AGENT_GRACE_S = 5.0

#: How long sending a run's messages (its files included) may take before the container is given up.
SEND_TIMEOUT_S = 120.0

#: How long a session's cell gets to stop on SIGINT before it is killed (and the session's state with it).
SESSION_INTERRUPT_GRACE_S = 2.0

#: The ways the agent can fail us mid-conversation: its stream broke, or it broke the protocol.
_AGENT_FAILED = (ChannelBroken, RemoteProtocolError)


def required_checks(spec: SandboxSpec) -> frozenset[str]:
    """What a reset of a container made from ``spec`` must verify before it serves another run."""
    return (RESET_CHECKS | {"network"}) if spec.network == "filtered" else RESET_CHECKS


def _what_failed(exc: BaseException) -> str:
    if isinstance(exc, RemoteProtocolError):
        return f"the agent broke the protocol: {exc}"
    return str(exc)


class Container:
    """A started container whose agent is ready.

    A container serves one operation at a time; the pool or the session that holds it makes sure of that.
    """

    def __init__(self, backend: ContainerBackend, spec: SandboxSpec, container_id: str, channel: AgentChannel,
                 conversation: Conversation) -> None:
        self.backend = backend
        self.spec = spec
        self.key = spec.pool_key()
        self.container_id = container_id
        self.channel = channel
        self.conversation = conversation
        self.generation = 0
        self.uses = 0
        #: Whose code it has run (see pool.py): it serves no other tenant. None is the library's tenant.
        self.tenant: str | None = None
        # trio's clock, as the pool's: its age limit then runs under a test's MockClock too.
        self.created = trio.current_time()
        #: When the pool retires it: after this many runs, or this many seconds (the pool sets them).
        self.max_uses = float("inf")
        self.max_age_s = float("inf")
        self.broken = False

    @property
    def pending_op(self) -> int | None:
        """The operation whose terminal answer has not arrived yet (what interrupt() ends)."""
        return self.conversation.outstanding

    @classmethod
    async def create(cls, backend: ContainerBackend, spec: SandboxSpec,
                     configure: protocol.Configure | None = None) -> Container:
        # Shielded: a create cancelled in flight still makes the container, and then we would never
        # learn its id to remove it. Everything after this point cleans up on cancellation.
        with trio.CancelScope(shield=True):
            container_id = await backend.create(spec)
        try:
            # Attach before start: an attach to a container that has already exited hangs on this daemon.
            stream = await backend.attach(container_id)
            channel = AgentChannel(stream)
            await backend.start(container_id)
            container = cls(backend, spec, container_id, channel, Conversation(required_checks(spec)))
            with trio.fail_after(READY_TIMEOUT_S):
                await container._receive()  # the greeting: the conversation checks it is our version's Ready
            if configure is not None:
                await channel.send(container.conversation.configure(configure))
                # Answered once its prestarted interpreters are warm: a run given to it waits for nothing.
                with trio.fail_after(READY_TIMEOUT_S):
                    await container.settle()
            return container
        except trio.TooSlowError:
            await remove_quietly(backend, container_id)
            raise SandboxError(f"the agent in {spec.image} did not start within {READY_TIMEOUT_S:.0f} s") from None
        except ChannelBroken as exc:
            await remove_quietly(backend, container_id)
            raise SandboxError(f"the sandbox from {spec.image} failed to start: {exc}") from None
        except RemoteProtocolError as exc:
            await remove_quietly(backend, container_id)
            raise SandboxError(f"the agent in {spec.image} {exc}") from None
        except BaseException:
            await remove_quietly(backend, container_id)
            raise

    @classmethod
    async def adopt(cls, backend: ContainerBackend, spec: SandboxSpec, container_id: str) -> Container:
        """Attach to a running container whose agent another process talked to before (a detached session).

        Whatever the agent says before the answer to our Ping was meant for someone else: the
        conversation drops it."""
        stream = await backend.attach(container_id)
        channel = AgentChannel(stream)
        # Ids far from any an earlier process used, so none of its stragglers is taken for ours.
        conversation = Conversation(required_checks(spec), reattach=True,
                                    first_id=1_000_000 + int.from_bytes(os.urandom(3), "big"))
        container = cls(backend, spec, container_id, channel, conversation)
        try:
            await channel.send(conversation.begin([protocol.Ping(id=container.next_id())]))
            with trio.fail_after(READY_TIMEOUT_S):
                while conversation.outstanding is not None:
                    await container._receive()
            return container
        except (trio.TooSlowError, *_AGENT_FAILED) as exc:
            await channel.aclose()
            raise SandboxError(f"the session container {container_id[:12]} does not answer: "
                               f"{_what_failed(exc)}") from None

    def next_id(self) -> int:
        return self.conversation.next_id()

    async def _receive(self) -> Event:
        """The conversation's next event (the agent's Log lines are logged here, not returned).

        Raises ChannelBroken, or RemoteProtocolError (then the stream is closed: nothing the agent says
        counts any more)."""
        conversation = self.conversation
        try:
            while True:
                event = conversation.next_event()
                if event is NEED_DATA:
                    conversation.receive_data(await self.channel.receive())
                elif type(event) is protocol.Log:
                    log.log(logging.getLevelName(event.level.upper()), "%s", event.message)
                else:
                    return event  # type: ignore[return-value]  # NEED_DATA was handled above
        except RemoteProtocolError:
            await self.channel.aclose()
            raise

    async def begin_reset(self) -> None:
        """Ask the agent to return the container to a never-used state; :meth:`settle` waits for it."""
        data = self.conversation.begin([protocol.Reset(id=self.next_id())])
        try:
            await self.channel.send(data)
        except ChannelBroken as exc:
            self.broken = True
            raise SandboxError(f"container {self.container_id[:12]} cannot be reset: {exc}") from None

    async def settle(self) -> None:
        """Wait until a Configure's or a reset's Ready has come; a reset that failed or did not verify
        every required check breaks the container."""
        if not self.conversation.awaiting_ready:
            return
        try:
            with trio.fail_after(READY_TIMEOUT_S):
                while True:
                    event = await self._receive()
                    if type(event) is AgentReady:
                        break
                    if type(event) is protocol.Failed:
                        self.broken = True
                        raise SandboxError(f"container {self.container_id[:12]} could not reset: {event.message}")
                    # else the reset's Done: its Ready follows
        except (trio.TooSlowError, *_AGENT_FAILED) as exc:
            self.broken = True
            raise SandboxError(f"container {self.container_id[:12]} did not come back from its reset: "
                               f"{_what_failed(exc)}") from None
        self.generation = event.generation
        if event.unverified:
            self.broken = True
            raise SandboxError(f"container {self.container_id[:12]} could not verify its reset: "
                               f"{sorted(event.unverified)}")

    async def operate(self, messages: Sequence[protocol.HostMessage], op_id: int, timeout_s: float | None,
                      on_sent: Callable[[], None] | None = None) -> AsyncGenerator[Event, None]:
        """Send ``messages`` (one operation, whose id is ``op_id``) and yield the agent's answers to it,
        ending with its terminal message (Exit, Done or Failed).

        Not a single cancel scope spans a yield, so the consumer's own cancellation stays its own. If the
        consumer leaves early, the run may still be going on: the container is marked broken and its holder
        must discard (or, for a session, :meth:`interrupt`) it.
        """
        conversation = self.conversation
        if conversation.state is State.CLOSED:
            self.broken = True
            raise SandboxError(await self._failure("its agent broke the protocol earlier"))
        if conversation.outstanding is not None:
            # An operation walked away from earlier that never ended (its interrupt failed): whatever it
            # still says is dropped from now on.
            conversation.give_up()
        data = conversation.begin(messages)
        finished = False
        try:
            # Bounded: a container whose agent stopped reading (killed for memory, say) must not hold the
            # caller forever on a full pipe.
            with trio.move_on_after(SEND_TIMEOUT_S) as sending:
                await self.channel.send(data)
            if sending.cancelled_caught:
                self.broken = True
                raise SandboxError(await self._failure("stopped taking input"))
            if on_sent is not None:
                on_sent()  # e.g. a RunControl may talk to the run now: the agent has it first
            deadline = trio.current_time() + (timeout_s + AGENT_GRACE_S if timeout_s else float("inf"))
            while True:
                event: Event | None = None
                with trio.move_on_at(deadline):
                    event = await self._receive()
                if event is None:
                    self.broken = True
                    raise SandboxError(f"the agent in container {self.container_id[:12]} stopped answering")
                finished = conversation.outstanding is None
                yield event
                if finished:
                    return
        except _AGENT_FAILED as exc:
            self.broken = True
            raise SandboxError(await self._failure(_what_failed(exc))) from None
        finally:
            if not finished:
                self.broken = True

    async def control(self, message: protocol.Stdin | protocol.Signal) -> None:
        """Send stdin or a signal to a run of this container; ChannelBroken when the agent cannot be reached."""
        await self.channel.send(self.conversation.control(message))

    async def _failure(self, what: str) -> str:
        """Why the container failed, in the user's terms: out of memory is the usual cause."""
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            if await self.backend.out_of_memory(self.container_id):
                return (f"the sandbox ran out of memory (its limit is {self.spec.memory_bytes // (1024 * 1024)} MiB, "
                        "which /sandbox's files count against) and its agent was killed; the run's outcome is lost")
        return f"container {self.container_id[:12]} failed: {what}"

    async def interrupt(self, op_id: int, *, gentle: bool = False) -> bool:
        """End a run a consumer walked away from and wait for its end; True when the container survived
        (then it is no longer broken). ``gentle`` tries SIGINT first: in a session's live interpreter a
        KeyboardInterrupt ends the cell and keeps the session's state."""
        signals = (2, 9) if gentle else (9,)
        conversation = self.conversation
        with trio.CancelScope(shield=True):
            for signum in signals:
                with trio.move_on_after(AGENT_GRACE_S if signum == 9 else SESSION_INTERRUPT_GRACE_S):
                    try:
                        await self.control(protocol.Signal(id=op_id, signum=signum))
                        while conversation.outstanding == op_id:
                            await self._receive()  # the run's last output, then its end
                        self.broken = False
                        return True
                    except _AGENT_FAILED:
                        return False
        return False

    async def discard(self) -> None:
        self.broken = True
        await self.channel.aclose()
        await remove_quietly(self.backend, self.container_id)
