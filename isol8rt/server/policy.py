"""The server's options are a ceiling: a client may tighten them, never loosen them.

The reference server spread a client's ``options`` over its own, so any key could ask for host
networking, no seccomp, another image or a writable root. Here every field a client can send, in
``options`` (:class:`~isol8rt.types.Isol8Options`) and in ``request``
(:class:`~isol8rt.types.ExecutionRequest`), nested structs included, has a :class:`Rule` in
:data:`OPTION_RULES` or :data:`REQUEST_RULES`, keyed by its path on the wire. A test walks every field of
both structs against these tables, so a field added later without a rule fails CI; docs/server.md's
table is :func:`rules_table`'s output, checked by a test.

The rules, in short: numbers and sizes may only go down, and not below a floor that still makes a working
sandbox (checked after conversion: ``cpuLimit`` in Docker's NanoCPUs, sizes in bytes); the network may
only narrow; the image, the seccomp profile, the OCI runtime, audit, remote-code and extra-hosts settings
are the server's (restating them is fine, anything else is 403 naming the field); pool and mode settings
describe how the server runs and are ignored. A value below a floor, or malformed, is a 400.

The result is a :class:`Decision`: the run's effective engine options, plus what is applied to the
request itself because the engine takes it per run: ``timeoutMs``, and the network filter (a request's
own ``networkFilter`` is narrowed the same way, since it replaces the engine's for that run). So a client
asking only for a shorter timeout or a narrower filter still shares the server's one long-lived engine
and its warm pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import msgspec

from ..engine.spec import MIN_NANO_CPUS, nano_cpus_of, parse_size
from ..engine.plan import check_env, output_file_budget
from ..errors import InvalidRequest
from ..types import AuditConfig, ExecutionRequest, Isol8Options, NetworkFilter, PoolSize, RemoteCodeConfig

_KEY_ENCODER = msgspec.json.Encoder(order="deterministic")

#: Floors under the tightest values a client may ask for: below them a sandbox stops being one that works
#: (or, for the CPU, Docker would refuse it; a quota that rounds to 0 NanoCPUs would mean no limit at all).
MIN_MEMORY = 32 * 1024 * 1024
MIN_PIDS = 8
MIN_TMPFS = 1024 * 1024
_NETWORK_RANK = {"none": 0, "filtered": 1, "host": 2}
#: The ports HTTPS tunnels may reach when a filter names none (the proxy's default).
_DEFAULT_CONNECT_PORTS = (443, 80)


class PolicyViolation(Exception):
    """A client asked for more than the server allows: answer 403 with this message."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"Option not allowed: {option}: {message}")
        self.option = option


@dataclass(frozen=True, slots=True)
class Rule:
    """What a client may send in one field. ``kind`` is what the policy does with it (and what the tests
    probe); ``summary`` is the docs table's wording."""

    kind: str
    summary: str


# The kinds of rule.
IGNORED = "ignored"
FREE = "free"
SERVERS = "server's"
AT_MOST = "at most"
NARROWER = "narrower"
ADDED = "added"
PER_RUN = "per run"
EACH_FIELD = "each field"


def _at_most(floor: str) -> Rule:
    return Rule(AT_MOST, f"at most the server's value, at least {floor}; a tighter value gets an engine of its own")


_SERVERS = Rule(SERVERS, "the server's: restating its value is fine, anything else is 403")
_IGNORED = Rule(IGNORED, "ignored: how the server runs, not what a sandbox may do")
_EACH = Rule(EACH_FIELD, "each field by its own rule, below")
_FREE = Rule(FREE, "the client's")

OPTION_RULES: dict[str, Rule] = {
    "mode": _IGNORED,
    "network": Rule(NARROWER, "no wider than the server's (none < filtered < host)"),
    "networkFilter": Rule(EACH_FIELD, "each field by its own rule, below; only when the network is filtered "
                                      "(per run: the shared engine is kept)"),
    "networkFilter.whitelist": Rule(NARROWER, "may narrow a server that allows every host; else the server's"),
    "networkFilter.blacklist": Rule(ADDED, "added to the server's"),
    "networkFilter.allowPrivate": Rule(NARROWER, "a subset of the server's"),
    "networkFilter.connectPorts": Rule(NARROWER, "a subset of the server's (443 and 80 when it names none)"),
    "cpuLimit": _at_most("0.01 CPU (Docker's NanoCPUs, after conversion)"),
    "memoryLimit": _at_most("32m (in bytes, after parsing)"),
    "pidsLimit": _at_most(f"{MIN_PIDS} processes"),
    "readonlyRootFs": Rule(NARROWER, "true is always fine; false only if the server's is false"),
    "maxOutputSize": _at_most("1 byte"),
    "secrets": Rule(ADDED, "added to the server's, never replacing one of its names"),
    "timeoutMs": Rule(PER_RUN, "at most the server's, at least 1; applied per run (the shared engine is kept)"),
    "image": _SERVERS,
    "sandboxSize": _at_most("1m"),
    "tmpSize": _at_most("1m"),
    "debug": _IGNORED,
    "persist": _SERVERS,
    "logNetwork": _FREE,
    "security": _EACH,
    "security.seccomp": _SERVERS,
    "security.profilePath": _SERVERS,
    "security.ociRuntime": _SERVERS,
    "audit": _EACH,
    "audit.enabled": _SERVERS,
    "audit.destination": _SERVERS,
    "audit.includeCode": _SERVERS,
    "audit.includeOutput": _SERVERS,
    "audit.retentionDays": _SERVERS,
    "poolStrategy": _IGNORED,
    "poolSize": _IGNORED,
    "poolSize.clean": _IGNORED,
    "poolSize.dirty": _IGNORED,
    "maxConcurrent": _IGNORED,
    "extraHosts": _SERVERS,
    "remoteCode": _EACH,
    "remoteCode.enabled": _SERVERS,
    "remoteCode.allowedSchemes": _SERVERS,
    "remoteCode.allowedHosts": _SERVERS,
    "remoteCode.blockedHosts": _SERVERS,
    "remoteCode.allowPrivate": _SERVERS,
    "remoteCode.maxCodeSize": _SERVERS,
    "remoteCode.fetchTimeoutMs": _SERVERS,
    "remoteCode.requireHash": _SERVERS,
    "maxFileBytes": _at_most("0 (no output files)"),
    "forkServer": _SERVERS,
}

_FREE_RUN = Rule(FREE, "the client's (checked by the engine, 400 when malformed)")

REQUEST_RULES: dict[str, Rule] = {
    "runtime": _FREE_RUN,
    "code": Rule(FREE, "the client's, at most 16 MiB (and the body limit)"),
    "cmd": _FREE_RUN,
    "codeUrl": Rule(SERVERS, "fetched only if the server's remoteCode allows it, under its rules"),
    "codeHash": _FREE_RUN,
    "allowInsecureCodeUrl": Rule(SERVERS, "true is 403 unless the server's remoteCode allows http"),
    "timeoutMs": Rule(AT_MOST, "at most the server's timeout; installs and setup count against it"),
    "env": _FREE_RUN,
    "fileExtension": _FREE_RUN,
    "stdin": _FREE_RUN,
    "files": Rule(FREE, "the client's, within the sandbox (its size, its memory) and the body limit"),
    "files{}.base64": _FREE_RUN,
    "files{}.type": _FREE_RUN,
    "files{}.data": _FREE_RUN,
    "outputPaths": Rule(FREE, "the client's; what comes back is within maxFileBytes (apparent size)"),
    "installPackages": Rule(FREE, "the client's (needs network); the install's time counts against timeoutMs"),
    "setupScript": Rule(FREE, "the client's; its time counts against timeoutMs"),
    "metadata": Rule(FREE, "the client's, recorded as such (the audit's key and tenant come from the key)"),
    "workdir": Rule(FREE, "the client's, inside /sandbox"),
    "networkFilter": Rule(EACH_FIELD, "narrowed like options.networkFilter (it replaces the engine's for the run)"),
    "networkFilter.whitelist": OPTION_RULES["networkFilter.whitelist"],
    "networkFilter.blacklist": OPTION_RULES["networkFilter.blacklist"],
    "networkFilter.allowPrivate": OPTION_RULES["networkFilter.allowPrivate"],
    "networkFilter.connectPorts": OPTION_RULES["networkFilter.connectPorts"],
    "maxOutputSize": Rule(AT_MOST, "lowers the effective maxOutputSize, never raises it"),
    "displayLastExpression": _FREE_RUN,
}


def rules_table() -> str:
    """The rules as docs/server.md shows them (a test checks the page has exactly this)."""
    lines = ["| field | rule |", "|---|---|"]
    for prefix, rules in (("options.", OPTION_RULES), ("request.", REQUEST_RULES)):
        for path, rule in rules.items():
            lines.append(f"| `{prefix}{path}` | {rule.summary} |")
    return "\n".join(lines) + "\n"


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


def _violation(path: str, message: str) -> PolicyViolation:
    return PolicyViolation(path, message)


def _below(path: str, value: Any, floor: str) -> InvalidRequest:
    return InvalidRequest(f"options.{path}: {value!r} is below the smallest allowed, {floor}")


def _above(path: str, value: Any, ceiling: Any) -> PolicyViolation:
    return PolicyViolation(path, f"{value!r} is above this server's limit of {ceiling!r}")


# ------------------------------------------------------------------------------------ at most (numbers, sizes)

def _size_at_most(floor: int, floor_text: str) -> Callable[[str, Any, Any], Any]:
    def check(path: str, asked: Any, ceiling: Any) -> Any:
        value = parse_size(f"options.{path}", asked)
        if value < floor:
            raise _below(path, asked, floor_text)
        if value > parse_size(path, ceiling):
            raise _above(path, asked, ceiling)
        return asked
    return check


def _int_at_most(floor: int, floor_text: str) -> Callable[[str, Any, Any], Any]:
    def check(path: str, asked: Any, ceiling: Any) -> Any:
        if asked < floor:
            raise _below(path, asked, floor_text)
        if asked > ceiling:
            raise _above(path, asked, ceiling)
        return asked
    return check


def _cpu(path: str, asked: Any, ceiling: Any) -> Any:
    try:
        nano = nano_cpus_of(asked)
    except InvalidRequest:
        raise InvalidRequest(f"options.cpuLimit: {asked!r} must be between {MIN_NANO_CPUS / 1e9:g} and 1024 "
                             "cores (Docker refuses less, and a quota that rounds to nothing is no limit)") from None
    if nano > nano_cpus_of(ceiling):
        raise _above(path, asked, ceiling)
    return asked


_AT_MOST_CHECKS: dict[str, Callable[[str, Any, Any], Any]] = {
    "cpuLimit": _cpu,
    "memoryLimit": _size_at_most(MIN_MEMORY, "32m"),
    "pidsLimit": _int_at_most(MIN_PIDS, f"{MIN_PIDS} processes"),
    "maxOutputSize": _int_at_most(1, "1 byte"),
    "sandboxSize": _size_at_most(MIN_TMPFS, "1m"),
    "tmpSize": _size_at_most(MIN_TMPFS, "1m"),
}


# ------------------------------------------------------------------------------------ the policy

_FIELDS = {field.encode_name: field.name for field in msgspec.structs.fields(Isol8Options)}
#: The structs a nested rule compares against when the server has none (None means "not set": their
#: defaults are what restating "not set" looks like).
_DEFAULT_STRUCTS: dict[str, Any] = {"audit": AuditConfig(), "remoteCode": RemoteCodeConfig(), "poolSize": PoolSize()}


class OptionsPolicy:
    """The server's options as a ceiling over what each request asks for (the proxy's ``Policy`` is another
    thing: which hosts a sandbox may reach)."""

    def __init__(self, ceiling: Isol8Options, *, exact: bool = False) -> None:
        self.ceiling = ceiling
        self.ceiling_key = options_key(ceiling)
        #: Refuse (403) rather than run with any other value than a field the client wrote (the local
        #: engine: its CLI then runs cold, with exactly its own options).
        self.exact = exact

    def effective(self, raw: dict[str, Any] | None) -> Decision:
        """What a client's ``options`` (as sent) come to. Only what a client *wrote* is checked: a default
        filled in by decoding asks for nothing."""
        if not raw:
            return Decision(self.ceiling)
        try:
            asked = msgspec.convert(raw, Isol8Options)
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"options: {exc}") from None
        ceiling = self.ceiling
        changes: dict[str, Any] = {}
        for key, sent in raw.items():
            rule = OPTION_RULES.get(key)
            if rule is None:
                continue  # not an option of this engine (a newer or older client's): it asks for nothing
            name = _FIELDS[key]
            value, server = getattr(asked, name), getattr(ceiling, name)
            if rule.kind == IGNORED or rule.kind == FREE and value == server:
                continue
            if rule.kind == FREE:
                changes[name] = value
            elif rule.kind == SERVERS:
                if value != server:
                    raise _violation(key, "this server sets it")
            elif rule.kind == EACH_FIELD:
                if key != "networkFilter":
                    self._each_field(key, sent, value, server)
            elif rule.kind == AT_MOST:
                if key == "maxFileBytes":
                    changes[name] = self._file_budget(value)
                else:
                    changes[name] = _AT_MOST_CHECKS[key](key, value, server)
            elif key == "network":
                if _NETWORK_RANK[value] > _NETWORK_RANK[server]:
                    raise _violation(key, f"{value!r} is wider than this server's {server!r}")
                changes[name] = value
            elif key == "readonlyRootFs":
                if server and not value:
                    raise _violation(key, "this server keeps the root filesystem read-only")
                changes[name] = value
            elif key == "secrets":
                changes[name] = _secrets(value, server)
            elif key == "timeoutMs":
                if not 0 < value <= ceiling.timeout_ms:
                    raise _violation(key, f"{value!r} is outside this server's limit of 1..{ceiling.timeout_ms} ms")
            else:  # pragma: no cover - every kind above is handled; a new one must be too
                raise AssertionError(f"no handling for the rule of options.{key}")
        # Restating the server's value changes nothing (and keeps the shared engine).
        changes = {name: value for name, value in changes.items() if value != getattr(ceiling, name)}
        effective = msgspec.structs.replace(ceiling, **changes) if changes else ceiling
        network_filter = None
        if isinstance(raw.get("networkFilter"), dict) and effective.network == "filtered":
            network_filter = _network_filter(asked.network_filter, effective.network_filter)
        if self.exact:
            _check_exact(raw, asked, effective, network_filter)
        return Decision(effective, asked.timeout_ms if "timeoutMs" in raw else None, network_filter)

    def _each_field(self, key: str, sent: Any, value: Any, server: Any) -> None:
        """A struct whose fields each have their own rule (security, audit, remoteCode): every field the
        client wrote must be the server's."""
        if not isinstance(sent, dict):  # null: "none of it", which must be what the server has too
            if value != server:
                raise _violation(key, "this server sets it")
            return
        # A struct the server leaves unset is compared with its defaults (what "unset" means).
        base = server if server is not None else _DEFAULT_STRUCTS[key]
        names = {field.encode_name: field.name for field in msgspec.structs.fields(type(value))}
        for sub in sent:
            rule = OPTION_RULES.get(f"{key}.{sub}")
            if rule is None:
                continue  # not a field of this struct: it asks for nothing
            assert rule.kind == SERVERS, f"options.{key}.{sub}: only the server's rule is handled here"
            if getattr(value, names[sub]) != getattr(base, names[sub]):
                raise _violation(f"{key}.{sub}", "this server sets it")

    def _file_budget(self, asked: int | None) -> int | None:
        if asked == self.ceiling.max_file_bytes:
            return asked
        budget = output_file_budget(self.ceiling)
        value = budget + 1 if asked is None else asked
        if value < 0:
            raise InvalidRequest(f"options.maxFileBytes: {asked!r} must be a number of bytes (0 or more)")
        if value > budget:
            raise _above("maxFileBytes", asked, budget)
        return value

    def check_request(self, request: ExecutionRequest, decision: Decision) -> None:
        """Apply the ceiling to the request's own fields (in place)."""
        if request.allow_insecure_code_url:
            remote = self.ceiling.remote_code
            if remote is None or "http" not in remote.allowed_schemes:
                raise PolicyViolation("allowInsecureCodeUrl", "this server fetches no code over plain http")
        if request.code_url is not None and (self.ceiling.remote_code is None or not self.ceiling.remote_code.enabled):
            raise PolicyViolation("codeUrl", "this server does not fetch code from URLs")
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


def _check_exact(raw: dict[str, Any], asked: Isol8Options, effective: Isol8Options,
                 network_filter: NetworkFilter | None) -> None:
    """Every field the client wrote, as the run would have it, is what the client asked for: a merged
    secret, an added deny rule or the server's value of a nested field is a refusal, not a surprise."""
    for key in raw:
        rule = OPTION_RULES.get(key)
        if rule is None:
            # An option this engine does not know (a newer client's): it cannot honour it.
            raise _violation(key, "this engine does not know this option")
        if rule.kind in (IGNORED, PER_RUN):
            continue  # how the server runs, or applied to the run as asked
        name = _FIELDS[key]
        value = getattr(effective, name)
        if key == "networkFilter":
            if effective.network != "filtered":
                continue  # no proxy: the filter shapes nothing
            value = network_filter or value
        if value != getattr(asked, name):
            raise _violation(key, "this engine would run it with another value (it runs only the options asked "
                                  "for, exactly)")


def _secrets(asked: dict[str, str], server: dict[str, str]) -> dict[str, str]:
    check_env("options.secrets", asked)
    taken = sorted(set(asked) & set(server))
    if taken:
        raise PolicyViolation(f"secrets.{taken[0]}", "this name is one of the server's own secrets")
    return {**server, **asked}


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
