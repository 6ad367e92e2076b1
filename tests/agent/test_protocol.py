"""The agent wire protocol, sans-io: frames rebuilt from byte streams split anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from isol8rt.agent import protocol
from isol8rt.agent.protocol import Exit, FileData, Output, Ready, Run

# What a real agent sent for `print('hi')` (Ready, Output, Exit), recorded from its stdout.
RECORDED = (Path(__file__).parent / "recordings" / "hello.bin").read_bytes()


def test_round_trip_every_split_point():
    for split in range(len(RECORDED) + 1):
        decoder = protocol.host_decoder()
        messages = decoder.feed(RECORDED[:split]) + decoder.feed(RECORDED[split:])
        assert [type(m) for m in messages] == [Ready, Output, Exit]
        assert messages[1].data == b"hi\n"
        assert decoder.buffered == 0


def test_byte_at_a_time():
    decoder = protocol.host_decoder()
    messages = []
    for byte in RECORDED:
        messages += decoder.feed(bytes([byte]))
    assert [type(m) for m in messages] == [Ready, Output, Exit]
    assert messages[2].exit_code == 0 and messages[2].usage.peak_memory_kb > 0


def test_oversized_frame_is_refused_before_buffering_it():
    decoder = protocol.agent_decoder()
    with pytest.raises(protocol.ProtocolError, match="exceeds"):
        decoder.feed((protocol.MAX_FRAME + 1).to_bytes(4, "big"))


def test_garbage_payload_is_a_protocol_error():
    decoder = protocol.agent_decoder()
    with pytest.raises(protocol.ProtocolError, match="undecodable"):
        decoder.feed(b"\x00\x00\x00\x03abc")


def test_direction_is_checked():
    # A message only the agent sends is not accepted from the host.
    frame = protocol.FrameEncoder().encode(Ready(version=1))
    with pytest.raises(protocol.ProtocolError):
        protocol.agent_decoder().feed(frame)


def test_defaults_are_omitted_on_the_wire():
    small = protocol.FrameEncoder().encode(Run(id=1, argv=["true"], env={}))
    assert b"timeout_ms" not in small and b"max_output" not in small
    (decoded,) = protocol.agent_decoder().feed(small)
    assert decoded.timeout_ms == 30_000


def test_chunks_cover_data_exactly():
    data = bytes(range(256)) * 10
    parts = list(protocol.chunks(data, size=1000))
    assert b"".join(chunk for _, chunk, _ in parts) == data
    assert [offset for offset, _, _ in parts] == [0, 1000, 2000]
    assert [last for _, _, last in parts] == [False, False, True]
    assert list(protocol.chunks(b"")) == [(0, b"", True)]


def test_file_data_is_binary_safe():
    data = bytes(range(256))
    frame = protocol.FrameEncoder().encode(FileData(id=3, path="x", data=data))
    (decoded,) = protocol.host_decoder().feed(frame)
    assert decoded.data == data
