"""GET /execute/ws: the reference's WebSocket cases, and stdin and signals that really reach the program.

The raw tests speak through wsproto's own client (handshake included), not through isol8rt's codec, so
the server is checked against an independent implementation.
"""

from __future__ import annotations

import json

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, RejectConnection, RejectData, Request, TextMessage

from isol8rt import ExecutionRequest
from isol8rt.client import AccessDenied, RemoteControl

from .conftest import MASTER


def stdout(items) -> str:
    """The program's stdout: the data of every stdout event (a write may come in several)."""
    return "".join(i["data"] for i in items if isinstance(i, dict) and i["type"] == "stdout")


class WsClient:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.pending = []

    @classmethod
    async def connect(cls, port: int, key: str | None = MASTER):
        client = cls(await trio.open_tcp_stream("127.0.0.1", port))
        headers = [(b"Authorization", f"Bearer {key}".encode())] if key else []
        await client.stream.send_all(client.ws.send(Request(host="test", target="/execute/ws", extra_headers=headers)))
        return client, await client._next()

    async def _next(self):
        while not self.pending:
            data = await self.stream.receive_some(65536)
            self.ws.receive_data(data or None)
            self.pending.extend(self.ws.events())
        return self.pending.pop(0)

    async def send(self, message) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        await self.stream.send_all(self.ws.send(TextMessage(data=text)))

    async def receive(self):
        """The next event (a dict), or ("close", code, reason)."""
        event = await self._next()
        if isinstance(event, CloseConnection):
            try:
                await self.stream.send_all(self.ws.send(event.response()))
            except Exception:  # noqa: BLE001 - the server may be gone already
                pass
            return ("close", event.code, event.reason)
        assert isinstance(event, TextMessage) and event.message_finished
        return json.loads(event.data)

    async def run_to_close(self):
        items = []
        with trio.fail_after(30):
            while True:
                item = await self.receive()
                items.append(item)
                if isinstance(item, tuple):
                    return items


async def test_execute_streams_events_then_closes_1000(live):
    client, accepted = await WsClient.connect(live.port)
    assert isinstance(accepted, AcceptConnection)
    await client.send({"type": "execute", "request": {"code": "print('hello ws')", "runtime": "python"}})
    items = await client.run_to_close()
    assert stdout(items) == "hello ws\n"
    assert items[-2] == {"type": "exit", "data": "0", "phase": "code"}
    assert items[-1] == ("close", 1000, "Execution complete")


async def test_bad_json_is_an_error_event_then_close_1003(live):
    client, _ = await WsClient.connect(live.port)
    await client.send("{this is not json")
    items = await client.run_to_close()
    assert items[0]["type"] == "error"
    assert items[-1][:2] == ("close", 1003)


async def test_unknown_type_is_named_and_the_socket_stays_usable(live):
    client, _ = await WsClient.connect(live.port)
    await client.send({"type": "dance"})
    assert await client.receive() == {"type": "error", "data": "Unknown message type: dance"}
    await client.send({"type": "execute", "request": {"code": "echo still here", "runtime": "bash"}})
    items = await client.run_to_close()
    assert stdout(items) == "still here\n"
    assert items[-1] == ("close", 1000, "Execution complete")


async def test_auth_is_checked_before_the_upgrade(live):
    _, refused = await WsClient.connect(live.port, key=None)
    assert isinstance(refused, RejectConnection) and refused.status_code == 401
    _, refused = await WsClient.connect(live.port, key="wrong")
    assert isinstance(refused, RejectConnection) and refused.status_code == 403


async def test_policy_refusal_closes_1008(live):
    client, _ = await WsClient.connect(live.port)
    await client.send({"type": "execute", "request": {"code": "1"}, "options": {"network": "host"}})
    items = await client.run_to_close()
    assert items[0]["type"] == "error" and "network" in items[0]["data"]
    assert items[-1][:2] == ("close", 1008)


async def test_stdin_and_signal_reach_the_program(live):
    code = ("import signal, sys, time\n"
            "print('ready', flush=True)\n"
            "print('got', sys.stdin.readline().strip(), flush=True)\n"
            "signal.signal(signal.SIGINT, lambda *a: (print('sigint', flush=True), sys.exit(5)))\n"
            "print('waiting', flush=True)\n"
            "time.sleep(20)\n")
    client, _ = await WsClient.connect(live.port)
    await client.send({"type": "execute", "request": {"code": code}})
    seen = []
    with trio.fail_after(30):
        while True:
            item = await client.receive()
            seen.append(item)
            if isinstance(item, tuple):
                break
            if item.get("data", "").startswith("ready"):
                await client.send({"type": "stdin", "data": "hello stdin\n"})
            elif "waiting" in item.get("data", ""):
                await client.send({"type": "signal", "signal": "SIGINT"})
    assert "got hello stdin\n" in stdout(seen) and "sigint\n" in stdout(seen)
    assert seen[-2] == {"type": "exit", "data": "5", "phase": "code"}
    assert seen[-1] == ("close", 1000, "Execution complete")


async def test_client_closing_mid_run_frees_the_container(live):
    client, _ = await WsClient.connect(live.port)
    await client.send({"type": "execute", "request": {"code": "import time\nprint('up', flush=True)\ntime.sleep(60)"}})
    seen = ""
    with trio.fail_after(20):
        while seen != "up\n":
            seen += (await client.receive())["data"]
    busy = set(live.server.engines.containers)
    await client.stream.aclose()
    # The run is cancelled: its container is discarded, not kept for 60 s.
    with trio.fail_after(20):
        while busy <= set(live.server.engines.containers):
            await trio.sleep(0.1)


async def test_remote_client_over_ws_with_control(live):
    control = RemoteControl()
    code = "import sys\nprint('ready', flush=True)\nprint(sys.stdin.read().upper())"
    out = []
    async with live.client() as remote:
        async for event in remote.execute_stream(ExecutionRequest(code=code), control=control):
            out.append(event)
            if event.data.startswith("ready"):
                await control.write_stdin("abc")
                await control.close_stdin()
        assert "".join(e.data for e in out if e.type == "stdout") == "ready\nABC\n"
        assert out[-1].type == "exit" and out[-1].data == "0"
        assert await control.write_stdin("late") is False
    async with live.client("bad") as remote:
        try:
            async for _ in remote.execute_stream(ExecutionRequest(code="1"), transport="ws"):
                pass
        except AccessDenied as exc:
            assert "Invalid API key" in str(exc)
        else:
            raise AssertionError("a wrong key must be refused")


async def test_not_a_websocket_handshake_is_400(live):
    answer = await live.request("GET", "/execute/ws")
    assert answer.status == 400 and "WebSocket" in answer.json()["error"]
    assert not isinstance(answer, RejectData)
