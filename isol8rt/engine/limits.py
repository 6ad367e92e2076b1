"""From the engine's options to the container it needs (:class:`~.backend.SandboxSpec`)."""

from __future__ import annotations

import re

from ..errors import InvalidRequest
from ..runtimes import LABEL_ENGINE, LABEL_RUNTIME, RuntimeInfo
from ..security import seccomp
from ..types import Isol8Options, SecurityConfig
from .backend import SandboxSpec

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(field_name: str, text: str | int) -> int:
    """Bytes in a size such as ``512m``, ``1g``, ``1.5GiB`` or a plain number of bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = _SIZE.match(str(text))
        if not match:
            raise InvalidRequest(f"{field_name}: {text!r} is not a size like 512m or 1g")
        value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value <= 0:
        raise InvalidRequest(f"{field_name}: {text!r} must be more than zero")
    return value


def tmpfs_size(field_name: str, text: str) -> str:
    """A tmpfs size option Docker accepts (whole bytes), checked."""
    return str(parse_size(field_name, text))


def seccomp_profile(security: SecurityConfig) -> str:
    """What Docker gets as the container's seccomp profile: "unconfined", or a profile's JSON.

    Profiles are validated and compiled with libseccomp when they load, so a bad one fails here, with
    its problem named, before any container is made."""
    if security.seccomp == "unconfined":
        return "unconfined"
    if security.seccomp == "custom":
        if not security.profile_path:
            raise InvalidRequest("security.profilePath: a custom seccomp profile needs the path of its JSON file")
        profile = seccomp.load_profile(security.profile_path)
    elif security.seccomp == "strict":
        profile = seccomp.load_profile("strict")
    else:
        raise InvalidRequest(f"security.seccomp: {security.seccomp!r} must be strict, unconfined or custom")
    return "unconfined" if profile.is_unconfined else seccomp.docker_json(profile)


def sandbox_spec(options: Isol8Options, runtime: RuntimeInfo, image: str, engine_id: str) -> SandboxSpec:
    memory = parse_size("memoryLimit", options.memory_limit)
    if memory < 6 * 1024 * 1024:
        raise InvalidRequest(f"memoryLimit: {options.memory_limit!r} is below Docker's 6 MiB minimum")
    if not 0 < options.cpu_limit <= 1024:
        raise InvalidRequest(f"cpuLimit: {options.cpu_limit!r} must be a positive number of cores")
    if not 0 < options.pids_limit <= 1_000_000:
        raise InvalidRequest(f"pidsLimit: {options.pids_limit!r} must be a positive number")
    if options.network == "filtered":
        raise InvalidRequest("network: 'filtered' is not available yet in this version; use 'none' or 'host'")
    return SandboxSpec(
        image=image,
        labels={LABEL_ENGINE: engine_id, LABEL_RUNTIME: runtime.name},
        memory_bytes=memory,
        nano_cpus=int(options.cpu_limit * 1e9),
        pids_limit=options.pids_limit,
        readonly_root=options.readonly_root_fs,
        sandbox_size=tmpfs_size("sandboxSize", options.sandbox_size),
        tmp_size=tmpfs_size("tmpSize", options.tmp_size),
        network=options.network,
        seccomp=seccomp_profile(options.security),
    )
