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
import selectors
import subprocess
import time

from .process import Child, Identity, spawn
from .protocol import Failed, NetworkConfig, NetworkPolicy, Run

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

    def request_sync(self, message: dict, kind: str, timeout_s: float, on_other,
                     failed=lambda line: False) -> dict | None:
        """Send ``message`` and wait for the answer of type ``kind`` (see :meth:`wait_for`)."""
        self.send(message)
        return self.wait_for(kind, timeout_s, on_other, failed)

    def wait_for(self, kind: str, timeout_s: float, on_other, failed=lambda line: False) -> dict | None:
        """Block until the proxy prints a line of type ``kind`` (others go to ``on_other``); None on time-out,
        if the proxy is gone, or if it prints a line that ``failed`` says is the refusal of what was asked.
        For the reset path, which runs outside the event loop."""
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
                if failed(line):
                    return None
                on_other(line, raw)


class NetworkMixin:
    """The agent's side of filtered networking: firewall and proxy at Configure, the proxy's output, runs
    held until the proxy listens and their policy is in force, and the proxy's part of a reset. A mixin
    of the agent, sharing its state (``network``, ``proxy``, ``deferred``) and event loop."""

    def _start_network(self, config: NetworkConfig) -> None:
        """Firewall first, then the proxy: no user process runs before both are in place (runs wait)."""
        self.network = config
        try:
            apply_firewall(self.config.uid)
            drop_capability()
        except OSError as exc:
            # Without the firewall, filtered mode would be no filter at all: refuse every run instead.
            self.log("error", f"cannot set up filtered networking: {exc}")
            self.network_failure = f"filtered networking could not be set up: {exc}"
            return
        self._start_proxy()

    def _start_proxy(self) -> None:
        identity = Identity(self.config.proxy_uid, self.config.proxy_uid)
        identity.filter = self.identity.filter
        policy = policy_dict(self.network.policy)
        self.proxy = Proxy.start(identity, self.network.proxy_port, policy,
                                         {"PATH": self.base_env.get("PATH", os.defpath), "LANG": "C.UTF-8"})
        self.proxy_policy = self.network.policy
        self.by_pid[self.proxy.child.pid] = self.proxy
        os.set_blocking(self.proxy.child.stdin, True)
        self.selector.register(self.proxy.child.stdout, selectors.EVENT_READ, self._on_proxy_output)
        self.selector.register(self.proxy.child.stderr, selectors.EVENT_READ, self._on_proxy_stderr)

    def _on_proxy_output(self) -> None:
        proxy = self.proxy
        try:
            data = os.read(proxy.child.stdout, 65536)
        except BlockingIOError:
            return
        if not data:
            self.selector.unregister(proxy.child.stdout)
            return
        for line, raw in proxy.feed(data):
            self._on_proxy_line(line, raw)

    def _on_proxy_stderr(self) -> None:
        try:
            data = os.read(self.proxy.child.stderr, 65536)
        except BlockingIOError:
            return
        if not data:
            self.selector.unregister(self.proxy.child.stderr)
            return
        self.log("warning", f"proxy: {data.decode(errors='replace').strip()}")

    def _on_proxy_line(self, line: dict, raw: bytes) -> None:
        kind = line.get("type")
        if kind == "request":
            for run in self.runs.values():
                run.network_log.append(raw)
        elif kind == "listening":
            self.proxy.ready = True
            self._admit_deferred()
        elif kind == "policy_ok":
            self.policy_pending = False
            self._admit_deferred()
        elif kind == "reset_ok":
            for run in list(self.runs.values()):
                if run.flushing:
                    run.flushing = False
                    self._maybe_finish(run)
        elif kind == "error":
            self.log("warning", f"proxy: {line.get('message')}")
            if self.policy_pending:
                # The policy a run asked for was refused (bad regex...): that run fails, nothing opens up.
                self.policy_pending = False
                self.proxy_policy = None
                run = self.deferred.pop(0)
                self.send(Failed(id=run.id, message=f"network policy refused: {line.get('message')}",
                                 kind="bad_request"))
                self._admit_deferred()

    def _drop_proxy(self) -> None:
        proxy = self.proxy
        if proxy is None:
            return
        for fd in (proxy.child.stdout, proxy.child.stderr):
            if fd >= 0 and self.selector.get_map().get(fd) is not None:
                self.selector.unregister(fd)
        proxy.close()
        self.proxy = None
        self.proxy_policy = None
        self.policy_pending = False

    def _reset_network(self, detail: dict[str, int]) -> bool:
        """Close every connection the last run left open or waiting, and put the container's own policy
        back; start the proxy again if it died. True when the proxy is up with the right policy."""
        if self.network is None:
            return True
        if self.network_failure is not None:
            return False
        if self.proxy is None:
            self._start_proxy()
            return True  # it comes up on its own; runs wait for it meanwhile
        if not self.proxy.ready:
            return True
        discard = lambda line, raw: None  # noqa: E731 - log lines of a run that is over
        answer = self.proxy.request_sync({"type": "reset"}, "reset_ok", 5.0, discard,
                                         lambda line: line.get("type") == "reset_failed")
        if answer is None:
            self._drop_proxy()
            return False
        detail["connections_closed"] = int(answer.get("closed", 0))
        detail["connections_refused"] = int(answer.get("refused", 0))
        if self.proxy_policy != self.network.policy:
            answer = self.proxy.request_sync({"type": "policy", "run": "reset", **policy_dict(self.network.policy)},
                                             "policy_ok", 5.0, discard,
                                             lambda line: line.get("type") == "error" and line.get("run") == "reset")
            if answer is None:
                self._drop_proxy()
                return False
            self.proxy_policy = self.network.policy
        return True

    def _admit_run(self, request: Run) -> None:
        """Start a run now, or once filtered networking is ready for it."""
        if self.network is None:
            self._start_run(request)
            return
        self.deferred.append(request)
        self._admit_deferred()

    def _admit_deferred(self) -> None:
        failure = self.network_failure
        while self.deferred:
            request = self.deferred[0]
            if failure is not None:
                self.deferred.pop(0)
                self.send(Failed(id=request.id, message=failure, kind="network"))
                continue
            if self.proxy is None or not self.proxy.ready or self.policy_pending:
                return
            wanted = request.network_policy or self.network.policy
            if wanted != self.proxy_policy:
                self.proxy.send({"type": "policy", "run": str(request.id), **policy_dict(wanted)})
                self.proxy_policy = wanted
                self.policy_pending = True
                return
            self.deferred.pop(0)
            self._start_run(request)


def policy_dict(policy: NetworkPolicy) -> dict:
    return {"allow": list(policy.allow), "deny": list(policy.deny), "allow_private": list(policy.allow_private),
            "connect_ports": list(policy.connect_ports) or [443, 80]}
