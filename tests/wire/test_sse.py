"""Server-sent events, sans-io: frames the server writes, split back into data by the client's parser."""

from __future__ import annotations

from isol8rt.wire import sse


def test_sse_frames_round_trip_through_the_parser():
    parser = sse.EventParser()
    stream = sse.frame(b'{"a":1}') + b": comment\n\n" + sse.frame(b'{"b":2}') + b"data: x\ndata: y\n\n"
    events = []
    for i in range(0, len(stream), 3):
        events += parser.feed(stream[i:i + 3])
    assert events == [b'{"a":1}', b'{"b":2}', b"x\ny"]
