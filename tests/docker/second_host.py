"""A second Docker host on this machine: a second dockerd in a network namespace of its own, reached over
a veth pair with mutual TLS, as a remote ``DOCKER_HOST=tcp://host:2376`` is.

Everything is its own: data root, exec root (so its own containerd), pid file, Unix socket, bridge and
subnets, cgroup parent; it runs no iptables at all (``--iptables=false``), so nothing it does can clash
with the main daemon's rules, and the main daemon, /var/lib/docker and docker0 are never touched. It
enters only the network namespace (nsenter --net): ``ip netns exec`` would also remount /sys, hiding the
cgroup hierarchy dockerd needs. Stopped and removed whole at the end: daemon, namespace, veth, mounts,
cgroups, files. Needs root."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .standins import Certificates, make_certificates

PORT = 2376
#: How long the second daemon may take to start, and to stop.
START_S = 60
STOP_S = 20


def _run(*command: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if check and done.returncode:
        raise RuntimeError(f"{' '.join(command)}: {(done.stderr or done.stdout).strip()}")
    return done


def _free_subnet() -> int:
    """A third octet X for 10.213.X.0/30 (the link) and 10.214.X.0/24 (the bridge) that no address or
    route of this machine uses."""
    taken = _run("ip", "-4", "route", "show", "table", "all").stdout + _run("ip", "-4", "addr").stdout
    for _ in range(64):
        octet = secrets.randbelow(254) + 1
        if f"10.213.{octet}." not in taken and f"10.214.{octet}." not in taken:
            return octet
    raise RuntimeError("no free 10.213.X.0/30 subnet")


@dataclass
class SecondHost:
    root: Path
    certificates: Certificates
    tag: str
    octet: int

    @property
    def netns(self) -> str:
        return f"isol8rt-{self.tag}"

    @property
    def address(self) -> str:
        return f"10.213.{self.octet}.2"

    @property
    def url(self) -> str:
        return f"tcp://{self.address}:{PORT}"

    @property
    def socket(self) -> str:
        """Its Unix socket, for the test's own set-up (loading the image), not for the code under test."""
        return f"unix://{self.root}/docker.sock"

    @property
    def cgroup_parent(self) -> str:
        return f"isol8rt-{self.tag}"

    def environment(self, cert_path: Path) -> dict[str, str]:
        return {"DOCKER_HOST": self.url, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(cert_path)}

    # ------------------------------------------------------------------------------------ up

    def start(self) -> None:
        host_end, far_end, bridge = f"{self.tag}h", f"{self.tag}n", f"{self.tag}b"
        ns = ("ip", "netns", "exec", self.netns)
        _run("ip", "netns", "add", self.netns)
        _run("ip", "link", "add", host_end, "type", "veth", "peer", "name", far_end)
        _run("ip", "link", "set", far_end, "netns", self.netns)
        _run("ip", "addr", "add", f"10.213.{self.octet}.1/30", "dev", host_end)
        _run("ip", "link", "set", host_end, "up")
        _run(*ns, "ip", "addr", "add", f"{self.address}/30", "dev", far_end)
        _run(*ns, "ip", "link", "set", far_end, "up")
        _run(*ns, "ip", "link", "set", "lo", "up")
        _run(*ns, "ip", "link", "add", bridge, "type", "bridge")
        _run(*ns, "ip", "addr", "add", f"10.214.{self.octet}.1/24", "dev", bridge)
        _run(*ns, "ip", "link", "set", bridge, "up")
        for name in ("data", "exec"):
            (self.root / name).mkdir()
        c = self.certificates
        log = open(self.root / "dockerd.log", "wb")
        subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.netns}", "dockerd",
             "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
             "--pidfile", str(self.root / "docker.pid"), "-H", self.socket, "-H", f"tcp://{self.address}:{PORT}",
             "--tlsverify", "--tlscacert", str(c.ca), "--tlscert", str(c.server_cert), "--tlskey", str(c.server_key),
             "--bridge", bridge, "--iptables=false", "--ip-masq=false", "--ip6tables=false",
             "--userland-proxy=false", "--cgroup-parent", f"/{self.cgroup_parent}", "--storage-driver", "overlay2",
             "--shutdown-timeout", "2", "--log-level", "warn"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_S
        while _run("docker", "-H", self.socket, "version", check=False).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the second dockerd did not start: {self.log_tail()}")
            time.sleep(0.2)  # an external daemon's readiness, polled: nothing of ours to wait on

    def load(self, image: str) -> None:
        saver = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        loaded = subprocess.run(["docker", "-H", self.socket, "load", "-q"], stdin=saver.stdout, capture_output=True,
                                text=True)
        saver.stdout.close()
        if saver.wait() or loaded.returncode:
            raise RuntimeError(f"could not load {image} into the second daemon: {loaded.stderr.strip()}")

    def log_tail(self) -> str:
        try:
            lines = (self.root / "dockerd.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-5:])

    # ------------------------------------------------------------------------------------ down

    def stop(self) -> None:
        pid_file = self.root / "docker.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + STOP_S
                while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                    time.sleep(0.1)  # an external daemon's exit, polled
                if Path(f"/proc/{pid}").exists():
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _run("ip", "netns", "del", self.netns, check=False)  # the veth pair goes with it
        _run("ip", "link", "del", f"{self.tag}h", check=False)
        for line in reversed(Path("/proc/self/mounts").read_text().splitlines()):
            mount_point = line.split()[1]
            if mount_point.startswith(str(self.root)):
                _run("umount", "-l", mount_point, check=False)
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            leftover = hierarchy / self.cgroup_parent
            if leftover.is_dir():
                for child in sorted(leftover.rglob("*"), reverse=True):
                    if child.is_dir():
                        child.rmdir()
                leftover.rmdir()
        _run("rm", "-rf", str(self.root), check=False)


@pytest.fixture(scope="module")
def second_host():
    """A second Docker host with isol8rt:python loaded, for the tests of one module."""
    if os.geteuid() != 0:
        pytest.fail("the second Docker host needs root (network namespaces, dockerd)", pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="isol8rt-second-host-"))
    tag = f"k2d{secrets.token_hex(2)}"
    certificates_dir = root / "certs"
    certificates_dir.mkdir()
    octet = _free_subnet()
    host = SecondHost(root, make_certificates(certificates_dir, f"10.213.{octet}.2"), tag, octet)
    try:
        try:
            host.start()
            host.load("isol8rt:python")
        except (RuntimeError, OSError) as exc:
            pytest.fail(f"could not start a second Docker host: {exc}", pytrace=False)
        yield host
    finally:
        host.stop()
