"""Several `isol8rt serve` nodes behind HAProxy, on loopback, for the cluster tests and bench/bench_haproxy.py.

HAProxy runs the shipped deploy/haproxy.cfg itself: :func:`haproxy_config` rewrites only where it listens,
its runtime socket and its server lines (and, for a user other than root, drops the chroot and the user
switch), and refuses a file whose lines it cannot find, so the tests cannot drift from the file. Each
node is a real `isol8rt serve` subprocess (tests/server/conftest.py's ServerProcess) with a state
directory and a port of its own, on the one local Docker daemon.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from ..server.conftest import ServerProcess

HAPROXY_CFG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy.cfg"
#: What tells a user how to get HAProxy where it is missing.
INSTALL_HINT = "haproxy is not installed: run scripts/test-packages (as root; Debian's haproxy package)"
#: The backend's name in deploy/haproxy.cfg (for the runtime API's `set server <backend>/<node> ...`).
BACKEND = "isol8rt"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _replace_one(text: str, pattern: str, replacement: str) -> str:
    new, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if count != 1:
        raise AssertionError(f"deploy/haproxy.cfg: expected one line matching {pattern!r}, found {count}")
    return new


def haproxy_config(port: int, runtime_socket: Path, nodes: dict[str, int], text: str | None = None) -> str:
    """deploy/haproxy.cfg listening on 127.0.0.1:``port``, its runtime API on ``runtime_socket``, with
    one server line per node (name: port on loopback) in place of the file's examples."""
    text = HAPROXY_CFG.read_text() if text is None else text
    text = _replace_one(text, r"^(\s*)bind \S+$", rf"\g<1>bind 127.0.0.1:{port}")
    text = _replace_one(text, r"^(\s*stats socket )\S+", rf"\g<1>{runtime_socket}")
    examples = re.findall(r"^\s*server \S+ \S+$", text, flags=re.MULTILINE)
    if not examples:
        raise AssertionError("deploy/haproxy.cfg: no `server <name> <address>` line in the backend")
    indent = examples[0][: len(examples[0]) - len(examples[0].lstrip())]
    ours = "\n".join(f"{indent}server {name} 127.0.0.1:{node_port}" for name, node_port in nodes.items())
    text = text.replace(examples[0], ours, 1)
    for example in examples[1:]:
        text = text.replace(example + "\n", "", 1)
    if os.geteuid() != 0:  # only root may chroot and switch users
        text = re.sub(r"^\s*(chroot|user|group) .*\n", "", text, flags=re.MULTILINE)
    return text


class HAProxy:
    """`haproxy -db` (in the foreground, a child of this process) with the generated configuration."""

    def __init__(self, directory: Path, nodes: dict[str, int], port: int | None = None) -> None:
        binary = shutil.which("haproxy")
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.socket = directory / "haproxy.sock"
        self.config = directory / "haproxy.cfg"
        self.config.write_text(haproxy_config(self.port, self.socket, nodes))
        self.log = directory / "haproxy.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([binary, "-db", "-f", str(self.config)], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def runtime(self, command: str) -> str:
        """One command of HAProxy's runtime API, and its answer."""
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(10)
            conn.connect(str(self.socket))
            conn.sendall(command.encode() + b"\n")
            parts = []
            while chunk := conn.recv(65536):
                parts.append(chunk)
        return b"".join(parts).decode()

    def states(self) -> dict[str, str]:
        """Each node's state as HAProxy sees it: UP, DOWN, DRAIN, MAINT, ..."""
        lines = self.runtime("show stat").splitlines()
        columns = lines[0].lstrip("# ").split(",")
        name, status = columns.index("svname"), columns.index("status")
        states = {}
        for line in lines[1:]:
            fields = line.split(",")
            if len(fields) > status and fields[0] == BACKEND and fields[name] not in ("BACKEND", "FRONTEND"):
                states[fields[name]] = fields[status]
        return states

    def wait_for(self, wanted: dict[str, str], timeout: float = 30) -> None:
        """Wait until the named nodes are in these states (health checks run every 2 s)."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] | str = {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"haproxy exited: {self.log.read_text()}")
            try:
                states = self.states()
            except OSError as exc:  # its socket is not there yet
                states = str(exc)
            if isinstance(states, dict) and all(states.get(k, "").startswith(v) for k, v in wanted.items()):
                return
            time.sleep(0.1)  # polling HAProxy's view, not a synchronisation by sleep
        raise AssertionError(f"HAProxy's nodes are {states}, not {wanted}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    """Two (or more) nodes behind HAProxy; ``nodes[name]`` is a node's ServerProcess."""

    #: Small pools; the tests hold more sessions of one key than a node allows by default.
    NODE_ARGS = ("--prewarm", "python", "--pool-size", "1", "--session-memory-per-key", "0",
                 "--max-sessions-per-key", "64")

    def __init__(self, directory: Path, names: tuple[str, ...] = ("node1", "node2"), *args: str) -> None:
        self.directory = directory
        self.args = args
        self.ports = {name: free_port() for name in names}
        self.nodes: dict[str, ServerProcess] = {}
        self.haproxy: HAProxy | None = None
        try:
            for name in names:
                self.start(name)
            self.haproxy = HAProxy(directory / "haproxy", self.ports)
            self.haproxy.wait_for({name: "UP" for name in names})
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        assert self.haproxy is not None
        return self.haproxy.url

    def start(self, name: str) -> ServerProcess:
        """Start (or start again, on its port and state directory) node ``name``."""
        node = ServerProcess(self.directory / name, "--port", str(self.ports[name]), *self.NODE_ARGS, *self.args)
        self.nodes[name] = node
        return node

    def stop(self) -> None:
        if self.haproxy is not None:
            self.haproxy.stop()
        for node in self.nodes.values():
            node.stop()
