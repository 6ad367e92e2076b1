"""`isol8rt mcp` as a subprocess, driven by the official MCP Python SDK's client over stdio (anyio, here on
trio): the handshake the SDK negotiates, tools/list, tools/call with structured results (the SDK checks
them against our output schemas), the session tools, and a cancelled call killing its run."""

from __future__ import annotations

import sys

import pytest
import trio

mcp = pytest.importorskip("mcp", reason="the test extra installs the MCP SDK")

from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

from ..test_faces import GONE_WITHIN_S, new_marker, seconds_until_dead, sleeper, wait_running  # noqa: E402
from ..conftest import managed_containers  # noqa: E402


def server(*flags: str) -> StdioServerParameters:
    # (The SDK starts the server with an environment of its own, without DOCKER_HOST: the root conftest's
    # guard cannot see these tests reach Docker, so each one carries its marker.)
    return StdioServerParameters(command=sys.executable, args=["-m", "isol8rt", "mcp", "--prewarm", "", *flags])


@pytest.mark.docker
async def test_round_trip_through_the_sdk_client():
    async with stdio_client(server("--persistent", "--timeout", "20000")) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.server_info.name == "isol8rt"
            assert init.protocol_version in ("2025-11-25", "2025-06-18")
            await session.send_ping()

            listed = await session.list_tools()
            tools = {tool.name: tool for tool in listed.tools}
            assert list(tools) == ["execute_code", "write_file", "read_file", "reset_session"]
            assert tools["execute_code"].input_schema["required"] == ["code"]
            assert tools["execute_code"].output_schema is not None

            result = await session.call_tool("execute_code", {"code": "x = 6 * 7\nprint(x)"})
            assert not result.is_error
            assert result.structured_content == {**result.structured_content, "stdout": "42\n", "stderr": "",
                                                 "exit_code": 0, "timed_out": False, "truncated": False}
            assert result.content[0].type == "text" and '"exit_code":0' in result.content[0].text

            # One session: state and files carry over.
            assert (await session.call_tool("execute_code", {"code": "print(x + 1)"})).structured_content["stdout"] \
                == "43\n"
            written = await session.call_tool("write_file", {"path": "in.csv", "content": "a,b\n1,2\n"})
            assert written.structured_content == {"path": "in.csv", "bytes": 8}
            await session.call_tool("execute_code", {"code": "import csv\nrows = list(csv.reader(open('in.csv')))\n"
                                                             "open('out.txt', 'w').write(str(len(rows)))"})
            read = await session.call_tool("read_file", {"path": "out.txt"})
            assert read.structured_content["content"] == "2"

            failed = await session.call_tool("execute_code", {"code": "import sys; print('bad', file=sys.stderr); "
                                                                      "sys.exit(3)"})
            assert not failed.is_error  # the tool worked; the program failed
            assert (failed.structured_content["exit_code"], failed.structured_content["stderr"]) == (3, "bad\n")

            # A runtime switch inside the session is refused, with the way out in the message.
            switched = await session.call_tool("execute_code", {"code": "console.log(1)", "runtime": "node"})
            assert switched.is_error and "python" in switched.content[0].text

            assert (await session.call_tool("reset_session", {})).structured_content == {"reset": True}
            fresh = await session.call_tool("execute_code", {"code": "console.log(typeof x)", "runtime": "node"})
            assert fresh.structured_content["stdout"] == "undefined\n"

            bad = await session.call_tool("execute_code", {"code": "1", "runtime": "cobol"})
            assert bad.is_error and "runtime" in bad.content[0].text


@pytest.mark.docker
async def test_ephemeral_server_with_files_and_stdin():
    async with stdio_client(server("--timeout", "1500")) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            assert [tool.name for tool in (await session.list_tools()).tools] == ["execute_code"]
            result = await session.call_tool("execute_code", {
                "runtime": "bash", "code": "cat data.txt; read line; echo \"stdin: $line\"",
                "files": {"data.txt": "from a file\n"}, "stdin": "hello\n"})
            assert result.structured_content["stdout"] == "from a file\nstdin: hello\n"
            slow = await session.call_tool("execute_code", {"code": "import time; time.sleep(10)",
                                                            "timeout_ms": 60_000})
            assert slow.structured_content["timed_out"] is True  # the server's 1.5 s cap won


@pytest.mark.docker
async def test_a_cancelled_call_kills_its_run():
    marker = new_marker()
    async with stdio_client(server()) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            with trio.move_on_after(60) as scope:
                async with trio.open_nursery() as nursery:
                    async def call() -> None:
                        await session.call_tool("execute_code", {"code": sleeper(marker)})

                    nursery.start_soon(call)
                    container = await trio.to_thread.run_sync(wait_running, marker)
                    nursery.cancel_scope.cancel()  # the SDK sends notifications/cancelled
            assert not scope.cancelled_caught
            dead = await trio.to_thread.run_sync(seconds_until_dead, marker)
            with trio.fail_after(GONE_WITHIN_S):
                while container in await managed_containers():
                    await trio.sleep(0.02)
            assert dead < GONE_WITHIN_S
            # The server goes on serving.
            assert (await session.call_tool("execute_code", {"code": "print('ok')"})).structured_content["stdout"] \
                == "ok\n"


async def test_with_docker_down_the_handshake_is_answered_and_calls_say_why():
    """Docker's socket does not exist: the SDK still connects and lists the tools, and a call fails with
    a tool error naming the socket and what to run, instead of the server exiting before initialize."""
    import os

    params = server()
    params.env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/isol8rt-test/docker.sock"}
    with trio.fail_after(60):
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                assert (await session.initialize()).server_info.name == "isol8rt"
                assert [tool.name for tool in (await session.list_tools()).tools] == ["execute_code"]
                result = await session.call_tool("execute_code", {"code": "print(1)"})
                assert result.is_error
                message = result.content[0].text
                assert "/nonexistent/isol8rt-test/docker.sock" in message and "isol8rt setup" in message
                await session.send_ping()  # still serving


@pytest.mark.docker
async def test_a_long_call_reports_progress():
    seen: list[tuple[float, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, message))

    async with stdio_client(server()) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool("execute_code", {"code": "import time; time.sleep(2.5); print('done')"},
                                             progress_callback=progress)
            assert result.structured_content["stdout"] == "done\n"
    assert seen, "no progress notification for a run of 2.5 s"
    assert [value for value, _ in seen] == sorted(value for value, _ in seen)
    assert all(message and message.startswith("execute_code: running for") for _, message in seen)
