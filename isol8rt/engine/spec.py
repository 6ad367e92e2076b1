"""From the engine's options to the container it needs (:class:`~.backend.SandboxSpec`)."""

from __future__ import annotations

import ipaddress
import re

import msgspec

from ..agent import protocol
from ..errors import InvalidRequest
from ..runtimes import LABEL_ENGINE, LABEL_NODE, LABEL_RUNTIME, RuntimeInfo
from ..security import seccomp
from ..types import Isol8Options, NetworkFilter, SecurityConfig
from .backend import SandboxSpec

_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
#: The largest size Docker's API takes (an int64 of bytes).
_MAX_BYTES = (1 << 63) - 1

#: Docker's smallest CPU quota (NanoCPUs 10^7). Below it Docker refuses the container, and a value that
#: rounds to 0 NanoCPUs means no limit at all: the check is on the converted value.
MIN_NANO_CPUS = 10_000_000
#: Docker's smallest memory limit.
MIN_MEMORY_BYTES = 6 * 1024 * 1024


def parse_size(field_name: str, text: str | int) -> int:
    """Bytes in a size such as ``512m``, ``1g``, ``1.5GiB`` or a plain number of bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = _SIZE.match(str(text))
        if not match:
            raise InvalidRequest(f"{field_name}: {text!r} is not a size like 512m or 1g")
        scaled = float(match.group(1)) * _UNITS[match.group(2).lower()]
        # A number of hundreds of digits is infinite as a float, and int(inf) raises OverflowError.
        value = int(scaled) if scaled < _MAX_BYTES else _MAX_BYTES + 1
    if value <= 0:
        raise InvalidRequest(f"{field_name}: {text!r} must be more than zero")
    if value > _MAX_BYTES:
        raise InvalidRequest(f"{field_name}: {str(text)[:40]!r} is more than Docker can take (8 EiB)")
    return value


def tmpfs_size(field_name: str, text: str) -> str:
    """A tmpfs size option Docker accepts (whole bytes), checked."""
    return str(parse_size(field_name, text))


#: The one addition a filtered sandbox's container profile needs: the agent writes its firewall through
#: netfilter's netlink family (NETLINK_NETFILTER). The per-run filter keeps user code off it.
_NETFILTER_SOCKET = seccomp.SyscallRule(
    names=["socket"], action="SCMP_ACT_ALLOW",
    args=[seccomp.ArgCondition(index=0, value=16, op="SCMP_CMP_EQ"),
          seccomp.ArgCondition(index=2, value=12, op="SCMP_CMP_EQ")],
    comment="AF_NETLINK with NETLINK_NETFILTER: the agent's firewall set-up in filtered mode",
)


def seccomp_profile(security: SecurityConfig, network: str = "none") -> str:
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
        if network == "filtered":
            profile = msgspec.structs.replace(profile, syscalls=[*profile.syscalls, _NETFILTER_SOCKET])
    else:
        raise InvalidRequest(f"security.seccomp: {security.seccomp!r} must be strict, unconfined or custom")
    return "unconfined" if profile.is_unconfined else seccomp.docker_json(profile)


def sandbox_spec(options: Isol8Options, runtime: RuntimeInfo, image: str, engine_id: str,
                 node_id: str | None = None) -> SandboxSpec:
    memory = parse_size("memoryLimit", options.memory_limit)
    if memory < MIN_MEMORY_BYTES:
        raise InvalidRequest(f"memoryLimit: {options.memory_limit!r} is below Docker's 6 MiB minimum")
    nano_cpus = nano_cpus_of(options.cpu_limit)
    if not 0 < options.pids_limit <= 1_000_000:
        raise InvalidRequest(f"pidsLimit: {options.pids_limit!r} must be a positive number")
    if options.network not in ("none", "host", "filtered"):
        raise InvalidRequest(f"network: {options.network!r} must be none, host or filtered")
    extra_hosts = tuple(f"{name}:{check_host_entry(name, address)}" for name, address in sorted(options.extra_hosts.items()))
    cap_add = ("SETUID", "SETGID", "KILL")
    if options.network == "filtered":
        # Only the agent's firewall set-up uses it; the agent drops it before any user process starts.
        cap_add += ("NET_ADMIN",)
    return SandboxSpec(
        image=image,
        labels={LABEL_ENGINE: engine_id, LABEL_RUNTIME: runtime.name, **({LABEL_NODE: node_id} if node_id else {})},
        memory_bytes=memory,
        nano_cpus=nano_cpus,
        pids_limit=options.pids_limit,
        readonly_root=options.readonly_root_fs,
        sandbox_size=tmpfs_size("sandboxSize", options.sandbox_size),
        tmp_size=tmpfs_size("tmpSize", options.tmp_size),
        network=options.network,
        seccomp=seccomp_profile(options.security, options.network),
        extra_hosts=extra_hosts,
        cap_add=cap_add,
        oci_runtime=check_oci_runtime(options.security.oci_runtime),
    )


def nano_cpus_of(cpu_limit: float) -> int:
    """Docker's NanoCPUs for a number of cores, checked after the conversion (0.01 to 1024 cores)."""
    if not isinstance(cpu_limit, (int, float)) or cpu_limit != cpu_limit:  # NaN compares unequal to itself
        raise InvalidRequest(f"cpuLimit: {cpu_limit!r} must be a number of cores")
    # Clamped before the product: a huge negative (or positive) float times 1e9 is infinite, and
    # round(inf) raises OverflowError (a 500 on the server).
    nano = round(cpu_limit * 1e9) if -1e6 < cpu_limit < 1e6 else (1 << 62) * (1 if cpu_limit > 0 else -1)
    if not MIN_NANO_CPUS <= nano <= 1024 * 10**9:
        raise InvalidRequest(f"cpuLimit: {cpu_limit!r} must be between 0.01 and 1024 cores")
    return nano


def check_oci_runtime(name: str | None) -> str | None:
    if name is not None and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", name):
        raise InvalidRequest(f"security.ociRuntime: {name!r} is not a runtime name")
    return name


def check_host_entry(name: str, address: str) -> str:
    if not _HOST_NAME.match(name):
        raise InvalidRequest(f"extraHosts: {name!r} is not a host name")
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise InvalidRequest(f"extraHosts[{name!r}]: {address!r} is not an IP address") from None


def network_policy(network_filter: NetworkFilter | None) -> protocol.NetworkPolicy:
    """The proxy's policy for a filter, checked here so a bad regex or CIDR is refused before anything runs."""
    if network_filter is None:
        return protocol.NetworkPolicy()
    for field_name, patterns in (("whitelist", network_filter.whitelist), ("blacklist", network_filter.blacklist)):
        for pattern in patterns:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as exc:
                raise InvalidRequest(f"networkFilter.{field_name}: {pattern!r} is not a valid regex: {exc}") from None
    for cidr in network_filter.allow_private:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except (ValueError, TypeError):
            raise InvalidRequest(f"networkFilter.allowPrivate: {cidr!r} is not a network (CIDR)") from None
    for port in network_filter.connect_ports:
        if not isinstance(port, int) or not 0 < port < 65536:
            raise InvalidRequest(f"networkFilter.connectPorts: {port!r} is not a port")
    return protocol.NetworkPolicy(allow=list(network_filter.whitelist), deny=list(network_filter.blacklist),
                                  allow_private=list(network_filter.allow_private),
                                  connect_ports=list(network_filter.connect_ports))
