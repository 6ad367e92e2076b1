"""The server's options are a ceiling: a client may tighten them, never loosen them.

The reference server spread a client's ``options`` over its own, so any key could ask for host
networking, no seccomp, another image or a writable root. Here each option a client *writes* (a default
filled in by decoding asks for nothing) is checked against the server's value:

- tightenable: less memory, CPU, pids, output, /sandbox or /tmp; a shorter timeout; a network mode no
  wider (none < filtered < host); a filter with more denied hosts; strict seccomp; a read-only root;
- the same value as the server's is always fine (a client that restates the defaults is not refused);
- anything wider, another image, a custom or unconfined seccomp profile, ``persist``, audit settings
  or remote-code settings: :class:`PolicyViolation` (403) naming the option;
- ``mode``, ``debug`` and the pool settings describe how the server runs, not the sandbox: ignored.

The result is a :class:`Decision`: the run's effective engine options, plus what is applied to the
request itself because the engine takes it per run: ``timeoutMs``, and the network filter (a request's
own ``networkFilter`` is narrowed the same way, since it replaces the engine's for that run). So a client
asking only for a shorter timeout or a narrower filter still shares the server's one long-lived engine
and its warm pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from ..engine.limits import parse_size
from ..engine.plan import check_env
from ..errors import InvalidRequest
from ..types import ExecutionRequest, Isol8Options, NetworkFilter, SecurityConfig

_NETWORK_RANK = {"none": 0, "filtered": 1, "host": 2}
_IGNORED = frozenset({"mode", "debug", "poolStrategy", "poolSize", "maxConcurrent"})
_NUMBERS = {"cpuLimit": "cpu_limit", "pidsLimit": "pids_limit", "maxOutputSize": "max_output_size"}
_SIZES = {"memoryLimit": "memory_limit", "sandboxSize": "sandbox_size", "tmpSize": "tmp_size"}
#: Options of the reference system this engine does not have but a client may still send.
_REFUSED_EXTRAS = {"remoteCode": "fetching code from URLs is the server's decision"}

_KEY_ENCODER = msgspec.json.Encoder(order="deterministic")


class PolicyViolation(Exception):
    """A client asked for more than the server allows: answer 403 with this message."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"Option not allowed: {option}: {message}")
        self.option = option


@dataclass(frozen=True, slots=True)
class Decision:
    options: Isol8Options
    #: The timeout a client's options asked for (None: the request's own, or the server's).
    timeout_ms: int | None = None
    #: The client's options' network filter, narrowed to the server's (None: the engine's own).
    network_filter: NetworkFilter | None = None


def options_key(options: Isol8Options) -> bytes:
    """Equal for option sets that need the same engine."""
    return _KEY_ENCODER.encode(options)


class Policy:
    def __init__(self, ceiling: Isol8Options) -> None:
        self.ceiling = ceiling
        self.ceiling_key = options_key(ceiling)

    def effective(self, raw: dict[str, Any] | None) -> Decision:
        """What a client's ``options`` (as sent) come to."""
        if not raw:
            return Decision(self.ceiling)
        try:
            asked = msgspec.convert(raw, Isol8Options)
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"options: {exc}") from None
        ceiling = self.ceiling
        changes: dict[str, Any] = {}
        for option in raw:
            if option in _IGNORED:
                continue
            if option in _REFUSED_EXTRAS:
                raise PolicyViolation(option, _REFUSED_EXTRAS[option])
            if option in _NUMBERS:
                name = _NUMBERS[option]
                value = getattr(asked, name)
                if value <= 0:
                    raise InvalidRequest(f"options.{option}: {value!r} must be more than zero")
                if value > getattr(ceiling, name):
                    raise PolicyViolation(option, f"{value!r} is above this server's limit of "
                                                  f"{getattr(ceiling, name)!r}")
                changes[name] = value
            elif option in _SIZES:
                name = _SIZES[option]
                value = getattr(asked, name)
                if parse_size(option, value) > parse_size(option, getattr(ceiling, name)):
                    raise PolicyViolation(option, f"{value!r} is above this server's limit of "
                                                  f"{getattr(ceiling, name)!r}")
                changes[name] = value
            elif option == "timeoutMs":
                if not 0 < asked.timeout_ms <= ceiling.timeout_ms:
                    raise PolicyViolation(option, f"{asked.timeout_ms!r} is outside this server's limit of "
                                                  f"1..{ceiling.timeout_ms} ms")
            elif option == "network":
                if _NETWORK_RANK[asked.network] > _NETWORK_RANK[ceiling.network]:
                    raise PolicyViolation(option, f"{asked.network!r} is wider than this server's "
                                                  f"{ceiling.network!r}")
                changes["network"] = asked.network
            elif option == "readonlyRootFs":
                if ceiling.readonly_root_fs and not asked.readonly_root_fs:
                    raise PolicyViolation(option, "this server keeps the root filesystem read-only")
                changes["readonly_root_fs"] = asked.readonly_root_fs
            elif option == "image":
                if asked.image is not None and asked.image != ceiling.image:
                    raise PolicyViolation(option, "this server chooses the images")
            elif option == "security":
                changes["security"] = _security(asked.security, ceiling.security)
            elif option == "secrets":
                check_env("options.secrets", asked.secrets)
                taken = sorted(set(asked.secrets) & set(ceiling.secrets))
                if taken:
                    raise PolicyViolation(f"secrets.{taken[0]}", "this name is one of the server's own secrets")
                changes["secrets"] = {**ceiling.secrets, **asked.secrets}
            elif option == "persist":
                if asked.persist and not ceiling.persist:
                    raise PolicyViolation(option, "containers are removed after use on this server")
            elif option == "audit":
                if asked.audit is not None and asked.audit != ceiling.audit:
                    raise PolicyViolation(option, "auditing is configured by the server")
            elif option == "logNetwork":
                changes["log_network"] = asked.log_network
        effective = msgspec.structs.replace(ceiling, **changes) if changes else ceiling
        network_filter = None
        if "networkFilter" in raw and effective.network == "filtered":
            network_filter = _network_filter(asked.network_filter, effective.network_filter)
        return Decision(effective, asked.timeout_ms if "timeoutMs" in raw else None, network_filter)

    def check_request(self, request: ExecutionRequest, decision: Decision) -> None:
        """Apply the ceiling to the request's own fields (in place)."""
        if request.allow_insecure_code_url:
            raise PolicyViolation("allowInsecureCodeUrl", "this server fetches no code over plain http")
        if request.timeout_ms is None:
            request.timeout_ms = decision.timeout_ms
        elif isinstance(request.timeout_ms, int) and request.timeout_ms > self.ceiling.timeout_ms:
            raise PolicyViolation("timeoutMs", f"{request.timeout_ms} is above this server's limit of "
                                               f"{self.ceiling.timeout_ms} ms")
        base = decision.network_filter or decision.options.network_filter
        if request.network_filter is not None and decision.options.network == "filtered":
            request.network_filter = _network_filter(request.network_filter, base)
        elif request.network_filter is None and decision.network_filter is not None:
            request.network_filter = decision.network_filter


def _security(asked: SecurityConfig, ceiling: SecurityConfig) -> SecurityConfig:
    if asked.seccomp == "strict" and asked.profile_path is None:
        return asked  # the tightest there is
    if asked.seccomp == ceiling.seccomp and asked.profile_path == ceiling.profile_path:
        return ceiling
    raise PolicyViolation("security.seccomp", f"{asked.seccomp!r} is not allowed on this server "
                                              f"(it runs {ceiling.seccomp!r})")


#: The ports HTTPS tunnels may reach when a filter names none (the proxy's default).
_DEFAULT_CONNECT_PORTS = (443, 80)


def _network_filter(asked: NetworkFilter | None, ceiling: NetworkFilter | None) -> NetworkFilter | None:
    """Deny lists add up; a client's allow list may only narrow a server that allows every host; private
    networks and tunnel ports may only be a subset of the server's. What a client leaves empty is the
    server's (an empty list cannot mean "tighter" there: to the proxy it means the default)."""
    if asked is None:
        return ceiling
    ceiling = ceiling or NetworkFilter()
    whitelist = ceiling.whitelist
    if asked.whitelist and asked.whitelist != ceiling.whitelist:
        if ceiling.whitelist:
            raise PolicyViolation("networkFilter.whitelist", "this server has its own allow list")
        whitelist = asked.whitelist
    extra_private = set(asked.allow_private) - set(ceiling.allow_private)
    if extra_private:
        raise PolicyViolation("networkFilter.allowPrivate", f"{sorted(extra_private)[0]!r} is not open on this server")
    extra_ports = set(asked.connect_ports) - set(ceiling.connect_ports or _DEFAULT_CONNECT_PORTS)
    if extra_ports:
        raise PolicyViolation("networkFilter.connectPorts", f"port {sorted(extra_ports)[0]} is not open on this server")
    return msgspec.structs.replace(
        ceiling,
        whitelist=list(whitelist),
        blacklist=list(dict.fromkeys([*ceiling.blacklist, *asked.blacklist])),
        allow_private=list(asked.allow_private or ceiling.allow_private),
        connect_ports=list(asked.connect_ports or ceiling.connect_ports),
    )
