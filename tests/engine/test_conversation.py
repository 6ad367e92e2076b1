"""The host's side of the agent protocol, on messages and bytes alone: every rule, every out-of-order
answer and every straggler (no container, no root, no sleep)."""

from __future__ import annotations

import pytest

from isol8rt.agent import protocol
from isol8rt.agent.protocol import Configure, Done, Exit, Failed, FileData, GetFile, Log, Output, Ping, PutFile
from isol8rt.agent.protocol import Ready, Reset, Run, Signal, Stdin
from isol8rt.engine.conversation import (
    NEED_DATA,
    AgentReady,
    Conversation,
    LocalProtocolError,
    RemoteProtocolError,
    State,
)

CHECKS = frozenset({"processes", "files", "ipc"})
START = Ready(version=protocol.PROTOCOL_VERSION)


def events(conversation: Conversation, *messages) -> list:
    """Every event ``messages`` make, in order."""
    conversation.receive_messages(messages)
    out = []
    while (event := conversation.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def greeted(required=CHECKS) -> Conversation:
    conversation = Conversation(required)
    assert events(conversation, START) == [AgentReady("start", 0, frozenset())]
    return conversation


def run(conversation: Conversation, **fields) -> int:
    """Begin a Run; its id."""
    op_id = conversation.next_id()
    conversation.begin([Run(id=op_id, argv=["true"], env={}, **fields)])
    return op_id


def sent(data: bytes) -> list:
    """What the agent decodes from bytes the host sends."""
    return protocol.agent_decoder().feed(data)


# --------------------------------------------------------------------------------------------------
# greeting


def test_the_greeting_arrives_in_bytes_split_anywhere():
    conversation = Conversation(CHECKS)
    assert conversation.state is State.GREETING
    data = protocol.FrameEncoder().encode_many([Log(level="info", message="up"), START])
    seen = []
    for index in range(len(data)):
        conversation.receive_data(data[index:index + 1])
        while (event := conversation.next_event()) is not NEED_DATA:
            seen.append(event)
    assert seen == [Log(level="info", message="up"), AgentReady("start", 0, frozenset())]
    assert conversation.state is State.IDLE


@pytest.mark.parametrize(("first", "error"), [
    (Output(id=1, fd=1, data=b"x"), "greeted with Output, not Ready"),
    (Done(id=1), "greeted with Done, not Ready"),
    (Ready(version=protocol.PROTOCOL_VERSION, reason="reset"), r"greeted with Ready \(reset\), not Ready \(start\)"),
    (Ready(version=protocol.PROTOCOL_VERSION + 1),
     f"speaks protocol {protocol.PROTOCOL_VERSION + 1}, this engine {protocol.PROTOCOL_VERSION}: the image is out of date"),
])
def test_anything_but_a_ready_of_this_version_first_ends_the_conversation(first, error):
    conversation = Conversation(CHECKS)
    conversation.receive_messages([first, START])
    with pytest.raises(RemoteProtocolError, match=error):
        conversation.next_event()
    assert conversation.state is State.CLOSED
    with pytest.raises(RemoteProtocolError, match=error):  # for good: the START after it does not count
        conversation.next_event()


def test_nothing_is_sent_before_the_greeting():
    conversation = Conversation(CHECKS)
    with pytest.raises(LocalProtocolError):
        run(conversation)
    with pytest.raises(LocalProtocolError):
        conversation.configure(Configure())
    assert conversation.state is State.GREETING


def test_bytes_that_are_not_frames():
    conversation = Conversation(CHECKS)
    with pytest.raises(RemoteProtocolError, match="not frames"):
        conversation.receive_data((protocol.MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(RemoteProtocolError, match="not frames"):
        conversation.next_event()


def test_a_frame_in_part_needs_more_data():
    conversation = Conversation(CHECKS)
    data = protocol.FrameEncoder().encode(START)
    conversation.receive_data(data[:-1])
    assert conversation.next_event() is NEED_DATA
    conversation.receive_data(data[-1:])
    assert conversation.next_event() == AgentReady("start", 0, frozenset())
    assert conversation.next_event() is NEED_DATA


# --------------------------------------------------------------------------------------------------
# configure


def test_configure_once_then_its_ready():
    conversation = greeted()
    configure = Configure(idle_timeout_s=5.0)
    assert sent(conversation.configure(configure)) == [configure]
    assert conversation.state is State.SETTLING and conversation.awaiting_ready
    with pytest.raises(LocalProtocolError, match="once"):
        conversation.configure(configure)
    with pytest.raises(LocalProtocolError):
        run(conversation)  # not before its Ready
    ready = Ready(version=protocol.PROTOCOL_VERSION, generation=0, reason="configured")
    assert events(conversation, Log(level="debug", message="warming"), ready) == [
        Log(level="debug", message="warming"), AgentReady("configured", 0, frozenset())]
    assert conversation.state is State.IDLE and not conversation.awaiting_ready
    with pytest.raises(LocalProtocolError, match="once"):
        conversation.configure(configure)


def test_configure_only_before_the_first_operation():
    conversation = greeted()
    op_id = run(conversation)
    events(conversation, Exit(id=op_id, exit_code=0))
    with pytest.raises(LocalProtocolError, match="right after"):
        conversation.configure(Configure())


def test_configure_answered_by_a_reset_ready():
    conversation = greeted()
    conversation.configure(Configure())
    with pytest.raises(RemoteProtocolError, match=r"answered Configure with Ready \(reset\)"):
        events(conversation, Ready(version=protocol.PROTOCOL_VERSION, reason="reset"))


# --------------------------------------------------------------------------------------------------
# operations and their one terminal answer


def test_a_run_and_its_answers():
    conversation = greeted()
    op_id = run(conversation)
    assert conversation.state is State.OPERATING and conversation.outstanding == op_id
    answers = [Output(id=op_id, fd=1, data=b"hi\n"), FileData(id=op_id, path="/sandbox/o", data=b"x"),
               Output(id=op_id, fd=2, data=b"e"), Exit(id=op_id, exit_code=3)]
    assert events(conversation, *answers) == answers
    assert conversation.state is State.IDLE and conversation.outstanding is None


def test_a_run_may_fail_instead():
    conversation = greeted()
    op_id = run(conversation)
    assert events(conversation, Failed(id=op_id, message="busy", kind="busy")) == [
        Failed(id=op_id, message="busy", kind="busy")]
    assert conversation.state is State.IDLE


def test_a_runs_files_go_in_one_batch_before_it():
    conversation = greeted()
    op_id = conversation.next_id()
    batch = [PutFile(id=op_id, path="a", data=b"1", last=False), PutFile(id=op_id, path="a", data=b"2", offset=1),
             Run(id=op_id, argv=["cat", "a"], env={})]
    assert sent(conversation.begin(batch)) == batch
    assert conversation.outstanding == op_id


@pytest.mark.parametrize(("opening", "answers"), [
    (lambda i: GetFile(id=i, path="f"), lambda i: [FileData(id=i, path="f", data=b"ab", last=False),
                                                  FileData(id=i, path="f", data=b"c"), Done(id=i)]),
    (lambda i: GetFile(id=i, path="f"), lambda i: [Failed(id=i, message="no such file", kind="not_found")]),
    (lambda i: PutFile(id=i, path="f", data=b"x", ack=True), lambda i: [Done(id=i)]),
    (lambda i: PutFile(id=i, path="f", data=b"x", ack=True), lambda i: [Failed(id=i, message="full")]),
    (lambda i: Ping(id=i), lambda i: [Done(id=i)]),
])
def test_each_operation_ends_with_its_terminal_answer(opening, answers):
    conversation = greeted()
    op_id = conversation.next_id()
    conversation.begin([opening(op_id)])
    assert events(conversation, *answers(op_id)) == answers(op_id)
    assert conversation.state is State.IDLE and conversation.outstanding is None


@pytest.mark.parametrize(("opening", "answer"), [
    (lambda i: Run(id=i, argv=["x"], env={}), lambda i: Done(id=i)),
    (lambda i: GetFile(id=i, path="f"), lambda i: Exit(id=i, exit_code=0)),
    (lambda i: GetFile(id=i, path="f"), lambda i: Output(id=i, fd=1, data=b"")),
    (lambda i: PutFile(id=i, path="f", data=b"", ack=True), lambda i: FileData(id=i, path="f", data=b"")),
    (lambda i: Ping(id=i), lambda i: Exit(id=i, exit_code=0)),
    (lambda i: Reset(id=i), lambda i: Output(id=i, fd=1, data=b"")),
])
def test_an_answer_of_the_wrong_kind_ends_the_conversation(opening, answer):
    conversation = greeted()
    op_id = conversation.next_id()
    conversation.begin([opening(op_id)])
    with pytest.raises(RemoteProtocolError, match=f"sent {type(answer(op_id)).__name__} for operation {op_id}, a"):
        events(conversation, answer(op_id))
    assert conversation.state is State.CLOSED


@pytest.mark.parametrize("late", [
    lambda i: Exit(id=i, exit_code=0),  # a second terminal answer
    lambda i: Failed(id=i, message="x"),
    lambda i: Output(id=i, fd=1, data=b"late"),  # output after the end
])
def test_exactly_one_terminal_answer(late):
    conversation = greeted()
    op_id = run(conversation)
    with pytest.raises(RemoteProtocolError, match=f"for operation {op_id}, which is not under way"):
        events(conversation, Exit(id=op_id, exit_code=0), late(op_id))


def test_answers_to_operations_never_begun():
    conversation = greeted()
    op_id = run(conversation)
    with pytest.raises(RemoteProtocolError, match=f"Output for operation {op_id + 7}, which is not under way"):
        events(conversation, Output(id=op_id + 7, fd=1, data=b""))
    idle = greeted()
    with pytest.raises(RemoteProtocolError, match="Done for operation 1, which is not under way"):
        events(idle, Done(id=1))


def test_a_ready_that_answers_nothing():
    conversation = greeted()
    with pytest.raises(RemoteProtocolError, match=r"Ready \(reset\) while idle"):
        events(conversation, Ready(version=protocol.PROTOCOL_VERSION, reason="reset"))
    operating = greeted()
    run(operating)
    with pytest.raises(RemoteProtocolError, match=r"Ready \(configured\) while operating"):
        events(operating, Ready(version=protocol.PROTOCOL_VERSION, reason="configured"))


# --------------------------------------------------------------------------------------------------
# what the host may send


def test_one_operation_at_a_time():
    conversation = greeted()
    first = run(conversation)
    with pytest.raises(LocalProtocolError, match=f"operation {first}"):
        run(conversation)
    assert conversation.outstanding == first  # unchanged by the refusal


@pytest.mark.parametrize(("batch", "error"), [
    (lambda i: [], "at least one message"),
    (lambda i: [Stdin(id=i, data=b"x")], "Stdin does not begin an operation"),
    (lambda i: [Configure()], "Configure does not begin an operation"),
    (lambda i: [PutFile(id=i, path="f", data=b"")], "acknowledged last chunk"),
    (lambda i: [PutFile(id=i, path="f", data=b"", ack=True, last=False)], "acknowledged last chunk"),
    (lambda i: [Ping(id=i), Run(id=i, argv=[], env={})], "only PutFiles without ack"),
    (lambda i: [PutFile(id=i, path="f", data=b"", ack=True), Run(id=i, argv=[], env={})], "only PutFiles without ack"),
    (lambda i: [PutFile(id=i + 1, path="f", data=b""), Run(id=i, argv=[], env={})], "carries a message of operation"),
    (lambda i: [Run(id=i + 1, argv=[], env={})], "not given by next_id"),
])
def test_malformed_operations_are_refused(batch, error):
    conversation = greeted()
    op_id = conversation.next_id()
    with pytest.raises(LocalProtocolError, match=error):
        conversation.begin(batch(op_id))
    assert conversation.state is State.IDLE
    conversation.begin([Ping(id=op_id)])  # the id is still good


def test_an_id_serves_once():
    conversation = greeted()
    op_id = run(conversation)
    events(conversation, Exit(id=op_id, exit_code=0))
    with pytest.raises(LocalProtocolError, match="used already"):
        conversation.begin([Ping(id=op_id)])


def test_stdin_and_signals_go_to_runs_begun():
    conversation = greeted()
    op_id = run(conversation)
    assert sent(conversation.control(Stdin(id=op_id, data=b"x", eof=True))) == [Stdin(id=op_id, data=b"x", eof=True)]
    events(conversation, Exit(id=op_id, exit_code=0))
    # Racing the run's end is no error: the agent ignores a signal for a run that is over.
    assert sent(conversation.control(Signal(id=op_id, signum=9))) == [Signal(id=op_id, signum=9)]
    with pytest.raises(LocalProtocolError, match="never begun"):
        conversation.control(Signal(id=op_id + 1, signum=9))
    with pytest.raises(LocalProtocolError, match="not stdin or a signal"):
        conversation.control(Ping(id=op_id))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# reset: Done, then Ready with what it verified


def test_reset_done_then_a_verified_ready():
    conversation = greeted()
    op_id = conversation.next_id()
    assert sent(conversation.begin([Reset(id=op_id)])) == [Reset(id=op_id)]
    assert conversation.awaiting_ready
    assert events(conversation, Done(id=op_id, detail={"files_removed": 2})) == [
        Done(id=op_id, detail={"files_removed": 2})]
    assert conversation.state is State.SETTLING and conversation.awaiting_ready and conversation.outstanding is None
    with pytest.raises(LocalProtocolError):
        run(conversation)  # the next run waits for the Ready
    ready = Ready(version=protocol.PROTOCOL_VERSION, generation=4, reason="reset", verified=sorted(CHECKS))
    assert events(conversation, ready) == [AgentReady("reset", 4, frozenset())]
    assert conversation.state is State.IDLE and not conversation.awaiting_ready


@pytest.mark.parametrize(("required", "verified", "unverified"), [
    (CHECKS, ["processes", "files"], {"ipc"}),
    (CHECKS, [], CHECKS),
    (CHECKS | {"network"}, sorted(CHECKS), {"network"}),
    (CHECKS | {"tasks", "state"}, sorted(CHECKS) + ["tasks"], {"state"}),  # whatever the host requires
    (frozenset(), [], set()),
    (CHECKS, sorted(CHECKS) + ["extra"], set()),  # more than required is fine
])
def test_the_verdict_is_the_required_checks_not_verified(required, verified, unverified):
    conversation = greeted(required)
    op_id = conversation.next_id()
    conversation.begin([Reset(id=op_id)])
    ready = Ready(version=protocol.PROTOCOL_VERSION, generation=1, reason="reset", verified=verified)
    assert events(conversation, Done(id=op_id), ready)[-1] == AgentReady("reset", 1, frozenset(unverified))


def test_a_reset_ready_before_its_done():
    conversation = greeted()
    op_id = conversation.next_id()
    conversation.begin([Reset(id=op_id)])
    with pytest.raises(RemoteProtocolError, match=r"Ready \(reset\) while operating"):
        events(conversation, Ready(version=protocol.PROTOCOL_VERSION, reason="reset"), Done(id=op_id))


def test_a_reset_answered_with_configured():
    conversation = greeted()
    op_id = conversation.next_id()
    conversation.begin([Reset(id=op_id)])
    with pytest.raises(RemoteProtocolError, match=r"answered Reset with Ready \(configured\)"):
        events(conversation, Done(id=op_id), Ready(version=protocol.PROTOCOL_VERSION, reason="configured"))


def test_a_failed_reset_owes_no_ready():
    conversation = greeted()
    op_id = conversation.next_id()
    conversation.begin([Reset(id=op_id)])
    assert events(conversation, Failed(id=op_id, message="no")) == [Failed(id=op_id, message="no")]
    assert conversation.state is State.IDLE and not conversation.awaiting_ready
    with pytest.raises(RemoteProtocolError, match="answering nothing"):
        events(conversation, Ready(version=protocol.PROTOCOL_VERSION, reason="reset"))


# --------------------------------------------------------------------------------------------------
# operations given up: their stragglers are dropped by id


def test_stragglers_of_a_run_given_up_are_dropped():
    conversation = greeted()
    old = run(conversation)
    events(conversation, Output(id=old, fd=1, data=b"before"))
    conversation.give_up()
    assert conversation.state is State.IDLE and conversation.outstanding is None
    new = conversation.next_id()
    conversation.begin([GetFile(id=new, path="f")])
    mixed = [Output(id=old, fd=1, data=b"late"), FileData(id=new, path="f", data=b"x"),
             Exit(id=old, exit_code=137), Done(id=new)]
    assert events(conversation, *mixed) == [FileData(id=new, path="f", data=b"x"), Done(id=new)]
    # Its terminal answer came: the old operation is over, and anything more of it breaks the rules.
    with pytest.raises(RemoteProtocolError, match=f"operation {old}, which is not under way"):
        events(conversation, Output(id=old, fd=1, data=b"after the end"))


def test_stragglers_are_dropped_while_a_reset_settles_and_not_after():
    conversation = greeted()
    old = run(conversation)
    conversation.give_up()
    reset = conversation.next_id()
    conversation.begin([Reset(id=reset)])
    ready = Ready(version=protocol.PROTOCOL_VERSION, generation=1, reason="reset", verified=sorted(CHECKS))
    assert events(conversation, Output(id=old, fd=1, data=b"x"), Done(id=reset),
                  Output(id=old, fd=2, data=b"y"), ready) == [Done(id=reset), AgentReady("reset", 1, frozenset())]
    # The reset killed the run without an Exit: nothing of it can come any more.
    with pytest.raises(RemoteProtocolError, match=f"operation {old}"):
        events(conversation, Exit(id=old, exit_code=0))


def test_give_up_needs_an_operation_and_never_a_reset():
    conversation = greeted()
    with pytest.raises(LocalProtocolError, match="no operation"):
        conversation.give_up()
    op_id = conversation.next_id()
    conversation.begin([Reset(id=op_id)])
    with pytest.raises(LocalProtocolError, match="Reset cannot be given up"):
        conversation.give_up()


# --------------------------------------------------------------------------------------------------
# re-attaching: Ping, and skip until its Done


def reattached() -> Conversation:
    return Conversation(CHECKS, reattach=True, first_id=1_000_000)


def test_reattach_skips_everything_before_the_pings_done():
    conversation = reattached()
    assert conversation.state is State.REATTACHING
    with pytest.raises(LocalProtocolError, match="one Ping"):
        run(conversation)
    ping = conversation.next_id()
    assert ping > 1_000_000  # from first_id on
    conversation.begin([Ping(id=ping)])
    with pytest.raises(LocalProtocolError, match="one Ping"):
        conversation.begin([Ping(id=conversation.next_id())])
    earlier = [START, Output(id=7, fd=1, data=b"for the earlier host"), Exit(id=7, exit_code=0),
               Ready(version=protocol.PROTOCOL_VERSION, reason="reset"), Done(id=8),
               Output(id=ping, fd=1, data=b"an earlier operation with our id")]
    assert events(conversation, *earlier, Done(id=ping)) == [Done(id=ping)]
    assert conversation.state is State.IDLE


def test_after_reattaching_the_earlier_hosts_messages_are_dropped_and_ours_checked():
    conversation = reattached()
    ping = conversation.next_id()
    conversation.begin([Ping(id=ping)])
    events(conversation, Done(id=ping))
    op_id = run(conversation)
    late = [Output(id=7, fd=1, data=b"x"), Exit(id=7, exit_code=0),
            Ready(version=protocol.PROTOCOL_VERSION, reason="reset")]  # a Ready its reset still owed
    assert events(conversation, *late, Exit(id=op_id, exit_code=0)) == [Exit(id=op_id, exit_code=0)]
    with pytest.raises(RemoteProtocolError, match=f"operation {op_id}, which is not under way"):
        events(conversation, Exit(id=op_id, exit_code=0))


def test_a_reattached_agent_is_not_configured_again():
    conversation = reattached()
    with pytest.raises(LocalProtocolError, match="re-attached"):
        conversation.configure(Configure())


# --------------------------------------------------------------------------------------------------
# the end


def test_after_a_violation_nothing_more_is_read_or_begun():
    conversation = greeted()
    op_id = run(conversation)
    conversation.receive_messages([Done(id=op_id), Exit(id=op_id, exit_code=0)])
    with pytest.raises(RemoteProtocolError) as first:
        conversation.next_event()
    conversation.receive_messages([Log(level="info", message="x")])
    with pytest.raises(RemoteProtocolError) as again:
        conversation.next_event()
    assert again.value is first.value
    with pytest.raises(RemoteProtocolError):
        conversation.receive_data(b"")
    with pytest.raises(LocalProtocolError, match="closed"):
        conversation.begin([Ping(id=conversation.next_id())])
