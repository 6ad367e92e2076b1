"""One set of scenarios, four ways: the sync face (isol8rt.Sandbox) and the asyncio face (isol8rt.aio.Isol8),
each over a local engine and over a real `isol8rt serve` server on loopback (``remote=``). Whatever a user
writes against one must run unchanged against the other.

The scenarios are coroutines run by asyncio.run: the asyncio face's calls are awaited, the sync face's
block (in a test, harmlessly); :func:`value` and :func:`events` hide that one difference.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import uuid
from typing import Any, Awaitable, Callable

import pytest
import trio

import isol8rt
from isol8rt import ExecutionRequest, InvalidRequest, RemoteIsol8, SessionError, StreamEvent
from isol8rt.server import Server

from ..conftest import needs_docker
from ..server.conftest import MASTER, config


class ServerThread:
    """A real server (the one `isol8rt serve` runs) in a trio run on a thread of its own, so that sync
    code can use it."""

    def __init__(self, tmp_path) -> None:
        self.server = Server(config(tmp_path))
        self.port: int | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="test-server", daemon=True)

    def _main(self) -> None:
        async def serve() -> None:
            async with trio.open_nursery() as nursery:
                self.port = await nursery.start(self.server.run)
                self._token = trio.lowlevel.current_trio_token()
                self._ready.set()

        try:
            trio.run(serve)
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
        finally:
            self._ready.set()

    def start(self) -> str:
        self._thread.start()
        self._ready.wait()
        if self.port is None:
            raise RuntimeError(f"the server did not start: {self._error!r}")
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._token is not None:
            self._token.run_sync_soon(self.server.stop)
        self._thread.join()


@pytest.fixture(scope="module")
@needs_docker
def server_url(tmp_path_factory):
    server = ServerThread(tmp_path_factory.mktemp("server"))
    url = server.start()
    yield url
    server.stop()


@pytest.fixture(scope="module", params=["sync-local", "sync-remote", "aio-local", "aio-remote"])
@needs_docker
def face(request):
    """A started face; a remote one talks to the module's server (taken only when needed)."""
    kind, where = request.param.split("-")
    kwargs: dict[str, Any] = ({"remote": request.getfixturevalue("server_url"), "api_key": MASTER}
                              if where == "remote" else {"pool_size": 1})
    if kind == "sync":
        with isol8rt.Sandbox(**kwargs) as sandbox:
            yield sandbox
    else:
        engine = isol8rt.aio.Isol8(**kwargs)
        asyncio.run(engine.start())
        yield engine
        asyncio.run(engine.stop())


async def value(outcome: Any) -> Any:
    """A call's value, whichever face made it (awaited for the asyncio face)."""
    return await outcome if inspect.isawaitable(outcome) else outcome


async def events(stream: Any) -> list[StreamEvent]:
    if hasattr(stream, "__aiter__"):
        return [event async for event in stream]
    return list(stream)


def run(scenario: Callable[[Any], Awaitable[None]], face: Any) -> None:
    asyncio.run(scenario(face))


def fresh_id() -> str:
    return f"faces-{uuid.uuid4().hex[:10]}"


def test_the_engine_is_the_one_asked_for(face, request):
    assert isinstance(face.engine, RemoteIsol8) == request.node.callspec.params["face"].endswith("remote")


def test_execute_by_request_text_or_keywords(face):
    async def scenario(face: Any) -> None:
        assert (await value(face.execute(ExecutionRequest(code="print(6 * 7)")))).stdout == "42\n"
        assert (await value(face.execute("print('text')"))).stdout == "text\n"
        result = await value(face.execute(code="echo $X; exit 3", runtime="bash", env={"X": "kw"}))
        assert (result.stdout, result.exit_code) == ("kw\n", 3)
        result = await value(face.execute(code="print(open('data.txt').read())", files={"data.txt": "from a file"}))
        assert result.stdout == "from a file\n"

    run(scenario, face)


def test_execute_stream(face):
    async def scenario(face: Any) -> None:
        seen = await events(face.execute_stream(code="echo a; echo b >&2; exit 5", runtime="bash"))
        assert "".join(e.data for e in seen if e.type == "stdout") == "a\n"
        assert "".join(e.data for e in seen if e.type == "stderr") == "b\n"
        assert (seen[-1].type, seen[-1].data) == ("exit", "5")

    run(scenario, face)


def test_interactive_stream_takes_stdin(face):
    async def scenario(face: Any) -> None:
        stream = face.execute_stream(code="import sys\nprint(sys.stdin.read().upper())", interactive=True)
        assert await value(stream.write_stdin("shout\n")) is True
        assert await value(stream.close_stdin()) is True
        seen = await events(stream)
        assert "".join(e.data for e in seen if e.type == "stdout") == "SHOUT\n\n"
        assert seen[-1].type == "exit"

    run(scenario, face)


def test_a_session_keeps_state_and_files(face):
    async def scenario(face: Any) -> None:
        session = face.session(fresh_id())
        assert (await value(session.execute("x = 42"))).exit_code == 0
        assert (await value(session.execute("print(x)"))).stdout == "42\n"
        await value(session.put_file("in.bin", b"\x00binary"))
        assert await value(session.get_file("in.bin")) == b"\x00binary"
        assert (await value(session.execute("print(len(open('in.bin', 'rb').read()))"))).stdout == "7\n"
        seen = await events(session.execute_stream("print(x + 1)"))
        assert "".join(e.data for e in seen if e.type == "stdout") == "43\n"
        assert session.id in [info.id for info in await value(face.sessions())]
        with pytest.raises(FileNotFoundError):
            await value(session.get_file("nothing-here.txt"))
        assert await value(session.close()) is True
        assert session.id not in [info.id for info in await value(face.sessions())]
        assert await value(face.close_session(session.id)) is False

    run(scenario, face)


def test_files_put_before_a_session_s_first_run_are_there_for_it(face):
    """The local engine stages them; a server makes a session at its first run, so the client stages them
    and sends them with that run."""
    async def scenario(face: Any) -> None:
        session = face.session(fresh_id())
        await value(session.put_file("early.txt", "staged"))
        assert await value(session.get_file("early.txt")) == b"staged"
        result = await value(session.execute(code="cat early.txt; echo; cat /sandbox/given.txt", runtime="bash",
                                             files={"given.txt": "given"}))
        assert result.stdout == "staged\ngiven"
        assert await value(session.get_file("early.txt")) == b"staged"
        assert await value(session.close()) is True

    run(scenario, face)


def test_errors_are_the_library_s(face):
    async def scenario(face: Any) -> None:
        with pytest.raises(InvalidRequest):
            await value(face.execute(code="x", runtime="cobol"))
        with pytest.raises(SessionError):
            await value(face.get_file("nothing.txt"))  # no session named, none by default
        with pytest.raises(TypeError):
            await value(face.execute(ExecutionRequest(code="1"), runtime="node"))

    run(scenario, face)


def test_giving_up_on_a_call_raises_timeout(face):
    """The caller's own bound (cancel_after for the sync face, asyncio.timeout for the asyncio one) kills
    the run and raises TimeoutError, well before the program's own 30 s."""
    async def scenario(face: Any) -> None:
        program = "import time; time.sleep(30)"
        with pytest.raises(TimeoutError):
            if isinstance(face, isol8rt.Sandbox):
                face.execute(program, cancel_after=1)
            else:
                async with asyncio.timeout(1):
                    await face.execute(program)
        assert (await value(face.execute("print('still usable')"))).stdout == "still usable\n"

    run(scenario, face)


def test_remote_faces_need_an_url_for_a_key():
    with pytest.raises(TypeError, match="remote="):
        isol8rt.Sandbox(api_key="k")
    with pytest.raises(TypeError, match="not both"):
        isol8rt.aio.Isol8(engine=RemoteIsol8("http://127.0.0.1:1"), remote="http://127.0.0.1:1")


def test_remote_faces_send_only_the_options_given():
    sandbox = isol8rt.Sandbox(remote="http://127.0.0.1:1", timeout_ms=5000, network="none")
    assert sandbox.options == {"timeoutMs": 5000, "network": "none"}
    assert isol8rt.aio.Isol8(remote="http://127.0.0.1:1").options is None


