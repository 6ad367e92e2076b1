"""What the benchmark ran on: hardware, kernel, Docker (from its API), Python, isol8rt and the git commit."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from isol8rt import __version__
from isol8rt.docker import DockerClient, DockerError

REPO = Path(__file__).resolve().parents[2]


def _meminfo_total() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cgroup_version() -> str:
    return "v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "v1"


def _git(*args: str) -> str | None:
    try:
        # --no-optional-locks: reading the status must not rewrite the index.
        out = subprocess.run(["git", "--no-optional-locks", "-C", str(REPO), *args], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


async def describe(client: DockerClient) -> dict[str, Any]:
    """The machine record of a result document (``load_end`` is added when the run ends)."""
    docker_version = api_version = daemon_kernel = None
    try:
        version = await client.version()
        docker_version, api_version, daemon_kernel = version.version, version.api_version, version.kernel_version
    except DockerError:
        pass
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_bytes": _meminfo_total(),
        "kernel": platform.release(),
        "cgroup": _cgroup_version(),
        "docker_version": docker_version,
        "docker_api_version": api_version,
        "docker_kernel": daemon_kernel,
        "python": platform.python_version(),
        "isol8rt": __version__,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "hostname": platform.node(),
        "load_start": load_average(),
    }
