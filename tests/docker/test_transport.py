"""Endpoints, the keep-alive pool and hijacked streams, against a fake daemon on a unix socket that
replays recorded answers."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing

from isol8rt.docker import DaemonNotRunning, DaemonTimeout, DockerClient, DockerError, NotFound, StreamClosed


def answer(body: bytes = b"OK", status: str = "200 OK", content_type: bytes = b"text/plain") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: ".encode()
        + content_type
        + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


# --------------------------------------------------------------------------------------------------
# connecting


async def test_a_missing_socket_means_docker_is_not_running(tmp_path):
    path = tmp_path / "nothing.sock"
    async with DockerClient(f"unix://{path}") as docker:
        with pytest.raises(DaemonNotRunning) as caught:
            await docker.ping()
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "isol8rt setup" in message


async def test_a_socket_nobody_listens_on_means_docker_is_not_running(tmp_path):
    path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # bound, never listening: connecting is refused
    try:
        async with DockerClient(f"unix://{path}") as docker:
            with pytest.raises(DaemonNotRunning, match="no answer on"):
                await docker.version()
    finally:
        stale.close()


async def test_a_tcp_port_nobody_listens_on_means_docker_is_not_running():
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # reserved, never listening: connecting is refused
    try:
        host = f"tcp://127.0.0.1:{closed.getsockname()[1]}"
        async with DockerClient(host) as docker:
            with pytest.raises(DaemonNotRunning, match=f"cannot reach Docker at {host}"):
                await docker.ping()
    finally:
        closed.close()


# --------------------------------------------------------------------------------------------------
# the pool


async def test_sequential_requests_share_one_connection(replay_daemon, recording):
    for _ in range(5):
        replay_daemon.answer(recording("ping").response)
    async with DockerClient(f"unix://{replay_daemon.path}") as docker:
        for _ in range(5):
            await docker.ping()
        assert docker._pool.connections_opened == 1
    assert replay_daemon.connections == 1 and len(replay_daemon.requests) == 5


async def test_idle_connections_are_capped(replay_daemon, recording):
    for _ in range(7):
        replay_daemon.answer(recording("ping").response)
    async with DockerClient(f"unix://{replay_daemon.path}") as docker:
        docker._pool.max_idle = 2
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(docker.ping)
        assert docker._pool.connections_opened == 5
        assert len(docker._pool._idle) == 2
        # Three of the five were closed on return; the two kept carry the next requests.
        await docker.ping()
        await docker.ping()
        assert docker._pool.connections_opened == 5
    assert len(replay_daemon.requests) == 7


async def test_a_connection_the_daemon_closed_while_idle_is_replaced(replay_daemon, recording):
    replay_daemon.answer(recording("ping").response, close=True)
    replay_daemon.answer(recording("ping").response)
    async with DockerClient(f"unix://{replay_daemon.path}") as docker:
        await docker.ping()
        await trio.testing.wait_all_tasks_blocked()  # let the fake daemon hang up
        await docker.ping()
        assert docker._pool.connections_opened == 2


async def test_an_answer_that_never_completes_times_out_and_its_connection_is_dropped(replay_daemon, recording):
    replay_daemon.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{", hold=True)
    replay_daemon.answer(recording("ping").response)
    async with DockerClient(f"unix://{replay_daemon.path}", timeout=0.2) as docker:
        with pytest.raises(DaemonTimeout, match="GET /version"):
            await docker.version()
        await docker.ping()
        assert docker._pool.connections_opened == 2


async def test_a_daemon_that_hangs_up_mid_answer_is_stream_closed(replay_daemon, recording):
    replay_daemon.answer(recording("version").response[:-20], close=True)
    async with DockerClient(f"unix://{replay_daemon.path}") as docker:
        with pytest.raises(StreamClosed):
            await docker.version()


async def test_a_daemon_that_breaks_http_is_a_docker_error_not_stream_closed(replay_daemon):
    replay_daemon.answer(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    async with DockerClient(f"unix://{replay_daemon.path}") as docker:
        with pytest.raises(DockerError, match="malformed HTTP") as caught:
            await docker.version()
    assert not isinstance(caught.value, StreamClosed)


async def test_a_closed_client_refuses_new_requests(replay_daemon, recording):
    replay_daemon.answer(recording("ping").response)
    docker = DockerClient(f"unix://{replay_daemon.path}")
    await docker.ping()
    await docker.aclose()
    await docker.aclose()
    with pytest.raises(DockerError, match="closed"):
        await docker.ping()


# --------------------------------------------------------------------------------------------------
# hijacked streams


async def test_frames_that_came_with_the_101_are_received_without_waiting(replay_daemon, recording):
    replay_daemon.answer(recording("exec_101_merged").response, hold=True)
    replay_daemon.answer(recording("ping").response)
    async with DockerClient(f"unix://{replay_daemon.path}") as docker:
        stream = await docker.exec_start("abc")
        # The fake daemon sends nothing more until it sees EOF: the frames can only come from the
        # bytes that arrived with the 101.
        got: dict[int, bytes] = {}
        while len(got) < 2:
            for number, payload in await stream.receive():
                got[number] = got.get(number, b"") + payload
        assert got == {1: b"out\n", 2: b"err\n"}
        await stream.send_all(b"to stdin")
        await stream.send_eof()
        assert await stream.receive() == []
        await stream.aclose()
        await stream.aclose()
        with pytest.raises(StreamClosed):
            await stream.receive()
        # The hijacked connection never went back to the pool.
        await docker.ping()
        assert docker._pool.connections_opened == 2
    request, body = replay_daemon.requests[0]
    assert request.target == b"/v1.41/exec/abc/start" and body == b'{"Detach":false,"Tty":false}'
    assert replay_daemon.hijacked == [bytearray(b"to stdin")]


async def test_concurrent_sends_do_not_interleave(replay_daemon, recording):
    replay_daemon.answer(recording("exec_101_merged").response, hold=True)
    block = 256 * 1024
    async with DockerClient(f"unix://{replay_daemon.path}") as docker, await docker.exec_start("abc") as stream:

        async def send(fill: bytes) -> None:
            for _ in range(4):
                await stream.send_all(fill * block)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send, b"A")
            nursery.start_soon(send, b"B")
        await stream.send_eof()
        while await stream.receive():
            pass
    received = bytes(replay_daemon.hijacked[0])
    assert len(received) == 8 * block
    blocks = [received[i : i + block] for i in range(0, len(received), block)]
    assert all(chunk in (b"A" * block, b"B" * block) for chunk in blocks)


async def test_an_attach_to_a_missing_container_is_not_found(replay_daemon, recording):
    replay_daemon.answer(recording("inspect_404").response)
    async with DockerClient(f"unix://{replay_daemon.path}") as docker:
        with pytest.raises(NotFound):
            await docker.attach_container("nope")
    request, _ = replay_daemon.requests[0]
    assert request.target == b"/v1.41/containers/nope/attach?stream=1&stdin=1&stdout=1&stderr=1"
