"""The Docker client over TLS, as a remote ``DOCKER_HOST=tcp://...:2376`` with ``DOCKER_TLS_VERIFY``: the
daemon is this machine's, behind a mutual-TLS front (standins.py). Attach-before-start (the engine's every
run) must work over it, and each way TLS can fail must be one clear line that names the endpoint."""

from __future__ import annotations

import pytest
import trio

from isol8rt import DockerIsol8, ExecutionRequest, Isol8Options
from isol8rt.docker import DaemonNotRunning, DaemonRefused, DockerClient

from .standins import make_certificates, serve_tls_front, write_fake_ssh

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def front(nursery, certificates):
    port = await nursery.start(serve_tls_front, certificates)
    return f"tcp://127.0.0.1:{port}"


def _tls_environment(monkeypatch, host: str, cert_path) -> None:
    monkeypatch.setenv("DOCKER_HOST", host)
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(cert_path))


async def test_the_client_speaks_to_a_tls_daemon(front, certificates, monkeypatch):
    _tls_environment(monkeypatch, front, certificates.client)
    with trio.fail_after(30):
        async with DockerClient() as docker:
            await docker.ping()
            assert (await docker.version()).os == "linux"
            await docker.ping()   # a kept-alive TLS connection carries the next request
            assert docker._pool.connections_opened == 1


async def test_an_engine_runs_code_through_a_tls_daemon(front, certificates, monkeypatch):
    # Every run of the engine attaches before start and keeps that hijacked stream: over TLS here.
    _tls_environment(monkeypatch, front, certificates.client)
    with trio.fail_after(120):
        async with DockerIsol8(Isol8Options(pool_size=0)) as engine:
            first = await engine.execute(ExecutionRequest(code="print(6 * 7)"))
            second = await engine.execute(ExecutionRequest(code="import sys; print(sys.stdin.read())",
                                                           stdin="through TLS"))
    assert (first.exit_code, first.stdout) == (0, "42\n"), first.stderr
    assert second.stdout == "through TLS\n", second.stderr


@pytest.mark.parametrize(("who", "said"), [
    ("stranger", ["client certificate"]),       # the daemon does not trust this client's certificate
    ("doubter", ["not trusted", "ca.pem"]),     # this client does not trust the daemon's
])
async def test_a_certificate_either_side_refuses_is_one_clear_line(front, certificates, monkeypatch, who, said):
    _tls_environment(monkeypatch, front, getattr(certificates, who))
    with trio.fail_after(30):
        async with DockerClient() as docker:
            with pytest.raises(DaemonRefused) as caught:
                await docker.ping()
    message = str(caught.value)
    assert "\n" not in message and front in message and all(words in message for words in said), message


async def test_an_engine_with_a_wrong_certificate_fails_with_one_line(front, certificates, monkeypatch):
    _tls_environment(monkeypatch, front, certificates.stranger)
    with trio.fail_after(60):
        with pytest.raises(Exception) as caught:
            async with DockerIsol8(Isol8Options(pool_size=0)) as engine:
                await engine.execute(ExecutionRequest(code="print(1)"))
    message = str(caught.value)
    assert "\n" not in message.strip() and "client certificate" in message, repr(message)


async def test_a_tls_host_that_does_not_answer_says_where(certificates, monkeypatch):
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))   # reserved, never listening
    host = f"tcp://127.0.0.1:{closed.getsockname()[1]}"
    try:
        _tls_environment(monkeypatch, host, certificates.client)
        async with DockerClient() as docker:
            with pytest.raises(DaemonNotRunning, match=f"cannot reach Docker at {host}"):
                await docker.ping()
    finally:
        closed.close()



async def test_a_tls_daemon_that_hangs_up_before_answering_names_the_client_certificate(
        nursery, certificates, monkeypatch):
    # As dockerd (Go's TLS 1.3) does with a client certificate it refuses: the handshake completes on
    # the client's side, then the daemon hangs up; the alert it sent is often lost to the reset.
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificates.server_cert), str(certificates.server_key))

    async def hang_up(tcp: trio.SocketStream) -> None:
        tls = trio.SSLStream(tcp, context, server_side=True)
        await tls.do_handshake()
        await trio.aclose_forcefully(tcp)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    nursery.start_soon(trio.serve_listeners, hang_up, listeners)
    host = f"tcp://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
    _tls_environment(monkeypatch, host, certificates.client)
    with trio.fail_after(30):
        async with DockerClient() as docker:
            with pytest.raises(DaemonRefused) as caught:
                await docker.ping()
    assert str(caught.value).startswith(f"Docker at {host} accepted the TLS connection, then ")
    assert "before answering: it most likely refused the client certificate" in str(caught.value)

# --------------------------------------------------------------------------------------------------
# ssh://: the client runs `ssh ... -- host docker system dial-stdio` and speaks HTTP over its stdio.
# The ssh here is a stand-in (ISOL8RT_SSH_COMMAND, as GIT_SSH_COMMAND for git) that checks the
# arguments the client gives ssh and runs the far side's command locally: no sshd on this machine.



@pytest.fixture
def fake_ssh(tmp_path, monkeypatch):
    script, log = write_fake_ssh(tmp_path, "build-box")
    monkeypatch.setenv("ISOL8RT_SSH_COMMAND", str(script))
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    return log


async def test_an_engine_runs_code_through_ssh(fake_ssh, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "ssh://me@build-box:2222")
    with trio.fail_after(120):
        async with DockerIsol8(Isol8Options(pool_size=0)) as engine:
            done = await engine.execute(ExecutionRequest(code="import sys; print(sys.stdin.read()[::-1])",
                                                         stdin="hss revo"))
    assert (done.exit_code, done.stdout) == (0, "over ssh\n"), done.stderr
    argv = fake_ssh.read_text().split()
    assert argv[argv.index("-l") + 1] == "me" and argv[argv.index("-p") + 1] == "2222"
    assert argv[argv.index("--"):] == ["--", "build-box", "docker", "system", "dial-stdio"]


async def test_an_ssh_that_fails_says_what_ssh_said(fake_ssh, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "ssh://nowhere.invalid")
    with trio.fail_after(30):
        async with DockerClient() as docker:
            with pytest.raises(DaemonRefused) as caught:
                await docker.ping()
    message = str(caught.value)
    assert "\n" not in message and "ssh://nowhere.invalid" in message
    assert "Could not resolve hostname nowhere.invalid" in message


async def test_ssh_processes_do_not_outlive_their_connections(fake_ssh, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "ssh://build-box")
    with trio.fail_after(30):
        async with DockerClient() as docker:
            for _ in range(3):
                await docker.ping()
            assert docker._pool.connections_opened == 1   # kept alive: one ssh for all three
        from isol8rt.docker import _transport

        for process in list(_transport._killed):
            await process.wait()   # killed when the client closed: reaped, not left running
        _transport._reap_killed()
        assert _transport._killed == []
