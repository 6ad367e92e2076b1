"""`isol8rt setup --oci-runtime crun`: what is done to make crun usable (faked host), and, on the real
daemon, that the engine's sandboxes under crun keep every layer they have under runc and are reused only
after a verified reset."""

from __future__ import annotations

import json
import signal

import pytest
import trio

from isol8rt import DockerIsol8, ExecutionRequest, Isol8Options
from isol8rt import oci_runtime
from isol8rt.errors import SetupError
from isol8rt.types import SecurityConfig


def test_the_runtime_is_merged_into_what_daemon_json_holds():
    before = {"log-driver": "json-file", "runtimes": {"runsc": {"path": "/usr/bin/runsc"}}}
    after = oci_runtime.with_runtime(before, "crun", "/usr/bin/crun")
    assert after == {"log-driver": "json-file",
                     "runtimes": {"runsc": {"path": "/usr/bin/runsc"}, "crun": {"path": "/usr/bin/crun"}}}
    assert before["runtimes"] == {"runsc": {"path": "/usr/bin/runsc"}}  # not changed in place
    assert oci_runtime.with_runtime({}, "crun", "/x") == {"runtimes": {"crun": {"path": "/x"}}}


@pytest.mark.parametrize(("layout", "expected"), [
    ({"cgroup.controllers": "cpu memory"}, []),                                # pure v2
    ({"unified/cgroup.controllers": "hugetlb"}, ["hugetlb"]),                  # hybrid, a controller left in v2
    ({"unified/cgroup.controllers": "hugetlb misc"}, ["hugetlb", "misc"]),
    ({"unified/cgroup.controllers": ""}, []),                                  # hybrid, v2 empty: crun is fine
    ({"memory/tasks": ""}, []),                                                # pure v1
])
def test_hybrid_cgroup_controllers_are_found(tmp_path, layout, expected):
    for name, text in layout.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert oci_runtime.hybrid_v2_controllers(tmp_path) == expected


class FakeDocker:
    """A daemon that learns runtimes from daemon.json when it gets SIGHUP; containers exit 0."""

    def __init__(self, daemon_json, runtimes=("runc",)):
        self.daemon_json = daemon_json
        self.runtimes = set(runtimes)
        self.created = []

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False

    async def info(self):
        await trio.lowlevel.checkpoint()
        return type("Info", (), {"runtimes": {name: None for name in self.runtimes}})()

    def reload(self):
        self.runtimes |= set(json.loads(self.daemon_json.read_text())["runtimes"])

    async def create_container(self, spec):
        self.created.append(spec)
        return "c1"

    async def start_container(self, container_id):
        pass

    async def wait_container(self, container_id):
        return 0

    async def remove_container(self, container_id, force=True):
        pass


@pytest.fixture
def host(monkeypatch, tmp_path):
    daemon_json = tmp_path / "etc/docker/daemon.json"
    daemon_json.parent.mkdir(parents=True)
    daemon_json.write_text(json.dumps({"log-level": "warn"}))
    pid_file = tmp_path / "docker.pid"
    pid_file.write_text("4242\n")
    docker = FakeDocker(daemon_json)
    calls = {"apt": [], "signals": []}

    async def apt_install(packages, *, progress):
        calls["apt"].append(list(packages))

    def kill(pid, signum):
        calls["signals"].append((pid, signum))
        docker.reload()

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    monkeypatch.setattr(oci_runtime, "DAEMON_JSON", daemon_json)
    monkeypatch.setattr(oci_runtime, "DOCKER_PID", pid_file)
    monkeypatch.setattr(oci_runtime, "CGROUP_ROOT", tmp_path / "cgroup")
    monkeypatch.setattr(oci_runtime, "can_install_packages", lambda: True)
    monkeypatch.setattr(oci_runtime, "apt_install", apt_install)
    monkeypatch.setattr(oci_runtime.shutil, "which", lambda name, path=None: f"/usr/bin/{name}")
    monkeypatch.setattr(oci_runtime.os, "kill", kill)
    return docker, calls


async def test_crun_is_registered_and_dockerd_reloaded_then_proved(host):
    docker, calls = host
    lines = []
    await oci_runtime.register("crun", "isol8rt:python", client_factory=lambda: docker, progress=lines.append)
    assert json.loads(oci_runtime.DAEMON_JSON.read_text()) == {"log-level": "warn",
                                                               "runtimes": {"crun": {"path": "/usr/bin/crun"}}}
    assert calls["signals"] == [(4242, signal.SIGHUP)]
    [proof] = docker.created
    assert proof.host_config.runtime == "crun" and proof.entrypoint == ["/bin/true"]
    assert "ready" in lines[-1]


async def test_a_known_runtime_is_only_proved(host):
    docker, calls = host
    docker.runtimes.add("crun")
    before = oci_runtime.DAEMON_JSON.read_text()
    await oci_runtime.register("crun", "isol8rt:python", client_factory=lambda: docker, progress=lambda line: None)
    assert oci_runtime.DAEMON_JSON.read_text() == before and calls == {"apt": [], "signals": []}
    assert len(docker.created) == 1


async def test_a_daemon_json_that_is_not_json_is_left_alone(host):
    docker, _ = host
    oci_runtime.DAEMON_JSON.write_text("{ not json")
    with pytest.raises(SetupError, match="cannot be read as JSON"):
        await oci_runtime.register("crun", "isol8rt:python", client_factory=lambda: docker, progress=lambda line: None)
    assert oci_runtime.DAEMON_JSON.read_text() == "{ not json"


@pytest.mark.parametrize(("name", "env", "message"), [
    ("runsc", {}, "can install only crun"),
    ("crun", {"DOCKER_HOST": "tcp://10.0.0.9:2376"}, "register it on that host"),
])
async def test_what_cannot_be_done_here_says_what_to_do(host, monkeypatch, name, env, message):
    docker, calls = host
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SetupError, match=message):
        await oci_runtime.register(name, "isol8rt:python", client_factory=lambda: docker, progress=lambda line: None)
    assert calls == {"apt": [], "signals": []}


async def test_a_daemon_that_does_not_pick_it_up_is_reported(host, monkeypatch):
    docker, _ = host
    monkeypatch.setattr(docker, "reload", lambda: None)
    monkeypatch.setattr(oci_runtime, "RELOAD_TIMEOUT", 0.3)
    with pytest.raises(SetupError, match="did not pick up crun"):
        await oci_runtime.register("crun", "isol8rt:python", client_factory=lambda: docker, progress=lambda line: None)


# -- the real daemon -------------------------------------------------------------------------------------

_LAYERS = ("import os; s = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l); "
           "print(os.getuid(), os.getgid(), s['Seccomp'].strip(), s['NoNewPrivs'].strip(), s['CapEff'].strip()); "
           "open('/sandbox/left', 'w').write('x'); import subprocess; "
           "subprocess.Popen(['sleep', '300'], start_new_session=True)")


@pytest.mark.docker
async def test_sandboxes_under_crun_keep_their_layers_and_are_reset():
    await oci_runtime.register("crun", "isol8rt:python", progress=lambda line: None)
    options = Isol8Options(pool_size=1, security=SecurityConfig(oci_runtime="crun"))
    async with DockerIsol8(options) as engine:
        first = await engine.execute(ExecutionRequest(code=_LAYERS))
        assert first.exit_code == 0, first.stderr
        assert first.stdout.split() == ["1000", "1000", "2", "1", "0000000000000000"]
        after = await engine.execute(ExecutionRequest(
            code="import os; print(os.path.exists('/sandbox/left'), "
                 "sum(1 for p in os.listdir('/proc') if p.isdigit() and "
                 "open(f'/proc/{p}/cmdline', 'rb').read().startswith(b'sleep')))"))
        assert after.stdout.split() == ["False", "0"], after
