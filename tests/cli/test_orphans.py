"""Containers of a killed `isol8rt run` are removed by the next run (cleanup.autoPrune), sessions' never;
driven with instance files of real (dead and live) processes and a fake Docker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import msgspec
import pytest

from isol8rt.cli.orphans import InstanceFile, dead_runs, sweep
from isol8rt.docker._models import ContainerSummary
from isol8rt.runtimes import LABEL_ENGINE, LABEL_NODE, LABEL_SESSION
from isol8rt.server.orphans import Instance, process_started


class FakeDocker:
    def __init__(self, containers: list[ContainerSummary]) -> None:
        self.containers = {c.id: c for c in containers}

    async def list_containers(self, *, all=True, labels=None):
        [(key, value)] = labels.items()
        return [c for c in self.containers.values() if (c.labels or {}).get(key) == value]

    async def remove_container(self, container_id, *, force=True):
        del self.containers[container_id]


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def write(directory, name: str, instance: Instance) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.json").write_bytes(msgspec.json.encode(instance))


async def test_a_dead_runs_containers_go_and_its_sessions_stay(tmp_path):
    write(tmp_path, "dead", Instance(pid=dead_pid(), started="1", engines=["e-dead"]))
    mine = InstanceFile(tmp_path)  # this process: alive
    mine.add_engine("e-live")
    docker = FakeDocker([
        ContainerSummary(id="pooled", labels={LABEL_ENGINE: "e-dead"}),
        ContainerSummary(id="session", labels={LABEL_ENGINE: "e-dead", LABEL_SESSION: "cli-default"}),
        ContainerSummary(id="live", labels={LABEL_ENGINE: "e-live"}),
    ])
    assert [path.name for path, _ in dead_runs(tmp_path)] == ["dead.json"]
    assert await sweep(tmp_path, docker) == 1
    assert set(docker.containers) == {"session", "live"}
    assert not (tmp_path / "dead.json").exists() and mine.path.exists()
    assert dead_runs(tmp_path) == []
    mine.remove()


async def test_nothing_recorded_nothing_asked(tmp_path):
    class NoDocker:
        async def list_containers(self, **_):
            raise AssertionError("Docker asked with no dead run")

    assert await sweep(tmp_path / "missing", NoDocker()) == 0
    write(tmp_path, "me", Instance(pid=os.getpid(), started=process_started(os.getpid()), engines=["e"]))
    assert await sweep(tmp_path, NoDocker()) == 0


async def test_an_unreadable_instance_file_is_removed(tmp_path):
    (tmp_path / "junk.json").write_text("{not json")
    assert await sweep(tmp_path, FakeDocker([])) == 0
    assert not (tmp_path / "junk.json").exists()


@pytest.mark.docker
async def test_the_next_run_removes_a_killed_runs_container(tmp_path):
    from isol8rt.docker import DockerClient

    env = {**os.environ, "HOME": str(tmp_path)}
    command = [sys.executable, "-m", "isol8rt", "run", "-e", "print('up', flush=True); import time; time.sleep(120)"]
    killed = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert killed.stdout.readline() == "up\n"  # its container is running
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    [record] = (tmp_path / ".isol8rt" / "cli").glob("*.json")
    [engine_id] = json.loads(record.read_text())["engines"]
    async with DockerClient() as client:
        assert await client.list_containers(labels={LABEL_ENGINE: engine_id})  # left behind
        done = subprocess.run([sys.executable, "-m", "isol8rt", "run", "-r", "bash", "-e", "echo next"],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert done.stdout == "next\n", done.stderr
        assert "isol8rt: removed 1 container(s) left by killed runs (cleanup.autoPrune)" in done.stderr
        assert await client.list_containers(labels={LABEL_ENGINE: engine_id}) == []
    assert list((tmp_path / ".isol8rt" / "cli").glob("*.json")) == []  # the next run's own file is gone too


async def test_auto_prune_off_leaves_dead_runs_alone_and_still_records_this_one(tmp_path, monkeypatch):
    from isol8rt.cli import run
    from isol8rt.config import parse_config

    monkeypatch.setenv("HOME", str(tmp_path))
    directory = tmp_path / ".isol8rt" / "cli"
    write(directory, "dead", Instance(pid=dead_pid(), started="1", engines=["e-dead"]))
    instance = await run._track("e-mine", parse_config('{"cleanup": {"autoPrune": false}}'))
    assert (directory / "dead.json").exists()
    assert json.loads(instance.path.read_text())["engines"] == ["e-mine"]
    instance.remove()


async def test_a_dead_runs_containers_on_another_nodes_daemon_are_not_ours(tmp_path):
    # One daemon, two machines: an engine id recorded here, on a container another node made, is left.
    write(tmp_path, "dead", Instance(pid=dead_pid(), started="1", engines=["e-dead"]))
    docker = FakeDocker([
        ContainerSummary(id="ours", labels={LABEL_ENGINE: "e-dead", LABEL_NODE: "here"}),
        ContainerSummary(id="older", labels={LABEL_ENGINE: "e-dead"}),  # made before containers had a node
        ContainerSummary(id="theirs", labels={LABEL_ENGINE: "e-dead", LABEL_NODE: "elsewhere"}),
    ])
    assert await sweep(tmp_path, docker, "here") == 2
    assert set(docker.containers) == {"theirs"}
