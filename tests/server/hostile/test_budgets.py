"""Each budget on its own, against a real server on loopback (real containers where a run is involved):
what a client that breaks it gets (a clear 4xx, or its connection closed), and that nothing it held is
left held."""

from __future__ import annotations

import hashlib
import json
import re

import msgspec
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request as WsRequest, TextMessage

from isol8rt import ExecutionRequest, Isol8Options

from ..conftest import MASTER
from .conftest import connect, head, post, read_answer, read_to_eof, wait_until


# ------------------------------------------------------------------------------------ request bodies

async def test_no_key_no_body_read_and_no_100_continue(live):
    """A client without a key is answered from its head: 401 before it sends a byte of its 16 MiB body,
    and never invited to send it (no 100 Continue). With the key, 100 Continue comes first."""
    stream = await connect(live.port)
    async with stream:
        await stream.send_all(head("POST", "/execute", key=None, length=16 << 20,
                                   extra=[("Expect", "100-continue")]))
        with trio.fail_after(10):
            data = await read_to_eof(stream)
    assert data.startswith(b"HTTP/1.1 401") and b"100 Continue" not in data and b"Missing Authorization" in data

    stream = await connect(live.port)
    async with stream:
        await stream.send_all(head("POST", "/execute", key="wrong", length=16 << 20))
        await stream.send_all(b"{" * 65536)  # a start of the body, as a client not waiting would send it
        with trio.fail_after(10):
            data = await read_to_eof(stream)
    assert data.startswith(b"HTTP/1.1 403") and b"connection: close" in data.lower()

    payload = msgspec.json.encode({"request": {"code": "print('heard')"}})
    stream = await connect(live.port)
    async with stream:
        await stream.send_all(head("POST", "/execute", length=len(payload), extra=[("Expect", "100-continue")]))
        with trio.fail_after(10):
            first = await stream.receive_some(65536)
        assert first.startswith(b"HTTP/1.1 100"), first
        await stream.send_all(payload)
        with trio.fail_after(30):
            answer = await read_answer(stream)
    assert answer.status == 200 and answer.json()["stdout"] == "heard\n"


async def test_a_slow_head_gets_408(start_server):
    live = await start_server(header_timeout_s=1.0, prewarm=[])
    stream = await connect(live.port)
    async with stream:
        await stream.send_all(b"POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the rest
        with trio.fail_after(10):
            data = await read_to_eof(stream)
    assert data.startswith(b"HTTP/1.1 408") and b"head took longer than 1 s" in data


async def test_a_slow_body_gets_408(start_server):
    live = await start_server(body_timeout_s=1.0, prewarm=[])
    stream = await connect(live.port)
    async with stream:
        await stream.send_all(head("POST", "/execute", length=1000) + b'{"request": ')  # and then nothing
        with trio.fail_after(10):
            data = await read_to_eof(stream)
    assert data.startswith(b"HTTP/1.1 408") and b"body took longer than 1 s" in data


async def test_an_idle_connection_is_closed(start_server):
    live = await start_server(keepalive_s=0.5, prewarm=[])
    stream = await connect(live.port)
    async with stream:
        with trio.fail_after(10):
            assert await read_to_eof(stream) == b""


# ------------------------------------------------------------------------------------ connections

async def test_connection_caps_total_and_per_address(start_server):
    live = await start_server(max_connections=5, max_connections_per_address=3, prewarm=[])
    held = []

    async def open_from(source: str) -> trio.SocketStream:
        stream = await connect(live.port, source)
        await stream.send_all(head("GET", "/health", key=None))  # answered: the server has counted it
        assert (await read_answer(stream)).status == 200
        return stream

    async def refused_from(source: str) -> bytes:
        stream = await connect(live.port, source)
        async with stream:
            with trio.fail_after(10):
                return await read_to_eof(stream)

    with trio.fail_after(30):
        held += [await open_from("127.0.0.2") for _ in range(3)]
        refused = await refused_from("127.0.0.2")
        assert refused.startswith(b"HTTP/1.1 429") and b"Too many connections from 127.0.0.2 (limit 3)" in refused
        assert b"retry-after: 1" in refused.lower()
        held += [await open_from("127.0.0.3") for _ in range(2)]  # five in all: the total cap
        refused = await refused_from("127.0.0.4")
        assert refused.startswith(b"HTTP/1.1 429") and b"(limit 5)" in refused
        await held.pop().aclose()
        await wait_until(lambda: live.server._connections == 4)
        held.append(await open_from("127.0.0.4"))  # room again
    for stream in held:
        await stream.aclose()


# ------------------------------------------------------------------------------------ streams

#: Far more than the kernel buffers between the server and a client that reads nothing (4 MiB of send
#: buffer at most here, and the client's shrunk receive buffer), so the server's send really blocks.
FLOOD = ("import sys\n"
         "chunk = 'x' * (1 << 20)\n"
         "for _ in range(24):\n"
         "    sys.stdout.write(chunk)\n"
         "    sys.stdout.flush()\n"
         "print('flooded', flush=True)\n"
         "import time; time.sleep(60)\n")


async def _flooding_server(start_server):
    return await start_server(options=Isol8Options(pool_size=1, max_output_size=64 << 20), send_timeout_s=1.0)


async def _run_is_dropped(live) -> None:
    """The run of a client that stopped reading ends long before its 60 s sleep: the engine's lease is
    given back (the run's generator was closed: its process killed, its container reset or removed) and
    its slot is free."""
    await wait_until(lambda: live.server.engines.active == 1 and live.server.app.slots.in_use == 1, 20)
    started = trio.current_time()
    await wait_until(lambda: live.server.engines.active == 0 and live.server.app.slots.in_use == 0, 15)
    # The send timeout (1 s) and the check's period (a quarter of it), with room for a loaded machine;
    # far from the run's own 60 s.
    assert trio.current_time() - started < 10


async def test_sse_client_that_stops_reading_loses_its_run(start_server):
    live = await _flooding_server(start_server)
    stream = await connect(live.port, rcvbuf=4096)
    async with stream:
        await stream.send_all(post("/execute/stream", {"request": {"code": FLOOD}}))
        await _run_is_dropped(live)
    # The server serves others all along.
    assert (await live.request("POST", "/execute", {"request": {"code": "print(2)"}})).json()["stdout"] == "2\n"


async def test_websocket_client_that_stops_reading_loses_its_run(start_server):
    live = await _flooding_server(start_server)
    stream = await connect(live.port, rcvbuf=4096)
    ws = WSConnection(ConnectionType.CLIENT)
    async with stream:
        await stream.send_all(ws.send(WsRequest(host="127.0.0.1", target="/execute/ws",
                                                extra_headers=[(b"Authorization", f"Bearer {MASTER}".encode())])))
        with trio.fail_after(10):  # the handshake's answer is the last thing this client reads
            while not any(isinstance(event, AcceptConnection) for event in ws.events()):
                ws.receive_data(await stream.receive_some(1024))
        await stream.send_all(ws.send(TextMessage(data=json.dumps({"type": "execute", "request": {"code": FLOOD}}))))
        await _run_is_dropped(live)


async def test_a_plain_answer_nobody_reads_is_dropped_too(start_server):
    """A 16 MiB output file to a client that never reads its answer: the answer's slot (and the file's
    memory) is freed after the send timeout."""
    live = await start_server(options=Isol8Options(pool_size=1, max_file_bytes=32 << 20), send_timeout_s=1.0)
    code = "import os\nopen('/sandbox/f', 'wb').write(os.urandom(16 << 20))"
    stream = await connect(live.port, rcvbuf=4096)
    async with stream:
        await stream.send_all(post("/execute", {"request": {"code": code, "outputPaths": ["/sandbox/f"]}}))
        await wait_until(lambda: live.server.app.slots.in_use == 1, 20)
        await wait_until(lambda: live.server.app.slots.in_use == 0, 30)


async def test_an_idle_websocket_is_closed(start_server):
    live = await start_server(ws_idle_s=0.5, prewarm=[])
    stream = await connect(live.port)
    ws = WSConnection(ConnectionType.CLIENT)
    events = []
    async with stream:
        await stream.send_all(ws.send(WsRequest(host="127.0.0.1", target="/execute/ws",
                                                extra_headers=[(b"Authorization", f"Bearer {MASTER}".encode())])))
        with trio.fail_after(10):
            while not any(isinstance(e, CloseConnection) for e in events):
                ws.receive_data(await stream.receive_some(65536) or None)
                events += list(ws.events())
    assert isinstance(events[0], AcceptConnection)
    [error] = [json.loads(e.data) for e in events if isinstance(e, TextMessage)]
    assert error == {"type": "error", "data": "No execute message within 0.5 s"}
    close = events[-1]
    assert close.code == 1008


# ------------------------------------------------------------------------------------ output files

async def test_output_files_up_to_the_budget_come_back_whole(start_server):
    """A file of exactly the budget comes back byte for byte (streamed out in base64 slices); one byte
    more, and it is refused by its size, never sent in part."""
    budget = 3 << 20
    live = await start_server(options=Isol8Options(pool_size=1, max_file_bytes=budget))
    code = (f"import os, hashlib\ndata = bytes(range(256)) * ({budget} // 256)\n"
            "open('/sandbox/a', 'wb').write(data)\nopen('/sandbox/b', 'wb').write(b'!')\n"
            "print(hashlib.sha256(data).hexdigest())")
    async with live.client() as remote:
        result = await remote.execute(ExecutionRequest(code=code, output_paths=["/sandbox/a"]))
        assert hashlib.sha256(result.files["/sandbox/a"]).hexdigest() == result.stdout.strip()
        both = await remote.execute(ExecutionRequest(code=code, output_paths=["/sandbox/a", "/sandbox/b"]))
        assert set(both.files) == {"/sandbox/a"} and "limit for output files" in both.file_errors["/sandbox/b"]
    # The answer's length is stated up front, and its JSON is the reference's shape.
    raw = await live.request("POST", "/execute", {"request": {"code": code, "outputPaths": ["/sandbox/a"]}})
    assert int(raw.headers[b"content-length"]) == len(raw.body)
    assert re.fullmatch(rb'[A-Za-z0-9+/=]+', raw.json()["files"]["/sandbox/a"].encode())


# ------------------------------------------------------------------------------------ sessions and engines

async def make_key(live, name: str, **fields) -> str:
    """A key of a tenant of its own (keys made without one share the tenant "default", and its quotas)."""
    answer = await live.request("POST", "/auth/keys", {"name": name, "tenantId": name, **fields})
    assert answer.status == 201, answer.body
    return answer.json()["key"]


async def test_session_quotas_count_memory_and_total(start_server):
    quota = (1024 + 64) << 20  # two sessions of the default 512m, and one of 64m
    live = await start_server(max_sessions_per_key=3, session_memory_per_key=quota, max_sessions=4, prewarm=[])
    alice, bob = await make_key(live, "alice"), await make_key(live, "bob")

    async def session(key, name, options=None):
        body = {"request": {"code": "echo", "runtime": "bash"}, "sessionId": name}
        if options:
            body["options"] = options
        return await live.request("POST", "/execute", body, key=key)

    assert (await session(alice, "one")).status == 200  # 512m
    assert (await session(alice, "two")).status == 200  # 1g of the quota
    full = await session(alice, "three")
    assert full.status == 409 and f"may hold {quota} bytes of memory" in full.json()["error"]
    small = await session(alice, "three", {"memoryLimit": "64m"})
    assert small.status == 200  # a smaller session still fits
    counted = await session(alice, "four", {"memoryLimit": "64m"})
    assert counted.status == 409 and "too many sessions for this key (limit 3)" in counted.json()["error"]
    # Another key has its own quota, and the server its total.
    assert (await session(bob, "one")).status == 200
    total = await session(bob, "two")
    assert total.status == 409 and "too many sessions on this server (limit 4)" in total.json()["error"]
    assert (await live.request("DELETE", "/session/one", key=alice)).status == 200
    assert (await session(bob, "two")).status == 200


async def test_one_key_cannot_pin_every_engine_variant(start_server):
    live = await start_server(max_engines_per_key=1, prewarm=[])
    alice, bob = await make_key(live, "alice"), await make_key(live, "bob")
    # Alice holds one variant with a session.
    held = await live.request("POST", "/execute", {"request": {"code": "echo", "runtime": "bash"}, "sessionId": "s",
                                                   "options": {"memoryLimit": "256m"}}, key=alice)
    assert held.status == 200
    second = await live.request("POST", "/execute", {"request": {"code": "echo", "runtime": "bash"},
                                                     "options": {"memoryLimit": "128m"}}, key=alice)
    assert second.status == 429 and "other option sets (limit 1)" in second.json()["error"]
    assert int(second.headers[b"retry-after"]) >= 1
    # Her own variant, and the server's options, still work for her; Bob gets the variant she could not.
    assert (await live.request("POST", "/execute", {"request": {"code": "echo", "runtime": "bash"},
                                                    "options": {"memoryLimit": "256m"}}, key=alice)).status == 200
    assert (await live.request("POST", "/execute", {"request": {"code": "echo", "runtime": "bash"}},
                               key=alice)).status == 200
    assert (await live.request("POST", "/execute", {"request": {"code": "echo", "runtime": "bash"},
                                                    "options": {"memoryLimit": "128m"}}, key=bob)).status == 200


# ------------------------------------------------------------------------------------ installs

async def test_setup_time_counts_against_the_timeout(start_server):
    """The ceiling bounds the whole run: a setup step (an install, a setupScript) spends the timeout and
    the program gets what is left. Before, each setup step had the whole timeout (an install at least
    120 s) and the program the whole timeout again."""
    live = await start_server(options=Isol8Options(pool_size=1, timeout_ms=3000))
    started = trio.current_time()
    answer = await live.request("POST", "/execute", {"request": {
        "setupScript": "sleep 2", "code": "import time\ntime.sleep(2)\nprint('finished')"}})
    elapsed = trio.current_time() - started
    result = answer.json()
    assert answer.status == 200 and result["timedOut"] is True and "finished" not in result["stdout"]
    assert elapsed < 3 + 2, f"{elapsed:.1f} s for a 3 s ceiling"  # generous: container start, the reply


async def test_a_connection_reset_never_takes_the_server_down(live):
    """A client that resets its connection (RST) while the server waits for its next request: before,
    the reset escaped the connection's nursery as an exception group and stopped the whole server."""
    import socket
    import struct

    for _ in range(3):
        stream = await connect(live.port)
        await stream.send_all(head("GET", "/health", key=None))
        assert (await read_answer(stream)).status == 200  # the server now waits for the next head
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stream.socket.close()  # with SO_LINGER 0: a reset, not a FIN
    await wait_until(lambda: live.server._connections == 0, 10)
    assert (await live.request("GET", "/health", key=None)).status == 200
    assert (await live.request("POST", "/execute", {"request": {"code": "print(3)"}})).json()["stdout"] == "3\n"
