"""RunControl: a run's stdin fed while it runs, and signals delivered to it."""

from __future__ import annotations

import trio

from isol8rt import ExecutionRequest, InvalidRequest, RunControl
from isol8rt.engine.control import parse_signal

import pytest

ECHO = "import sys\nfor line in sys.stdin:\n    print('echo', line.strip(), flush=True)\nprint('eof')"


async def test_stdin_streams_in_while_the_run_goes(engine):
    control = RunControl()
    seen = []
    async for event in engine.execute_stream(ExecutionRequest(code=ECHO, stdin="first\n"), control=control):
        seen.append(event)
        text = "".join(e.data for e in seen if e.type == "stdout")
        if text == "echo first\n":
            await control.write_stdin("second\n")
        elif text == "echo first\necho second\n":
            await control.close_stdin()
    assert "".join(e.data for e in seen if e.type == "stdout") == "echo first\necho second\neof\n"
    assert seen[-1].type == "exit" and seen[-1].data == "0"
    assert await control.write_stdin("late") is False


async def test_signal_reaches_the_run(engine):
    control = RunControl()
    code = "import time\nprint('ready', flush=True)\ntime.sleep(30)"
    events = []
    with trio.fail_after(20):
        async for event in engine.execute_stream(ExecutionRequest(code=code), control=control):
            events.append(event)
            if event.type == "stdout" and "ready" in event.data:
                assert await control.signal("SIGTERM")
    assert events[-1].type == "exit" and events[-1].data == "143"


def test_signal_names_and_numbers():
    assert parse_signal("TERM") == parse_signal("SIGTERM") == parse_signal(15) == 15
    with pytest.raises(InvalidRequest):
        parse_signal("SIGNOPE")
    with pytest.raises(InvalidRequest):
        parse_signal(999)


async def test_stdin_written_at_once_is_not_lost(engine):
    # Regression: the control was usable before the Run reached the agent, which dropped the early stdin.
    control = RunControl()

    async def feed():
        await control.write_stdin("abc\n")
        await control.close_stdin()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed)
        events = [e async for e in engine.execute_stream(ExecutionRequest(code="import sys; print(sys.stdin.read().upper())"), control=control)]
    assert "".join(e.data for e in events if e.type == "stdout") == "ABC\n\n"
