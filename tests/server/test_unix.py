"""The local engine's listener: a private socket, one engine per socket, a dead engine's socket replaced."""

from __future__ import annotations

import os
import socket

import pytest
import trio

from isol8rt.local.paths import NotPrivate, pid_file
from isol8rt.server.unix import EngineRunning, UnixEndpoint


async def test_the_socket_is_0600_in_a_0700_directory_and_removed_on_close(tmp_path):
    path = tmp_path / "engine" / "engine.sock"
    endpoint = UnixEndpoint(path)
    listener = endpoint.open()
    try:
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
        assert pid_file(path).read_text() == f"{os.getpid()}\n"
    finally:
        await listener.aclose()
        endpoint.close()
    assert not path.exists() and not pid_file(path).exists()


async def test_a_second_engine_on_the_same_socket_is_refused(tmp_path):
    path = tmp_path / "engine" / "engine.sock"
    first = UnixEndpoint(path)
    listener = first.open()
    try:
        with pytest.raises(EngineRunning, match="an engine already serves"):
            UnixEndpoint(path).open()
        assert path.exists()  # the first one's socket was left alone
    finally:
        await listener.aclose()
        first.close()


async def test_a_dead_engines_socket_is_replaced(tmp_path):
    path = tmp_path / "engine" / "engine.sock"
    path.parent.mkdir(0o700)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    os.chmod(path, 0o600)
    stale.close()  # the engine died: its file stays, nothing listens
    endpoint = UnixEndpoint(path)
    listener = endpoint.open()
    try:
        client = socket.socket(socket.AF_UNIX)
        client.connect(str(path))  # the new one listens (the dead one's refused connections)
        client.close()
    finally:
        await listener.aclose()
        endpoint.close()


def test_a_loose_or_foreign_socket_is_not_replaced(tmp_path):
    path = tmp_path / "engine" / "engine.sock"
    path.parent.mkdir(0o700)
    path.write_text("not a socket")
    with pytest.raises(NotPrivate, match="is not a socket"):
        UnixEndpoint(path).open()
    assert path.read_text() == "not a socket"
    path.unlink()
    path.parent.chmod(0o755)
    with pytest.raises(NotPrivate, match="mode 0755"):
        UnixEndpoint(path).open()


async def test_the_listener_accepts_on_the_socket(tmp_path):
    path = tmp_path / "engine" / "engine.sock"
    endpoint = UnixEndpoint(path)
    listener = endpoint.open()
    try:
        client = trio.socket.socket(trio.socket.AF_UNIX)
        await client.connect(str(path))
        stream = await listener.accept()
        await stream.aclose()
        client.close()
    finally:
        await listener.aclose()
        endpoint.close()


async def test_an_idle_engine_stops_itself_and_removes_its_socket(tmp_path, monkeypatch, autojump_clock):
    """``--idle-exit``: unused for that long (virtual time here), the server stops on its own; a connection
    in between puts the stop off."""
    import functools

    from isol8rt import DockerIsol8, Isol8Options
    from isol8rt.server import Server, ServerConfig
    from isol8rt.server import engines as engines_module
    from isol8rt.testing import AgentScript, open_memory_backend

    path = tmp_path / "e" / "engine.sock"
    async with open_memory_backend(AgentScript()) as backend:
        monkeypatch.setattr(engines_module, "DockerIsol8", functools.partial(DockerIsol8, backend=backend))
        server = Server(ServerConfig(socket_path=path, open_access=True, exact_options=True, idle_exit_s=60,
                                     options=Isol8Options(pool_size=0), prewarm=[], state_dir=tmp_path / "state"))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            assert path.exists()
            await trio.sleep(45)
            client = trio.socket.socket(trio.socket.AF_UNIX)
            await client.connect(str(path))
            await trio.sleep(30)  # 75 s since the start, 30 since the connection: still serving
            assert path.exists() and not server._stop.is_set()
            client.close()
            with trio.fail_after(120):
                await server._stop.wait()
        assert trio.current_time() >= 75 + 60 - 1
    assert not path.exists()
