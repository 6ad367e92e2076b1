"""Containers a killed ``isol8rt run`` left behind, removed by the next run (``cleanup.autoPrune``).

A run's containers are removed when it ends, unless the process is killed outright (SIGKILL, a closed
terminal, an OOM kill): then they stay, running, for good. So each run records its engine's id in an
instance file under ``~/.isol8rt/cli`` (the server's mechanism, :mod:`isol8rt.server.orphans`: the pid,
that process's start time, the engine ids) and deletes it when done. A run that finds the file of a
process that is gone removes that engine's containers, except a session's, which are meant to outlive
the process that made them and end by themselves once idle.

Finding nothing to do costs a directory listing; Docker is asked only about dead runs' engines.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from ..docker import NotFound
from .. import node
from ..runtimes import LABEL_ENGINE, LABEL_NODE, LABEL_SESSION
from ..server.orphans import Instance, InstanceFile, alive

_decode = msgspec.json.Decoder(Instance).decode

__all__ = ["InstanceFile", "dead_runs", "default_state_dir", "sweep"]


def default_state_dir() -> Path:
    return Path.home() / ".isol8rt" / "cli"


def dead_runs(directory: Path) -> list[tuple[Path, Instance]]:
    """The instance files of runs whose process is gone (an unreadable file counts as dead: it is removed)."""
    dead = []
    for path in sorted(Path(directory).glob("*.json")) if Path(directory).is_dir() else []:
        try:
            instance = _decode(path.read_bytes())
        except (OSError, msgspec.DecodeError):
            dead.append((path, Instance(pid=0, started=None)))
            continue
        if not alive(instance):
            dead.append((path, instance))
    return dead


async def sweep(directory: Path, client, node_id: str | None = None) -> int:
    """Remove the containers of dead runs recorded in ``directory``, sessions' excepted, and only those of
    node ``node_id`` (default: this machine's, as the CLI's engines have it; on a daemon other machines
    share, theirs are not ours to remove); how many went."""
    node_id = node_id or node.local()
    removed = 0
    for path, instance in dead_runs(directory):
        for engine_id in instance.engines:
            for container in await client.list_containers(all=True, labels={LABEL_ENGINE: engine_id}):
                labels = container.labels or {}
                if LABEL_SESSION in labels or labels.get(LABEL_NODE, node_id) != node_id:
                    continue
                try:
                    await client.remove_container(container.id, force=True)
                    removed += 1
                except NotFound:
                    pass  # gone meanwhile
        path.unlink(missing_ok=True)
    return removed
