"""Finding the containers a crashed server left behind, and only those.

Every container carries its engine's id (label ``isol8rt.engine``), and an engine id says nothing about
who made it: a library user's engine, a test's, another server's. So each running server writes an
*instance file* in its state directory: its pid, that process's start time, and the id of every engine
it makes, written before the engine makes its first container. At start, a server reads the others'
files: one whose process is gone (no such pid, or a pid reused by a process that started at another
time) belonged to a server that died without cleaning up; the containers of its engines are removed and
the file deleted. Live servers and every non-server engine are never touched.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import msgspec

from .. import docker
from ..runtimes import LABEL_ENGINE

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


async def sweep(directory: Path, client: docker.DockerClient) -> int:
    """Remove the containers of every dead server recorded in ``directory``; how many were removed."""
    directory = Path(directory)
    removed = 0
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            instance = _decode(path.read_bytes())
        except (OSError, msgspec.DecodeError):
            log.warning("ignoring unreadable instance file %s", path)
            continue
        if alive(instance):
            continue
        for engine_id in instance.engines:
            for container in await client.list_containers(all=True, labels={LABEL_ENGINE: engine_id}):
                try:
                    await client.remove_container(container.id, force=True)
                    removed += 1
                except docker.NotFound:
                    pass
        path.unlink(missing_ok=True)
    if removed:
        log.warning("removed %d container(s) left by servers that did not shut down cleanly", removed)
    return removed
