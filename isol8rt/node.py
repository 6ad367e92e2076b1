"""Which node made a container: a name every container carries (label ``isol8rt.node``), so that clean-up
on a Docker daemon several nodes share touches only its own node's containers.

A node is one ``isol8rt serve`` (or one machine's CLI and library). Its id is, first found:

- given (``serve --node-id``, ``ISOL8RT_NODE_ID`` for ``serve``, ``DockerIsol8(node_id=...)``);
- for a server, the one kept in its state directory (``node-id``), made there on first start as the host
  name and 8 random hex digits: stable across restarts of the node, and different for every state
  directory, so two servers on one machine (or two machines of one host name) never share one by
  accident;
- for an engine made by a library or the CLI, the host name.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from pathlib import Path

ENV = "ISOL8RT_NODE_ID"
FILE_NAME = "node-id"
_VALID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def check(node_id: str, source: str = "node id") -> str:
    """``node_id`` if it is a valid one (a Docker label value that reads well in `docker ps`), else
    ValueError saying why."""
    if not isinstance(node_id, str) or not _VALID.fullmatch(node_id):
        raise ValueError(f"{source}: {node_id!r} must be 1 to 63 letters, digits, '.', '_' or '-', starting with "
                         "a letter or digit")
    return node_id


def _host_part() -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname().split(".")[0])[:40].strip("-._")
    return host or "node"


def local() -> str:
    """A library's or the CLI's engine's id when none is given: the host name."""
    return _host_part()


def of_state_dir(state_dir: Path) -> str:
    """The id kept in ``state_dir``, made (and kept) there if there is none yet."""
    path = Path(state_dir) / FILE_NAME
    try:
        return check(path.read_text().strip(), str(path))
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    made = f"{_host_part()}-{secrets.token_hex(4)}"
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(made + "\n")
    try:
        os.link(partial, path)  # two nodes starting at once on one directory: the first one's id wins
    except FileExistsError:
        made = check(path.read_text().strip(), str(path))
    finally:
        partial.unlink(missing_ok=True)
    return made


def for_server(state_dir: Path, given: str | None = None) -> str:
    """A server's id: ``given``, else ``$ISOL8RT_NODE_ID``, else the one its state directory keeps."""
    if given:
        return check(given, "--node-id")
    if os.environ.get(ENV):
        return check(os.environ[ENV], f"${ENV}")
    return of_state_dir(state_dir)
