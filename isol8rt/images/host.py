"""The machine setup runs on: whether it may install things itself, and installing them with apt.

Setup installs host software (Docker's engine, mmdebstrap) only where it can do so safely and without
asking: as root on Debian or a derivative. Everywhere else it says what to install instead.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import trio

from ..errors import SetupError

DEBIAN_VERSION_FILE = Path("/etc/debian_version")

#: Where Debian and Ubuntu keep the CAs an administrator added to the host's trust store.
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")

_APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


def is_root() -> bool:
    return os.geteuid() == 0


def is_debian() -> bool:
    return DEBIAN_VERSION_FILE.exists()


def can_install_packages() -> bool:
    return is_root() and is_debian()


async def apt_install(packages: Sequence[str], *, progress: Callable[[str], None]) -> None:
    """``apt-get install`` ``packages``, running ``apt-get update`` first only when apt does not know
    one of them yet (a fresh machine has no package lists), or when the install fails with the lists
    it had: a machine image's lists can be old enough that the versions they name are gone from the
    mirror."""
    updated = False
    if not all([await _apt_knows(package) for package in packages]):
        progress("apt-get update")
        await _apt(["apt-get", "update", "-q"], packages)
        updated = True
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    progress(f"apt-get install {' '.join(packages)}")
    try:
        await _apt(install, packages)
    except SetupError:
        if updated:
            raise
        progress("apt-get update (the package lists were stale)")
        await _apt(["apt-get", "update", "-q"], packages)
        await _apt(install, packages)


def host_ca_bundle() -> bytes:
    """The CA certificates this host added to its own trust store, concatenated (often nothing).

    Images trust them too: behind a TLS-intercepting proxy, downloads made while building and from
    inside sandboxes must trust what the host trusts, or they fail.
    """
    if not LOCAL_CA_DIR.is_dir():
        return b""
    certificates = []
    for path in sorted(LOCAL_CA_DIR.rglob("*.crt")):
        data = path.read_bytes().strip()
        if b"-----BEGIN CERTIFICATE-----" in data:
            certificates.append(data + b"\n")
    return b"".join(certificates)


async def _apt_knows(package: str) -> bool:
    result = await trio.run_process(
        ["apt-cache", "show", "--no-all-versions", package], capture_stdout=True, capture_stderr=True, check=False
    )
    return result.returncode == 0 and bool(result.stdout.strip())


async def _apt(argv: list[str], packages: Sequence[str]) -> None:
    result = await trio.run_process(
        argv, env=_APT_ENV, stdin=subprocess.DEVNULL, capture_stdout=True, capture_stderr=True, check=False
    )
    if result.returncode != 0:
        output = (result.stderr or result.stdout).decode(errors="replace").strip().splitlines()
        reason = output[-1] if output else f"exit status {result.returncode}"
        raise SetupError(
            f"`{' '.join(argv[:2])}` failed while installing {', '.join(packages)} ({reason}): "
            f"install {' '.join(packages)} by hand and run the command again"
        )
