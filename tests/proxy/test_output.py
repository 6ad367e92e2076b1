"""The stdout writer, in-process: order kept, a stalled reader never blocks emit(), overflow counted."""

from __future__ import annotations

import json

import trio
import trio.testing

from isol8rt.agent.proxy_protocol import Error, PolicyOk, ResetOk
from isol8rt_proxy.output import Output


def lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines()]


async def test_lines_in_order_and_flushed_on_close():
    send, receive = trio.testing.memory_stream_one_way_pair()
    output = Output(send)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(output.run)
        output.emit(PolicyOk(run="a"))
        output.emit(ResetOk())
        output.close()
        output.emit(ResetOk())  # after close: dropped
    assert lines(await receive.receive_some()) == [{"type": "policy_ok", "run": "a"}, {"type": "reset_ok"}]


async def test_stalled_reader_overflow_is_counted():
    send, receive = trio.testing.lockstep_stream_pair()  # every send waits for its reader
    output = Output(send, limit=200)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(output.run)
        for i in range(100):  # nobody reads: emit() must neither block nor grow without bound
            output.emit(Error(message=f"line {i}"))
        await trio.testing.wait_all_tasks_blocked()
        output.close()
        received = b""
        while chunk := await receive.receive_some():
            received += chunk
            if received.endswith(b'dropped: stdout not read"}\n'):
                break
    records = lines(received)
    kept = [record["message"] for record in records[:-1]]
    assert kept == [f"line {i}" for i in range(len(kept))] and 0 < len(kept) < 100
    assert records[-1] == {"type": "error", "message": f"{100 - len(kept)} lines dropped: stdout not read"}
