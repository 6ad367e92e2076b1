"""The egress proxy as a process: started under its own uid, with the container's policy on its command
line; its control lines written to its stdin. What the lines mean and when they are sent is the core's
(core/network.py); their shapes are proxy_protocol's."""

from __future__ import annotations

import os
import select

from .process import Child, Identity, spawn
from .protocol import NetworkPolicy
from .proxy_protocol import DEFAULT_CONNECT_PORTS, Control, encoder

PROXY_MAIN = "/opt/isol8rt/proxy/main.py"


def start(identity: Identity, port: int, policy: NetworkPolicy, env: dict[str, str]) -> Child:
    """Start the proxy listening on 127.0.0.1:``port``; its stdin blocks, its stdout and stderr do not."""
    argv = ["python3", "-I", "-B", PROXY_MAIN, "--listen", f"127.0.0.1:{port}"]
    for flag, values in (("--allow", policy.allow), ("--deny", policy.deny), ("--allow-private", policy.allow_private),
                         ("--connect-port", policy.connect_ports or DEFAULT_CONNECT_PORTS)):
        for value in values:
            argv += [flag, str(value)]
    child = spawn(argv, env, "/", identity)
    os.set_blocking(child.stdin, True)
    return child


def write_line(fd: int, line: Control) -> None:
    """Write one control line whole. Raises BrokenPipeError when the proxy is gone."""
    view = memoryview(encoder.encode(line) + b"\n")
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
