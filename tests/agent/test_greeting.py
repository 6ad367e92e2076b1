"""The greeting the entry point sends before it loads anything is the Ready the protocol defines."""

from __future__ import annotations

import pytest

from isol8rt.agent import greeting, protocol


@pytest.mark.parametrize("pid", [0, 1, 7, 127, 128, 255, 256, 65_535, 65_536, 4_194_304, 2**32 - 1, 2**32])
def test_the_greeting_is_the_encoders_ready(pid):
    assert greeting.frame(pid) == protocol.FrameEncoder().encode(protocol.Ready(version=protocol.PROTOCOL_VERSION,
                                                                                 pid=pid))


def test_the_host_reads_it_as_a_start_ready():
    [ready] = protocol.host_decoder().feed(greeting.frame(1))
    assert ready == protocol.Ready(version=protocol.PROTOCOL_VERSION, generation=0, pid=1, reason="start")


def test_a_greeted_core_does_not_greet_again():
    from isol8rt.agent.core import AgentCore

    assert AgentCore({}, pid=1).start(0.0, greeted=True) == []
