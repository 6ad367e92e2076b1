"""A server's orphan clean-up on a Docker daemon several nodes share: it removes its own node's
containers that no live server holds, and never another node's (with a fake Docker, then with two real
engines of different nodes on this machine's daemon)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import msgspec
import pytest

from isol8rt import DockerIsol8, ExecutionRequest, Isol8Options
from isol8rt import node
from isol8rt.docker import DockerClient
from isol8rt.docker._models import ContainerSummary
from isol8rt.runtimes import LABEL_ENGINE, LABEL_NODE
from isol8rt.server.orphans import Instance, InstanceFile, sweep

from .conftest import engine_containers


class OneLabelDocker:
    """Lists by one label, as the sweep asks; removes."""

    def __init__(self, *containers: tuple[str, dict[str, str]]) -> None:
        self.containers = {id_: ContainerSummary(id=id_, labels=labels) for id_, labels in containers}

    async def list_containers(self, *, all=True, labels=None):
        [(key, value)] = labels.items()
        return [c for c in self.containers.values() if (c.labels or {}).get(key) == value]

    async def remove_container(self, container_id, *, force=True):
        del self.containers[container_id]


def dead_instance(directory, engines: list[str]) -> None:
    pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                             text=True).stdout)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{uuid.uuid4().hex}.json").write_bytes(msgspec.json.encode(Instance(pid, "1", engines)))


async def test_a_node_removes_its_own_unheld_containers_and_no_one_elses(tmp_path):
    live = InstanceFile(tmp_path)  # a server of this node, still running (this process)
    live.add_engine("e-live")
    dead_instance(tmp_path, ["e-dead", "e-shared-dir"])
    docker = OneLabelDocker(
        ("live", {LABEL_ENGINE: "e-live", LABEL_NODE: "a"}),
        ("dead", {LABEL_ENGINE: "e-dead", LABEL_NODE: "a"}),
        ("unrecorded", {LABEL_ENGINE: "e-lost", LABEL_NODE: "a"}),  # its instance file went with a lost disk
        ("older", {LABEL_ENGINE: "e-dead"}),  # made before containers had a node
        ("other-node", {LABEL_ENGINE: "e-shared-dir", LABEL_NODE: "b"}),
        ("other-node-unrecorded", {LABEL_ENGINE: "e-b", LABEL_NODE: "b"}),
    )
    assert await sweep(tmp_path, docker, "a") == 3
    assert set(docker.containers) == {"live", "other-node", "other-node-unrecorded"}
    assert [path.name for path in tmp_path.glob("*.json")] == [live.path.name]
    live.remove()


def test_a_servers_node_id_is_kept_in_its_state_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(node.ENV, raising=False)
    first = node.for_server(tmp_path / "one")
    assert first == node.for_server(tmp_path / "one")  # stable across restarts
    assert first.startswith(node.local()) and first != node.for_server(tmp_path / "two")
    assert node.for_server(tmp_path / "one", "given") == "given"
    monkeypatch.setenv(node.ENV, "from-env")
    assert node.for_server(tmp_path / "one") == "from-env"
    with pytest.raises(ValueError, match="--node-id: 'no spaces' must be 1 to 63 letters"):
        node.for_server(tmp_path, "no spaces")


@pytest.mark.docker
async def test_two_nodes_on_one_daemon_a_restarted_node_sweeps_only_its_own(tmp_path):
    tag = uuid.uuid4().hex[:6]
    options = Isol8Options(pool_size=0)
    async with DockerIsol8(options, node_id=f"a-{tag}") as a, DockerIsol8(options, node_id=f"b-{tag}") as b:
        for engine in (a, b):
            result = await engine.execute(ExecutionRequest(code="kept = 1"), session_id="s")
            assert result.exit_code == 0
        mine, theirs = await engine_containers([a.engine_id]), await engine_containers([b.engine_id])
        assert mine and theirs
        async with DockerClient() as client:
            labels = (await client.inspect_container(theirs[0])).config.labels
            assert labels[LABEL_NODE] == f"b-{tag}"
            # Node a restarted: its state directory knows nothing of its last life, nor of node b (whose
            # engine is even listed there as a dead server's, as on a directory both share).
            dead_instance(tmp_path, [b.engine_id])
            assert await sweep(tmp_path, client, f"a-{tag}") == len(mine)
        assert await engine_containers([a.engine_id]) == []
        assert await engine_containers([b.engine_id]) == theirs
        survivor = await b.execute(ExecutionRequest(code="print(kept)"), session_id="s")
        assert survivor.stdout == "1\n"
