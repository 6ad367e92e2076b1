"""The hostile clients of test_hostile_load.py, in a process of their own (so the well-behaved clients'
latency, measured in the test's process, is not the attackers' event loop's).

    python -m tests.server.hostile.attackers PORT FILES_KEY NOREAD_KEY SESSIONS_KEY

Runs until SIGTERM, then prints one JSON line: how many answers of each status each kind of attacker
saw. Each kind comes from its own loopback address (127.0.0.2 and up), so the per-address cap bounds
each, not the well-behaved clients on 127.0.0.1. The process lowers its own priority: real attackers
spend their own machines' CPU, not the server's, and on this one machine they would otherwise compete
with the server for the CPU as no remote client can (what they make the server and its sandboxes do is
not lowered: that is the attack).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import sys
import uuid

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request as WsRequest, TextMessage

from .conftest import connect, head, post, read_answer

SLOW_CLIENTS = 200
FILE_CLIENTS = 16
NON_READERS = 50
FLOOD_WORKERS = 2

#: An output file of exactly the server's budget (sparse: free for the container, as in issue 14).
FILE_CODE = "open('/sandbox/f', 'wb').truncate({budget})"
#: More output than the kernel buffers hold between the server and a client that reads nothing, then a
#: long sleep: the run can only end early by the server dropping the client.
FLOOD_CODE = ("import sys\nsys.stdout.write('x' * (6 << 20))\nsys.stdout.flush()\nimport time\ntime.sleep(30)\n")

seen: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


def status_of(data: bytes) -> str:
    return data[9:12].decode() if data.startswith(b"HTTP/1.1 ") else "closed"


async def slow_body(port: int) -> None:
    """No key, a 1 MiB body announced, sent a kilobyte at a time; again whenever the server hangs up."""
    while True:
        try:
            stream = await connect(port, "127.0.0.2")
        except OSError:
            seen["slow"]["connect-failed"] += 1
            await trio.sleep(0.5)
            continue
        answer = b""
        async with stream:
            try:
                await stream.send_all(head("POST", "/execute", key=None, length=1 << 20))
                with trio.move_on_after(10):  # the server answers from the head; this only bounds a bug
                    while True:
                        with trio.move_on_after(0.1):
                            data = await stream.receive_some(65536)
                            if not data:
                                break
                            answer += data
                        await stream.send_all(b"x" * 1024)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        seen["slow"][status_of(answer)] += 1
        await trio.sleep(2)  # a slow client, not a connection flood: that is the per-address cap's business


async def file_client(port: int, key: str, budget: int) -> None:
    body = {"request": {"code": FILE_CODE.format(budget=budget), "outputPaths": ["/sandbox/f"]}}
    while True:
        try:
            stream = await connect(port, "127.0.0.4")
            async with stream:
                await stream.send_all(post("/execute", body, key=key))
                answer = await read_answer(stream)
            kind = str(answer.status)
            if answer.status == 200 and len(answer.json()["files"]["/sandbox/f"]) != 4 * ((budget + 2) // 3):
                kind = "200-wrong-file"
            seen["files"][kind] += 1
            if kind == "200" and seen["files"][kind] == FILE_CLIENTS:
                print("files-answered", file=sys.stderr, flush=True)   # the test waits for this, not for time
        except (OSError, trio.BrokenResourceError, AssertionError):
            seen["files"]["broken"] += 1
        await trio.sleep(1.5)


async def non_reader(port: int, key: str, websocket: bool) -> None:
    """Asks for a run whose output it never reads; lets go after a while and asks again."""
    kind = "noread-ws" if websocket else "noread-sse"
    while True:
        try:
            stream = await connect(port, "127.0.0.3", rcvbuf=4096)
        except OSError:
            seen[kind]["connect-failed"] += 1
            await trio.sleep(0.5)
            continue
        async with stream:
            try:
                if websocket:
                    ws = WSConnection(ConnectionType.CLIENT)
                    await stream.send_all(ws.send(WsRequest(host="127.0.0.1", target="/execute/ws", extra_headers=[
                        (b"Authorization", f"Bearer {key}".encode())])))
                    with trio.move_on_after(10):
                        accepted = False
                        while not accepted:
                            data = await stream.receive_some(1024)
                            if not data:
                                break
                            if data.startswith(b"HTTP/1.1 ") and not data.startswith(b"HTTP/1.1 101"):
                                seen[kind][status_of(data)] += 1
                                break
                            ws.receive_data(data)
                            accepted = any(isinstance(e, AcceptConnection) for e in ws.events())
                    if accepted:
                        seen[kind]["101"] += 1
                        await stream.send_all(ws.send(TextMessage(data=json.dumps(
                            {"type": "execute", "request": {"code": FLOOD_CODE}}))))
                else:
                    await stream.send_all(post("/execute/stream", {"request": {"code": FLOOD_CODE}}, key=key))
                    seen[kind]["sent"] += 1
                await trio.sleep(5)  # reads nothing meanwhile
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                seen[kind]["broken"] += 1


async def session_flood(port: int, key: str) -> None:
    """New sessions as fast as answers come (paced a little, so the flood is of sessions, not of CPU)."""
    while True:
        try:
            stream = await connect(port, "127.0.0.5")
            async with stream:
                await stream.send_all(post("/execute", {"request": {"code": "true", "runtime": "bash"},
                                                        "sessionId": uuid.uuid4().hex}, key=key))
                answer = await read_answer(stream)
            seen["sessions"][str(answer.status)] += 1
        except (OSError, trio.BrokenResourceError, AssertionError):
            seen["sessions"]["broken"] += 1
        await trio.sleep(0.05)


async def main(port: int, files_key: str, noread_key: str, sessions_key: str, budget: int) -> None:
    os.nice(10)
    kinds = os.environ.get("ATTACKERS", "slow,files,noread,sessions").split(",")
    async with trio.open_nursery() as nursery:
        for _ in range(SLOW_CLIENTS if "slow" in kinds else 0):
            nursery.start_soon(slow_body, port)
        for _ in range(FILE_CLIENTS if "files" in kinds else 0):
            nursery.start_soon(file_client, port, files_key, budget)
        for index in range(NON_READERS if "noread" in kinds else 0):
            nursery.start_soon(non_reader, port, noread_key, index % 2 == 0)
        for _ in range(FLOOD_WORKERS if "sessions" in kinds else 0):
            nursery.start_soon(session_flood, port, sessions_key)
        print("started", file=sys.stderr, flush=True)
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            async for _ in signals:
                break
        nursery.cancel_scope.cancel()
    print(json.dumps({kind: dict(counter) for kind, counter in seen.items()}), flush=True)


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
