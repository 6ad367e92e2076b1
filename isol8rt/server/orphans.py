"""Finding the containers a crashed server left behind, and only those.

Every container carries its engine's id (label ``isol8rt.engine``), and an engine id says nothing about
who made it: a library user's engine, a test's, another server's. So each running server writes an
*instance file* in its state directory: its pid, that process's start time, and the id of every engine
it makes, written before the engine makes its first container. At start, a server reads the others'
files: one whose process is gone (no such pid, or a pid reused by a process that started at another
time) belonged to a server that died without cleaning up; the containers of its engines are removed and
the file deleted. Live servers and every non-server engine are never touched.

Several nodes may share one Docker daemon (over TCP), each with its own state directory, which the
others cannot read. So every container also carries its node's id (label ``isol8rt.node``,
:mod:`isol8rt.node`), and a server removes only containers of its own node: those of its dead servers'
engines, and any other of its node's containers that no live server of its state directory holds (a
node restarted with its id but not its state directory still finds what it left). Containers of other
nodes are never touched, whatever their engines.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import msgspec

from .. import docker
from ..runtimes import LABEL_ENGINE, LABEL_NODE

log = logging.getLogger("isol8rt.server")


def default_state_dir() -> Path:
    return Path.home() / ".isol8rt" / "server"


class Instance(msgspec.Struct):
    pid: int
    started: str | None
    engines: list[str] = []


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Instance).decode


def process_started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return None
    # Field 22; the command name (field 2) is in parentheses and may hold spaces.
    return stat.rsplit(b")", 1)[1].split()[19].decode()


def alive(instance: Instance) -> bool:
    try:
        os.kill(instance.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    started = process_started(instance.pid)
    return started is None or instance.started is None or started == instance.started


class InstanceFile:
    """This server's own instance file."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / f"{uuid.uuid4().hex}.json"
        pid = os.getpid()
        self._instance = Instance(pid=pid, started=process_started(pid))

    def add_engine(self, engine_id: str) -> None:
        self._instance.engines.append(engine_id)
        self._write()

    def _write(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = self.path.with_suffix(".tmp")
        partial.write_bytes(_encode(self._instance))
        os.replace(partial, self.path)  # a reader never sees half a file

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


async def sweep(directory: Path, client: docker.DockerClient, node_id: str) -> int:
    """Remove the containers node ``node_id`` left behind: its dead servers' (recorded in ``directory``)
    and any other of its containers no live server of ``directory`` holds; how many were removed."""
    directory = Path(directory)
    live: set[str] = set()  # engines of the servers still running on this state directory
    dead: list[tuple[Path, Instance]] = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            instance = _decode(path.read_bytes())
        except (OSError, msgspec.DecodeError):
            log.warning("ignoring unreadable instance file %s", path)
            continue
        if alive(instance):
            live.update(instance.engines)
        else:
            dead.append((path, instance))
    doomed = {c.id for c in await client.list_containers(all=True, labels={LABEL_NODE: node_id})
              if (c.labels or {}).get(LABEL_ENGINE) not in live}
    for _, instance in dead:
        for engine_id in instance.engines:
            # Containers made before nodes had ids carry none: the engine id alone says they are ours.
            doomed.update(c.id for c in await client.list_containers(all=True, labels={LABEL_ENGINE: engine_id})
                          if (c.labels or {}).get(LABEL_NODE, node_id) == node_id)
    removed = 0
    for container_id in sorted(doomed):
        try:
            await client.remove_container(container_id, force=True)
            removed += 1
        except docker.NotFound:
            pass
    for path, _ in dead:
        path.unlink(missing_ok=True)
    if removed:
        log.warning("removed %d container(s) left by servers of node %s that did not shut down cleanly", removed,
                    node_id)
    return removed
