"""The demuxer of Docker's multiplexed stdout/stderr stream, on hand-made and recorded bytes."""

from __future__ import annotations

import itertools
import random
import struct

import pytest

from isol8rt.docker import STDERR, STDOUT, DockerError, FrameDemuxer
from isol8rt.docker._api import UPGRADE_TCP
from isol8rt.wire.http_client import NEED_DATA, ClientConnection, Upgraded


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(payload)) + payload


def per_stream(pairs: list[tuple[int, bytes]]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for stream, payload in pairs:
        out[stream] = out.get(stream, b"") + payload
    return out


def feed_in_pieces(data: bytes, cuts: list[int]) -> list[tuple[int, bytes]]:
    demuxer = FrameDemuxer()
    pairs = []
    bounds = [0, *sorted(cuts), len(data)]
    for start, stop in itertools.pairwise(bounds):
        pairs += demuxer.feed(data[start:stop])
    assert not demuxer.mid_frame
    return pairs


def raw_stream_of(recording) -> bytes:
    """The bytes after the 101 head of a recorded attach or exec."""
    http = ClientConnection(b"docker")
    http.request("POST", "/x", headers=UPGRADE_TCP)
    http.receive_data(recording.response)
    event = http.next_event()
    assert isinstance(event, Upgraded)
    return event.trailing


def test_one_frame_in_one_feed():
    assert FrameDemuxer().feed(frame(STDOUT, b"hello\n")) == [(STDOUT, b"hello\n")]


def test_adjacent_frames_of_one_stream_are_joined_and_stream_switches_kept_in_order():
    data = frame(1, b"a") + frame(1, b"b") + frame(2, b"E") + frame(1, b"c") + frame(1, b"d")
    assert FrameDemuxer().feed(data) == [(1, b"ab"), (2, b"E"), (1, b"cd")]


def test_empty_frames_produce_nothing():
    assert FrameDemuxer().feed(frame(1, b"") + frame(2, b"x") + frame(2, b"")) == [(2, b"x")]


def test_a_header_split_across_feeds_waits_for_its_rest():
    demuxer = FrameDemuxer()
    data = frame(STDERR, b"oops")
    assert demuxer.feed(data[:3]) == []
    assert demuxer.mid_frame
    assert demuxer.feed(data[3:7]) == []
    assert demuxer.feed(data[7:10]) == [(STDERR, b"oo")]
    assert demuxer.feed(data[10:]) == [(STDERR, b"ps")]
    assert not demuxer.mid_frame


def test_every_single_cut_gives_the_same_streams():
    data = frame(1, b"out one\n") + frame(2, b"err\n") + frame(1, b"out two\n")
    whole = per_stream(FrameDemuxer().feed(data))
    assert whole == {1: b"out one\nout two\n", 2: b"err\n"}
    for cut in range(1, len(data)):
        assert per_stream(feed_in_pieces(data, [cut])) == whole, cut


def test_random_cuts_of_many_frames():
    rng = random.Random(1234)
    frames = [(rng.choice((1, 2)), rng.randbytes(rng.randrange(0, 300))) for _ in range(200)]
    data = b"".join(frame(stream, payload) for stream, payload in frames)
    expected = per_stream(frames)
    for _ in range(50):
        cuts = rng.sample(range(1, len(data)), rng.randrange(1, 60))
        assert per_stream(feed_in_pieces(data, cuts)) == expected


def test_byte_at_a_time():
    data = frame(1, b"abc") + frame(2, b"de")
    assert per_stream(feed_in_pieces(data, list(range(1, len(data))))) == {1: b"abc", 2: b"de"}


def test_a_raw_tty_stream_is_refused_instead_of_waited_on():
    with pytest.raises(DockerError, match="Tty"):
        FrameDemuxer().feed(b"root@3f2a:/# ls\r\n")


def test_recorded_exec_whose_frames_came_with_the_101(recording):
    rec = recording("exec_101_merged")
    # The fixture is what it claims: a single read from the daemon held the head and both frames.
    assert len(rec.reads) == 1 and rec.reads[0].startswith(b"HTTP/1.1 101")
    pairs = FrameDemuxer().feed(raw_stream_of(rec))
    assert per_stream(pairs) == {1: b"out\n", 2: b"err\n"}


def test_recorded_frame_split_across_reads(recording):
    rec = recording("exec_split_frames")
    http = ClientConnection(b"docker")
    http.request("POST", "/x", headers=UPGRADE_TCP)
    demuxer = FrameDemuxer()
    pairs = []
    upgraded = None
    for read in rec.reads:
        if upgraded is None:
            http.receive_data(read)
            event = http.next_event()
            if event is NEED_DATA:
                continue
            upgraded = event
            pairs += demuxer.feed(upgraded.trailing)
        else:
            # The 3000-byte frame spans three reads of 1000: each read hands out the part it carries.
            got = demuxer.feed(read)
            assert got and all(payload for _, payload in got)
            pairs += got
    assert per_stream(pairs) == {1: b"a" * 3000 + b"\n", 2: b"bye\n"}
    assert not demuxer.mid_frame


def test_recorded_attach_to_a_running_container(recording):
    rec = recording("attach_101_merged")
    demuxer = FrameDemuxer()
    streams = per_stream(demuxer.feed(raw_stream_of(rec)))
    assert not demuxer.mid_frame
    stdout_lines = streams[STDOUT].decode().splitlines()
    stderr_lines = streams[STDERR].decode().splitlines()
    assert stdout_lines and all(line.startswith("tick ") for line in stdout_lines)
    assert stderr_lines and all(line.startswith("tock ") for line in stderr_lines)
    # Each stream's own order is kept, even though the two interleave freely.
    for lines in (stdout_lines, stderr_lines):
        numbers = [int(line.split()[1]) for line in lines]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
