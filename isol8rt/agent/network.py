"""Filtered networking inside the container: a firewall that leaves the sandbox user nothing but loopback
(where the proxy listens), and the proxy process itself, which runs under its own uid.

The firewall lives in the container's own network namespace, written with nft while the agent still holds
CAP_NET_ADMIN; the agent then drops that capability for good. Rules match the socket's owner, so they
hold for every process of the sandbox user, whatever it does with HTTP_PROXY: no TCP or UDP (so no DNS),
no ICMP, IPv4 and IPv6 alike, except to loopback. Nothing may reach in from the bridge either.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import subprocess
import time

from .process import Child, Identity, spawn

PROXY_MAIN = "/opt/isol8rt/proxy/main.py"
_CAP_NET_ADMIN = 12
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def firewall_rules(sandbox_uid: int) -> str:
    return f"""
table inet isol8rt {{
    chain output {{
        type filter hook output priority 0; policy accept;
        oifname "lo" accept
        meta skuid {sandbox_uid} counter reject
        meta skuid 0 counter reject
    }}
    chain input {{
        type filter hook input priority 0; policy drop;
        iifname "lo" accept
        ct state established,related accept
    }}
}}
"""


def apply_firewall(sandbox_uid: int) -> None:
    """Install the rules (needs CAP_NET_ADMIN); raises OSError with nft's message when it cannot."""
    done = subprocess.run(["nft", "-f", "-"], input=firewall_rules(sandbox_uid).encode(), capture_output=True,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    if done.returncode != 0:
        raise OSError(f"nft failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capability(capability: int = _CAP_NET_ADMIN) -> None:
    """Remove a capability from this process's effective, permitted and inheritable sets: once gone from
    the permitted set, nothing we start later can have it either."""
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    word, bit = divmod(capability, 32)
    mask = ~(1 << bit) & 0xFFFFFFFF
    data[word].effective &= mask
    data[word].permitted &= mask
    data[word].inheritable &= mask
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


class Proxy:
    """The running proxy: its control channel (stdin) and its output (stdout: JSON lines)."""

    def __init__(self, child: Child, port: int) -> None:
        self.child = child
        self.port = port
        self._partial = bytearray()
        self.ready = False

    @classmethod
    def start(cls, identity: Identity, port: int, policy: dict, env: dict[str, str]) -> Proxy:
        argv = ["python3", "-I", "-B", PROXY_MAIN, "--listen", f"127.0.0.1:{port}"]
        for flag, key in (("--allow", "allow"), ("--deny", "deny"), ("--allow-private", "allow_private"),
                          ("--connect-port", "connect_ports")):
            for value in policy.get(key) or ():
                argv += [flag, str(value)]
        child = spawn(argv, env, "/", identity)
        return cls(child, port)

    def send(self, message: dict) -> None:
        data = (json.dumps(message) + "\n").encode()
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.child.stdin, view):]
            except BlockingIOError:
                select.select([], [self.child.stdin], [], 1.0)

    def feed(self, data: bytes) -> list[tuple[dict, bytes]]:
        """Complete lines out of what the proxy printed: each decoded, and as it came."""
        self._partial += data
        lines = []
        while True:
            end = self._partial.find(b"\n")
            if end < 0:
                return lines
            raw = bytes(self._partial[:end])
            del self._partial[: end + 1]
            try:
                lines.append((json.loads(raw), raw))
            except ValueError:
                lines.append(({"type": "error", "message": f"unreadable proxy output: {raw[:200]!r}"}, raw))

    def close(self) -> None:
        for fd in (self.child.stdin, self.child.stdout, self.child.stderr):
            if fd >= 0:
                os.close(fd)
        self.child.stdin = self.child.stdout = self.child.stderr = -1

    def request_sync(self, message: dict, kind: str, timeout_s: float, on_other) -> dict | None:
        """Send ``message`` and wait for the answer of type ``kind`` (see :meth:`wait_for`)."""
        self.send(message)
        return self.wait_for(kind, timeout_s, on_other)

    def wait_for(self, kind: str, timeout_s: float, on_other) -> dict | None:
        """Block until the proxy prints a line of type ``kind`` (others go to ``on_other``); None on time-out
        or if the proxy is gone. For the reset path, which runs outside the event loop."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([self.child.stdout], [], [], remaining)
            if not readable:
                continue
            try:
                data = os.read(self.child.stdout, 65536)
            except BlockingIOError:
                continue
            if not data:
                return None
            for line, raw in self.feed(data):
                if line.get("type") == kind:
                    return line
                on_other(line, raw)
