"""ensure_daemon: nothing to do when Docker answers; otherwise install and start dockerd (root on Debian
only), or say how to get Docker running. The host is faked; no daemon is started or stopped here."""

from __future__ import annotations

import sys

import pytest
import trio

from isol8rt import daemon
from isol8rt.docker import DaemonNotRunning, DockerClient, DockerError
from isol8rt.errors import SetupError


class FakeClient:
    """Answers /_ping once ``answers_after`` pings have failed (never, when None)."""

    def __init__(self, state):
        self._state = state

    async def ping(self):
        await trio.lowlevel.checkpoint()
        self._state["pings"] += 1
        after = self._state["answers_after"]
        if after is None or self._state["pings"] <= after:
            raise DaemonNotRunning("Docker is not running (no such file /var/run/docker.sock)")

    async def aclose(self):
        self._state["closed"] += 1


def fake_factory(answers_after):
    state = {"pings": 0, "closed": 0, "answers_after": answers_after}
    return state, lambda: FakeClient(state)


class FakeProcess:
    def __init__(self, returncode=None):
        self.returncode = returncode

    def poll(self):
        return self.returncode


@pytest.fixture
def host(monkeypatch, tmp_path):
    """Root on Debian with dockerd installed; nothing is really installed or started."""
    calls = {"apt": [], "started": []}

    async def apt_install(packages, *, progress):
        calls["apt"].append(list(packages))

    def start_detached(argv, log_path):
        calls["started"].append(argv)
        return calls.get("process", FakeProcess())

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(daemon, "can_install_packages", lambda: True)
    monkeypatch.setattr(daemon, "apt_install", apt_install)
    monkeypatch.setattr(daemon, "_start_detached", start_detached)
    monkeypatch.setattr(daemon.shutil, "which", lambda name, path=None: f"/usr/sbin/{name}")
    monkeypatch.setattr(daemon, "DOCKERD_LOG", tmp_path / "dockerd.log")
    monkeypatch.setattr(daemon, "DEFAULT_SOCKET_PATH", tmp_path / "docker.sock")
    monkeypatch.setattr(daemon, "POLL_INTERVAL", 0.01)
    return calls


async def test_an_answering_daemon_is_left_alone(host):
    state, factory = fake_factory(answers_after=0)
    lines = []
    await daemon.ensure_daemon(factory, progress=lines.append)
    assert state["pings"] == 1 and state["closed"] == 1
    assert host == {"apt": [], "started": []} and lines == []


async def test_dockerd_is_started_and_waited_for(host):
    state, factory = fake_factory(answers_after=5)
    lines = []
    await daemon.ensure_daemon(factory, progress=lines.append)
    assert host["started"] == [["/usr/sbin/dockerd"]] and host["apt"] == []
    assert state["pings"] == 6 and state["closed"] == 6
    assert any("starting dockerd" in line for line in lines)


async def test_docker_io_is_installed_when_dockerd_is_missing(host, monkeypatch):
    installed = []

    async def apt_install(packages, *, progress):
        installed.extend(packages)

    monkeypatch.setattr(daemon, "apt_install", apt_install)
    monkeypatch.setattr(daemon.shutil, "which", lambda name, path=None: "/usr/sbin/dockerd" if installed else None)
    _, factory = fake_factory(answers_after=2)
    await daemon.ensure_daemon(factory, progress=lambda line: None)
    assert installed == ["docker.io"]
    assert host["started"] == [["/usr/sbin/dockerd"]]


async def test_not_root_or_not_debian_says_how_to_install_docker(host, monkeypatch):
    monkeypatch.setattr(daemon, "can_install_packages", lambda: False)
    _, factory = fake_factory(answers_after=None)
    with pytest.raises(SetupError, match=r"Docker is not running: install Docker Engine .*systemctl start docker") as failure:
        await daemon.ensure_daemon(factory, progress=lambda line: None)
    assert "\n" not in str(failure.value)
    assert host["started"] == [] and host["apt"] == []


async def test_a_socket_this_user_may_not_open_is_not_a_missing_daemon(host, monkeypatch):
    daemon.DEFAULT_SOCKET_PATH.touch()
    monkeypatch.setattr(daemon.os, "access", lambda path, mode: False)
    _, factory = fake_factory(answers_after=None)
    with pytest.raises(SetupError, match="Docker is running but this user may not use .*docker group"):
        await daemon.ensure_daemon(factory, progress=lambda line: None)
    assert host["started"] == []


async def test_a_remote_docker_host_is_not_started_here(host, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.5:2375")
    _, factory = fake_factory(answers_after=None)
    with pytest.raises(SetupError, match="DOCKER_HOST=tcp://10.0.0.5:2375 does not answer"):
        await daemon.ensure_daemon(factory, progress=lambda line: None)
    assert host["started"] == []


async def test_a_dockerd_that_exits_is_reported_with_its_log(host):
    daemon.DOCKERD_LOG.write_text("starting\nfailed to start daemon: pid file found, ensure docker is not running\n")
    host["process"] = FakeProcess(returncode=1)
    _, factory = fake_factory(answers_after=None)
    with pytest.raises(SetupError, match="dockerd exited with status 1 .*pid file found") as failure:
        await daemon.ensure_daemon(factory, progress=lambda line: None)
    assert "\n" not in str(failure.value)


async def test_a_dockerd_that_never_answers_times_out_with_its_log(host, monkeypatch):
    monkeypatch.setattr(daemon, "START_TIMEOUT", 0.2)
    daemon.DOCKERD_LOG.write_text("level=info msg=\"Loading containers: start.\"\n")
    _, factory = fake_factory(answers_after=None)
    with pytest.raises(SetupError, match=r"did not answer within 0.2 s .*Loading containers"):
        await daemon.ensure_daemon(factory, progress=lambda line: None)


async def test_a_docker_host_the_client_cannot_speak_is_a_setup_error(host):
    def factory():
        raise DockerError("DOCKER_HOST 'ssh://box' is not supported")

    with pytest.raises(SetupError, match="ssh://box"):
        await daemon.ensure_daemon(factory, progress=lambda line: None)


def test_the_daemon_is_started_detached(tmp_path):
    log = tmp_path / "daemon.log"
    log.write_text("earlier run\n")
    script = "import os, sys; print('sid', os.getsid(0) == os.getpid(), os.readlink('/proc/self/fd/0'), flush=True)"
    process = daemon._start_detached([sys.executable, "-c", script], log)
    try:
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert log.read_text() == "earlier run\nsid True /dev/null\n"


def test_the_sync_helper_runs_the_check(host):
    state, factory = fake_factory(answers_after=0)
    daemon.ensure_daemon_sync(factory, progress=lambda line: None)
    assert state["pings"] == 1


@pytest.mark.docker
async def test_a_running_daemon_needs_nothing():
    lines = []
    await daemon.ensure_daemon(progress=lines.append)
    assert lines == []


async def test_a_docker_context_elsewhere_is_not_started_here(host, monkeypatch, tmp_path):
    # The current context of the docker CLI names another host: that daemon is not this machine's to start.
    import hashlib
    import json

    config = tmp_path / "docker-config"
    meta = config / "contexts" / "meta" / hashlib.sha256(b"remote").hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": "remote", "Endpoints": {"docker": {"Host": "tcp://10.0.0.6:2375"}}}))
    (config / "config.json").write_text(json.dumps({"currentContext": "remote"}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    _, factory = fake_factory(answers_after=None)
    with pytest.raises(SetupError, match=r"tcp://10\.0\.0\.6:2375 \(context remote\) does not answer"):
        await daemon.ensure_daemon(factory, progress=lambda line: None)
    assert host["started"] == [] and host["apt"] == []
