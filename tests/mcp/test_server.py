"""The MCP session against a stand-in engine (no Docker): framing, lifecycle, version negotiation, errors,
tool arguments, and cancellation. The real engine and the official SDK client: test_sdk_client.py."""

from __future__ import annotations

from typing import Any, cast

import msgspec
import pytest
import trio
import trio.testing

from isol8rt import DockerIsol8, EngineUnavailable, ExecutionRequest, ExecutionResult, Isol8Options, SessionError
from isol8rt.mcp import PROTOCOL_VERSIONS, Context, McpServer
from isol8rt.mcp.jsonrpc import Lines


class FakeEngine:
    """What the tools use of DockerIsol8, recorded."""

    def __init__(self) -> None:
        self.options = Isol8Options()
        self.requests: list[tuple[ExecutionRequest, str | None]] = []
        self.files: dict[str, bytes] = {}
        self.cancelled = trio.Event()
        self.sessions = 0

    async def execute(self, request: ExecutionRequest, *, session_id: str | None = None) -> ExecutionResult:
        self.requests.append((request, session_id))
        if request.code == "hang":
            try:
                await trio.sleep_forever()
            finally:
                self.cancelled.set()
        return ExecutionResult(stdout=f"ran {request.code}\n", stderr="", exit_code=0, duration_ms=1.5,
                               truncated=False, execution_id="x", runtime=request.runtime, timestamp="t")

    async def put_file(self, path: str, content: bytes, *, session_id: str | None = None) -> None:
        if session_id is None:
            raise SessionError("no session")
        self.files[path] = content

    async def get_file(self, path: str, *, session_id: str | None = None) -> bytes:
        if path not in self.files:
            raise FileNotFoundError(f"{path}: no such file")
        return self.files[path]

    async def close_session(self, session_id: str) -> bool:
        self.sessions += 1
        return bool(self.files)


class Peer:
    """The client's end of a served session."""

    def __init__(self, send: trio.testing.MemorySendStream, receive: trio.testing.MemoryReceiveStream) -> None:
        self.send_stream, self.receive_stream = send, receive
        self.lines = Lines()
        self.pending: list[bytes] = []
        self.next_id = 0

    async def send(self, message: Any) -> None:
        data = message if isinstance(message, bytes) else msgspec.json.encode(message) + b"\n"
        await self.send_stream.send_all(data)

    async def receive(self) -> dict[str, Any]:
        while not self.pending:
            data = await self.receive_stream.receive_some()
            assert data, "the server closed its end"
            self.pending += self.lines.feed(data)
        return cast(dict[str, Any], msgspec.json.decode(self.pending.pop(0)))

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        await self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}})
        answer = await self.receive()
        assert answer["id"] == self.next_id, answer
        return answer

    async def initialize(self, version: str = "2025-06-18") -> dict[str, Any]:
        answer = await self.request("initialize", {"protocolVersion": version, "capabilities": {},
                                                   "clientInfo": {"name": "test", "version": "0"}})
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return answer

    async def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        answer = await self.request("tools/call", {"name": name, "arguments": arguments})
        return cast(dict[str, Any], answer["result"])


@pytest.fixture
async def served(nursery):
    """(peer, fake engine, server) for an ephemeral-mode server; ``served.persistent`` flips it."""

    async def start(persistent: bool = False) -> tuple[Peer, FakeEngine, McpServer]:
        engine = FakeEngine()
        server = McpServer(Context(engine=cast(DockerIsol8, engine), persistent=persistent, max_timeout_ms=5000))
        to_server_send, to_server_receive = trio.testing.memory_stream_one_way_pair()
        to_client_send, to_client_receive = trio.testing.memory_stream_one_way_pair()
        nursery.start_soon(server.serve, to_server_receive, to_client_send)
        return Peer(to_server_send, to_client_receive), engine, server

    return start


async def test_initialize_negotiates_the_version(served):
    peer, _, server = await served()
    answer = await peer.initialize("2025-06-18")
    result = answer["result"]
    assert result["protocolVersion"] == "2025-06-18"
    assert result["capabilities"] == {"tools": {"listChanged": False}}
    assert result["serverInfo"]["name"] == "isol8rt"
    assert (await peer.request("ping"))["result"] == {}

    peer, _, _ = await served()
    assert (await peer.initialize("2099-01-01"))["result"]["protocolVersion"] == PROTOCOL_VERSIONS[0]


async def test_tools_list_depends_on_mode_and_version(served):
    peer, _, _ = await served()
    await peer.initialize()
    tools = (await peer.request("tools/list"))["result"]["tools"]
    assert [tool["name"] for tool in tools] == ["execute_code"]
    schema = tools[0]["inputSchema"]
    assert schema["type"] == "object" and schema["required"] == ["code"]
    assert set(schema["properties"]) == {"code", "runtime", "stdin", "files", "timeout_ms", "display"}
    assert set(tools[0]["outputSchema"]["properties"]) >= {"stdout", "stderr", "exit_code", "timed_out", "truncated"}

    peer, _, _ = await served(persistent=True)
    await peer.initialize("2025-03-26")  # before structured output existed
    tools = (await peer.request("tools/list"))["result"]["tools"]
    assert [tool["name"] for tool in tools] == ["execute_code", "write_file", "read_file", "reset_session"]
    assert all("outputSchema" not in tool for tool in tools)
    assert "structuredContent" not in await peer.call("execute_code", {"code": "1"})


async def test_execute_code_result_and_arguments(served):
    peer, engine, _ = await served()
    await peer.initialize()
    result = await peer.call("execute_code", {"code": "print(1)", "runtime": "bash", "stdin": "in",
                                              "files": {"a.txt": "A"}, "timeout_ms": 999_999, "nullable": None})
    assert result["isError"] is True and "nullable" in result["content"][0]["text"]
    result = await peer.call("execute_code", {"code": "print(1)", "runtime": "bash", "stdin": "in",
                                              "files": {"a.txt": "A"}, "timeout_ms": 999_999})
    assert result["isError"] is False
    assert result["structuredContent"] == {"stdout": "ran print(1)\n", "stderr": "", "exit_code": 0,
                                           "timed_out": False, "truncated": False, "duration_ms": 1.5}
    assert msgspec.json.decode(result["content"][0]["text"]) == result["structuredContent"]
    request, session = engine.requests[-1]
    assert (request.runtime, request.stdin, request.files, session) == ("bash", "in", {"a.txt": "A"}, None)
    assert request.timeout_ms == 5000  # capped by the server's limit
    await peer.call("execute_code", {"code": "x", "stdin": None, "timeout_ms": 10})  # nulls count as left out
    assert engine.requests[-1][0].timeout_ms == 10

    for bad in ({}, {"code": 1}, {"code": "x", "runtime": "cobol"}, {"code": "x", "timeout_ms": 0}):
        result = await peer.call("execute_code", bad)
        assert result["isError"] is True and "invalid arguments" in result["content"][0]["text"]


async def test_session_tools(served):
    peer, engine, _ = await served(persistent=True)
    await peer.initialize()
    assert (await peer.call("write_file", {"path": "a.bin", "content": "AAEC", "encoding": "base64"})) \
        ["structuredContent"] == {"path": "a.bin", "bytes": 3}
    assert engine.files["a.bin"] == b"\x00\x01\x02"
    read = await peer.call("read_file", {"path": "a.bin"})
    assert read["structuredContent"]["encoding"] == "base64" and read["structuredContent"]["content"] == "AAEC"
    await peer.call("write_file", {"path": "t.txt", "content": "héllo"})
    assert (await peer.call("read_file", {"path": "t.txt"}))["structuredContent"]["content"] == "héllo"
    missing = await peer.call("read_file", {"path": "nope"})
    assert missing["isError"] is True and "no such file" in missing["content"][0]["text"]
    bad = await peer.call("write_file", {"path": "x", "content": "!!", "encoding": "base64"})
    assert bad["isError"] is True
    await peer.call("execute_code", {"code": "1"})
    assert engine.requests[-1][1] == "mcp"
    assert (await peer.call("reset_session", {}))["structuredContent"] == {"reset": True}


async def test_protocol_errors(served):
    peer, _, _ = await served()
    await peer.send(b"{not json\n")
    assert (await peer.receive())["error"]["code"] == -32700
    await peer.send(b"[]\n")
    assert (await peer.receive())["error"]["code"] == -32600
    await peer.send({"jsonrpc": "1.0", "id": 7, "method": "ping"})
    answer = await peer.receive()
    assert (answer["id"], answer["error"]["code"]) == (7, -32600)
    await peer.send({"jsonrpc": "2.0", "id": None, "method": "ping"})
    assert (await peer.receive())["error"]["code"] == -32600
    assert (await peer.request("resources/list"))["error"]["code"] == -32601
    assert (await peer.request("tools/call", {"name": "nope"}))["error"]["code"] == -32602
    await peer.send({"jsonrpc": "2.0", "id": 99, "result": {}})  # a response: nothing to answer
    await peer.send({"jsonrpc": "2.0", "method": "notifications/whatever"})
    assert (await peer.request("ping"))["result"] == {}


async def test_cancelled_notification_cancels_the_run(served):
    peer, engine, _ = await served()
    await peer.initialize()
    await peer.send({"jsonrpc": "2.0", "id": "slow", "method": "tools/call",
                     "params": {"name": "execute_code", "arguments": {"code": "hang"}}})
    await trio.testing.wait_all_tasks_blocked()  # the server has read it and the run waits
    assert engine.requests
    assert (await peer.request("ping"))["result"] == {}  # answered while the run goes on
    await peer.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "slow"}})
    with trio.fail_after(2):
        await engine.cancelled.wait()
    # No answer for the cancelled request: the next message is the answer to the next request.
    assert (await peer.request("ping"))["id"] == peer.next_id


async def test_closing_stdin_cancels_what_runs(served):
    peer, engine, _ = await served()
    await peer.initialize()
    await peer.send({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                     "params": {"name": "execute_code", "arguments": {"code": "hang"}}})
    await trio.testing.wait_all_tasks_blocked()  # the server has read it and the run waits
    assert engine.requests
    await peer.send_stream.aclose()
    with trio.fail_after(2):
        await engine.cancelled.wait()


async def test_a_call_with_a_progress_token_reports_progress_until_it_ends(served, autojump_clock):
    peer, engine, _ = await served()
    await peer.initialize()
    await peer.send({"jsonrpc": "2.0", "id": "long", "method": "tools/call",
                     "params": {"name": "execute_code", "arguments": {"code": "hang"},
                                "_meta": {"progressToken": "tok"}}})
    notes = [await peer.receive() for _ in range(3)]  # the clock jumps while the run waits
    assert [note["method"] for note in notes] == ["notifications/progress"] * 3
    assert [note["params"]["progressToken"] for note in notes] == ["tok"] * 3
    values = [note["params"]["progress"] for note in notes]
    assert values == sorted(values) and len(set(values)) == 3
    await peer.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "long"}})
    await engine.cancelled.wait()
    # No more progress once the call is over: the next message is the answer to the next request.
    assert (await peer.request("ping"))["result"] == {}


async def test_a_short_call_with_a_token_is_answered_without_progress(served, autojump_clock):
    peer, _, _ = await served()
    await peer.initialize()
    answer = await peer.request("tools/call", {"name": "execute_code", "arguments": {"code": "quick"},
                                               "_meta": {"progressToken": 7}})
    assert answer["result"]["isError"] is False


async def test_an_engine_that_cannot_start_fails_calls_not_the_session(nursery):
    """Docker down: initialize and tools/list are answered; each call is a tool error with the engine's
    message, and is tried again (Docker may have come up since)."""
    attempts = []

    async def start() -> None:
        attempts.append(1)
        raise EngineUnavailable("Docker is not running (no socket at /x.sock): run `isol8rt setup`")

    server = McpServer(Context(engine=cast(DockerIsol8, FakeEngine()), persistent=False, max_timeout_ms=5000,
                               start=start))
    to_server_send, to_server_receive = trio.testing.memory_stream_one_way_pair()
    to_client_send, to_client_receive = trio.testing.memory_stream_one_way_pair()
    nursery.start_soon(server.serve, to_server_receive, to_client_send)
    peer = Peer(to_server_send, to_client_receive)
    assert "result" in await peer.initialize()
    assert [tool["name"] for tool in (await peer.request("tools/list"))["result"]["tools"]] == ["execute_code"]
    for _ in range(2):
        result = await peer.call("execute_code", {"code": "print(1)"})
        assert result["isError"] is True and "isol8rt setup" in result["content"][0]["text"]
    assert len(attempts) == 2


def test_lines_split_and_keep_the_rest():
    lines = Lines()
    assert lines.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert lines.feed(b":2}\n\n  \n") == [b'{"b":2}']
    assert lines.feed(b'{"c":3}') == [] and lines.rest() == b'{"c":3}'
