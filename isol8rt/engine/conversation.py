"""The host's side of the conversation with one container's agent: a state machine that does no I/O.

In the manner of h11's ``Connection``. The driver (:mod:`.container`) feeds it what the agent sent
(:meth:`Conversation.receive_data` for the bytes of the agent's stdout, or
:meth:`~Conversation.receive_messages` for messages decoded elsewhere) and reads events back with
:meth:`~Conversation.next_event`; it says what the host means to do (:meth:`~Conversation.configure`,
:meth:`~Conversation.begin`, :meth:`~Conversation.control`, :meth:`~Conversation.give_up`) and gets the
bytes to write. Timeouts, streams and containers are the driver's business; every rule of the protocol is
checked here, so it is tested on messages alone.

The rules (:mod:`isol8rt.agent.protocol` says what each message means):

- The agent speaks first: a Ready (reason "start") of this engine's protocol version.
- Configure is sent at most once, right after that greeting; a Ready ("configured") answers it.
- One operation at a time, each with an id from :meth:`~Conversation.next_id`, used once. An operation
  is sent as one batch: PutFiles without ack (a Run's files, or the first chunks of a file), then the
  message that asks for an answer: Run, GetFile, Ping, Reset, or a PutFile with ack (its last chunk).
- Exactly one terminal message answers each operation: Exit or Failed for a Run; Done or Failed for the
  others. Output comes only for a Run; FileData only for a Run or a GetFile.
- A Reset's Done is followed by a Ready ("reset"); the container is fit for another run only if that
  Ready's ``verified`` holds every check the host requires (the driver says which: a parameter).
- An operation the host gave up on may still be answered; those stragglers are dropped, by id.
- Re-attaching to an agent an earlier host talked to: the first operation is a Ping, and whatever
  arrives before its Done was meant for that earlier host and is dropped; so are, afterwards, messages
  of operations this conversation never began, and Readies that answer nothing of ours.
- Log lines may come at any time; they are passed on as events.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Collection, Final, Iterable, Literal, Sequence, Union

from ..agent import protocol


class LocalProtocolError(Exception):
    """The host asked for something the protocol does not allow now (a bug on the host's side).

    Raised by :meth:`Conversation.configure`, :meth:`~Conversation.begin`, :meth:`~Conversation.control`
    and :meth:`~Conversation.give_up`; the conversation is left as it was."""


class RemoteProtocolError(Exception):
    """The agent broke the protocol, or sent bytes that are not frames.

    Raised by :meth:`Conversation.next_event` (and :meth:`~Conversation.receive_data` for bad frames).
    The conversation is over: every later :meth:`~Conversation.next_event` raises it again, and the
    container is to be given up. The message reads after "the agent ", e.g. "sent Exit for ..."."""


class State(enum.Enum):
    #: Waiting for the agent's first Ready.
    GREETING = "greeting"
    #: Re-attached to a running agent: waiting for the Done of our Ping (and sending nothing else).
    REATTACHING = "reattaching"
    #: Nothing outstanding: the host may begin an operation.
    IDLE = "idle"
    #: One operation's terminal message is owed.
    OPERATING = "operating"
    #: A Ready is owed: for the Configure, or for the Reset whose Done came.
    SETTLING = "settling"
    #: The agent broke the protocol; nothing it says counts any more.
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class AgentReady:
    """The agent's Ready, checked: it greets, or ends a Configure or a Reset."""

    reason: Literal["start", "configured", "reset"]
    generation: int
    #: The required checks the agent did not report verified: after a reset, the container may serve
    #: another run only if this is empty. Always empty for the other reasons.
    unverified: frozenset[str]


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


#: What :meth:`Conversation.next_event` returns once every message received so far has been used.
NEED_DATA: Final = _NeedData()

#: What next_event() returns: the agent's own messages of the operation under way (and Log lines), or a
#: checked Ready.
Event = Union[protocol.Output, protocol.FileData, protocol.Exit, protocol.Done, protocol.Failed, protocol.Log,
              AgentReady]

_Answers = tuple[frozenset[type], frozenset[type]]  # (messages before the terminal one, terminal ones)

#: For each message that opens an operation, the answers it may get.
_ANSWERS: dict[type, _Answers] = {
    protocol.Run: (frozenset({protocol.Output, protocol.FileData}), frozenset({protocol.Exit, protocol.Failed})),
    protocol.GetFile: (frozenset({protocol.FileData}), frozenset({protocol.Done, protocol.Failed})),
    protocol.PutFile: (frozenset(), frozenset({protocol.Done, protocol.Failed})),
    protocol.Ping: (frozenset(), frozenset({protocol.Done, protocol.Failed})),
    protocol.Reset: (frozenset(), frozenset({protocol.Done, protocol.Failed})),
}
_TERMINAL = frozenset({protocol.Exit, protocol.Done, protocol.Failed})


class Conversation:
    """The host's side of one agent's protocol.

    ``required_checks``: what a reset's Ready must report verified for :attr:`AgentReady.unverified` to
    be empty. ``reattach``: the agent was talked to by an earlier host (see the module's rules); then
    ``first_id`` should be far from any id that host used.
    """

    __slots__ = ("required_checks", "reattached", "_state", "_decoder", "_encoder", "_pending", "_next_id",
                 "_first_id", "_last_begun", "_op_id", "_op_kind", "_partial", "_terminal", "_abandoned",
                 "_configured", "_awaiting", "_failure")

    def __init__(self, required_checks: Collection[str] = (), *, reattach: bool = False, first_id: int = 1) -> None:
        self.required_checks = frozenset(required_checks)
        self.reattached = reattach
        self._state = State.REATTACHING if reattach else State.GREETING
        self._decoder = protocol.host_decoder()
        self._encoder = protocol.FrameEncoder()
        self._pending: deque[protocol.AgentMessage] = deque()
        self._next_id = self._first_id = first_id
        self._last_begun = first_id - 1
        #: The operation under way: its id, the type of its opening message, and the answers it may get.
        self._op_id: int | None = None
        self._op_kind: type | None = None
        self._partial: frozenset[type] = frozenset()
        self._terminal: frozenset[type] = frozenset()
        #: The ids of operations given up before their terminal answer.
        self._abandoned: set[int] = set()
        self._configured = False
        #: In SETTLING: the reason the owed Ready must give.
        self._awaiting: str | None = None
        self._failure: RemoteProtocolError | None = None

    # ------------------------------------------------------------------------------------ state

    @property
    def state(self) -> State:
        return self._state

    @property
    def outstanding(self) -> int | None:
        """The id of the operation whose terminal answer is owed (the re-attach Ping included), or None."""
        return self._op_id

    @property
    def awaiting_ready(self) -> bool:
        """Whether a Ready is owed: a Configure was sent, or a Reset, and its Ready has not come yet."""
        return self._state is State.SETTLING or (self._state is State.OPERATING and self._op_kind is protocol.Reset)

    # ------------------------------------------------------------------------------------ host -> agent

    def next_id(self) -> int:
        """A fresh operation id, for the messages of the next :meth:`begin`."""
        op_id = self._next_id
        self._next_id = op_id + 1
        return op_id

    def configure(self, configure: protocol.Configure) -> bytes:
        """The bytes of the one Configure, sent after the greeting and before any operation."""
        if self.reattached:
            raise LocalProtocolError("a re-attached agent was configured by the host that started it")
        if self._configured:
            raise LocalProtocolError("Configure is sent once")
        if self._state is not State.IDLE or self._last_begun >= self._first_id:
            raise LocalProtocolError(f"Configure comes right after the agent's greeting, not while {self._state.value}")
        self._configured = True
        self._state = State.SETTLING
        self._awaiting = "configured"
        return self._encoder.encode(configure)

    def begin(self, messages: Sequence[protocol.HostMessage]) -> bytes:
        """The bytes of one operation: PutFiles without ack, then the message that asks for an answer
        (Run, GetFile, Ping, Reset, or the acknowledged last PutFile), all with one fresh id."""
        if not messages:
            raise LocalProtocolError("an operation has at least one message")
        opening = messages[-1]
        kind = type(opening)
        answers = _ANSWERS.get(kind)
        if answers is None:
            raise LocalProtocolError(f"{kind.__name__} does not begin an operation")
        op_id: int = opening.id  # type: ignore[union-attr]  # every opening message type has an id
        if kind is protocol.PutFile and not (opening.ack and opening.last):  # type: ignore[union-attr]
            raise LocalProtocolError("a PutFile ends an operation only as its acknowledged last chunk")
        for message in messages[:-1]:
            if type(message) is not protocol.PutFile or message.ack:
                raise LocalProtocolError(f"only PutFiles without ack may come before the {kind.__name__}")
            if message.id != op_id:
                raise LocalProtocolError(f"operation {op_id} carries a message of operation {message.id}")
        if not self._last_begun < op_id < self._next_id:
            raise LocalProtocolError(f"id {op_id} was not given by next_id(), or was used already")
        state = self._state
        if state is State.REATTACHING:
            if kind is not protocol.Ping or self._op_id is not None:
                raise LocalProtocolError("a re-attached agent is sent one Ping, then nothing until its Done")
        elif state is not State.IDLE:
            raise LocalProtocolError(f"an operation begins only when nothing is outstanding, not while {state.value}"
                                     + (f" (operation {self._op_id})" if self._op_id is not None else ""))
        else:
            self._state = State.OPERATING
        self._last_begun = op_id
        self._op_id = op_id
        self._op_kind = kind
        self._partial, self._terminal = answers
        if len(messages) == 1:
            return self._encoder.encode(opening)
        return self._encoder.encode_many(list(messages))

    def control(self, message: protocol.Stdin | protocol.Signal) -> bytes:
        """The bytes of stdin or a signal for a run this conversation began. A run that has ended by then
        is no error: the agent ignores it (a caller racing the run's end cannot know)."""
        if type(message) not in (protocol.Stdin, protocol.Signal):
            raise LocalProtocolError(f"{type(message).__name__} is not stdin or a signal")
        if not self._first_id <= message.id <= self._last_begun:
            raise LocalProtocolError(f"operation {message.id} was never begun")
        return self._encoder.encode(message)

    def give_up(self) -> None:
        """Stop waiting for the operation under way: its later answers are dropped (by id), and another
        operation may begin. A Reset cannot be given up: the container's state would be unknown."""
        if self._state is not State.OPERATING:
            raise LocalProtocolError(f"no operation to give up while {self._state.value}")
        if self._op_kind is protocol.Reset:
            raise LocalProtocolError("a Reset cannot be given up; discard the container instead")
        assert self._op_id is not None  # OPERATING has an operation
        self._abandoned.add(self._op_id)
        self._end_operation()

    # ------------------------------------------------------------------------------------ agent -> host

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes of the agent's stdout (frames, split and merged anyhow)."""
        if self._failure is not None:
            raise self._failure
        try:
            self._pending.extend(self._decoder.feed(data))
        except protocol.ProtocolError as exc:
            raise self._fail(f"sent bytes that are not frames: {exc}") from None

    def receive_messages(self, messages: Iterable[protocol.AgentMessage]) -> None:
        """Messages the driver decoded itself (a test, an in-memory agent)."""
        self._pending.extend(messages)

    def next_event(self) -> Event | _NeedData:
        """The next event, or :data:`NEED_DATA`; raises :class:`RemoteProtocolError`."""
        pending = self._pending
        while pending:
            event = self._process(pending.popleft())
            if event is not None:
                return event
        if self._failure is not None:
            raise self._failure
        return NEED_DATA

    def _process(self, message: protocol.AgentMessage) -> Event | None:
        """The event ``message`` makes, or None when it is dropped."""
        state = self._state
        if state is State.CLOSED:
            assert self._failure is not None  # CLOSED is entered by _fail()
            raise self._failure
        kind = type(message)
        if kind is protocol.Log:
            return message  # type: ignore[return-value]  # (a Log, by its type)
        if kind is protocol.Ready:
            return self._on_ready(message)  # type: ignore[arg-type]  # (a Ready, by its type)
        if state is State.GREETING:
            raise self._fail(f"greeted with {kind.__name__}, not Ready")
        op_id = message.id  # type: ignore[union-attr]  # every message but Ready and Log has one
        if op_id == self._op_id:
            if kind in self._partial:
                return message  # type: ignore[return-value]  # an answer of the operation under way
            if kind in self._terminal:
                reset_done = self._op_kind is protocol.Reset and kind is protocol.Done
                self._end_operation()
                if reset_done:  # the Reset's answer; its Ready is owed next
                    self._state = State.SETTLING
                    self._awaiting = "reset"
                return message  # type: ignore[return-value]
            if state is State.REATTACHING:
                return None  # the earlier host's message that happens to carry our id: not an answer
            raise self._fail(f"sent {kind.__name__} for operation {op_id}, a {_name(self._op_kind)}")
        if state is State.REATTACHING:
            return None  # meant for the earlier host
        if op_id in self._abandoned:
            if kind in _TERMINAL:
                self._abandoned.discard(op_id)  # its end: nothing more of it may come
            return None  # a straggler of an operation given up
        if self.reattached and not self._first_id <= op_id < self._next_id:
            return None  # an operation of the earlier host
        raise self._fail(f"sent {kind.__name__} for operation {op_id}, which is not under way")

    def _on_ready(self, ready: protocol.Ready) -> AgentReady | None:
        state = self._state
        if state is State.GREETING:
            if ready.version != protocol.PROTOCOL_VERSION:
                raise self._fail(f"speaks protocol {ready.version}, this engine {protocol.PROTOCOL_VERSION}: "
                                 "the image is out of date, run `isol8rt setup`")
            if ready.reason != "start":
                raise self._fail(f"greeted with Ready ({ready.reason}), not Ready (start)")
            self._state = State.IDLE
            return AgentReady("start", ready.generation, frozenset())
        if state is State.SETTLING and ready.reason == self._awaiting:
            self._state = State.IDLE
            self._awaiting = None
            if ready.reason != "reset":
                return AgentReady(ready.reason, ready.generation, frozenset())
            # The reset killed whatever was still running: nothing given up earlier can answer now.
            self._abandoned.clear()
            return AgentReady("reset", ready.generation, self.required_checks.difference(ready.verified))
        if self.reattached:
            return None  # it answers a Configure or a Reset of the earlier host
        if state is State.SETTLING:
            raise self._fail(f"answered {'Configure' if self._awaiting == 'configured' else 'Reset'} with "
                             f"Ready ({ready.reason})")
        raise self._fail(f"sent Ready ({ready.reason}) while {state.value}, answering nothing")

    def _end_operation(self) -> None:
        self._op_id = self._op_kind = None
        self._partial = self._terminal = frozenset()
        self._state = State.IDLE  # (from REATTACHING too: the Ping's answer ends it)

    def _fail(self, what: str) -> RemoteProtocolError:
        self._state = State.CLOSED
        self._pending.clear()
        self._failure = RemoteProtocolError(what)
        return self._failure

    def __repr__(self) -> str:
        return f"<Conversation {self._state.value} outstanding={self._op_id}>"


def _name(kind: type | None) -> str:
    return kind.__name__ if kind is not None else "nothing"
