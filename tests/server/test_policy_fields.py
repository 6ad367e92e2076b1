"""The policy as an invariant: every field a client can send, in ``options`` and in ``request``, nested
structs included, has a rule, and each rule does what it says.

The walk reads the fields from the structs themselves (msgspec's type information), so a field added to
Isol8Options, ExecutionRequest or any struct inside them without a rule in isol8rt/server/policy.py fails
here. Then every option rule is probed: a value the rule must refuse is refused with a 403 naming the
field, a value it must accept is accepted, an ignored field changes nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from isol8rt import ExecutionRequest, Isol8Options
from isol8rt.server import policy
from isol8rt.server.policy import OPTION_RULES, REQUEST_RULES, OptionsPolicy, PolicyViolation
from isol8rt.types import AuditConfig, NetworkFilter, RemoteCodeConfig, SecurityConfig

DOCS = Path(__file__).resolve().parents[2] / "docs" / "server.md"


def wire_paths(struct: type, prefix: str = "") -> list[str]:
    """Every field's wire path: ``a``, ``a.b`` inside a struct, ``a{}.b`` inside a dict's values,
    ``a[].b`` inside a list's items."""
    paths = []
    for field in msgspec.inspect.type_info(struct).fields:
        path = prefix + field.encode_name
        paths.append(path)
        paths += _nested(field.type, path)
    return paths


def _nested(info, path: str) -> list[str]:
    if isinstance(info, msgspec.inspect.StructType):
        return wire_paths(info.cls, path + ".")
    if isinstance(info, msgspec.inspect.UnionType):
        return [p for member in info.types for p in _nested(member, path)]
    if isinstance(info, msgspec.inspect.DictType):
        return _nested(info.value_type, path + "{}")
    if isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.SetType, msgspec.inspect.VarTupleType)):
        return _nested(info.item_type, path + "[]")
    return []


def test_every_option_field_has_a_rule_and_every_rule_a_field():
    assert sorted(wire_paths(Isol8Options)) == sorted(OPTION_RULES)


def test_every_request_field_has_a_rule_and_every_rule_a_field():
    assert sorted(wire_paths(ExecutionRequest)) == sorted(REQUEST_RULES)


def test_the_walk_sees_nested_structs():
    """The walk itself could fail silently by seeing no nested field: it must see these."""
    paths = set(wire_paths(Isol8Options)) | {f"request.{p}" for p in wire_paths(ExecutionRequest)}
    assert {"security.ociRuntime", "networkFilter.connectPorts", "audit.destination", "remoteCode.requireHash",
            "poolSize.dirty", "request.files{}.base64", "request.networkFilter.allowPrivate"} <= paths


def test_docs_have_the_rules_table():
    """docs/server.md shows exactly the table the code produces (regenerate it with
    ``python -c 'from isol8rt.server.policy import rules_table; print(rules_table())'``)."""
    assert policy.rules_table() in DOCS.read_text()


# ------------------------------------------------------------------------------------ probing every option rule

CEILING = Isol8Options(
    network="filtered", network_filter=NetworkFilter(whitelist=[], blacklist=["bad"], allow_private=["10.0.0.0/8"],
                                                     connect_ports=[443]),
    cpu_limit=1.0, memory_limit="512m", pids_limit=64, max_output_size=1 << 20, timeout_ms=30_000,
    sandbox_size="512m", tmp_size="256m", secrets={"SERVER": "s"}, max_file_bytes=1 << 20,
    security=SecurityConfig(seccomp="strict", oci_runtime="runsc"),
    audit=AuditConfig(enabled=True, destination="/var/log/isol8rt"), extra_hosts={"db": "10.0.0.5"},
    remote_code=RemoteCodeConfig(enabled=True, allowed_hosts=["^code\\.example$"]),
)

#: For each "at most" option: a value above the ceiling, one below the floor, one in between.
AT_MOST = {
    "cpuLimit": (2.0, 0.001, 0.5),
    "memoryLimit": ("1g", "16m", "128m"),
    "pidsLimit": (65, 2, 16),
    "maxOutputSize": (2 << 20, 0, 4096),
    "sandboxSize": ("1g", "100k", "64m"),
    "tmpSize": ("1g", "100k", "64m"),
    "maxFileBytes": (2 << 20, -1, 1000),
}

#: A value different from the ceiling's for each field whose rule is "the server's".
OTHER_VALUE = {
    "image": "alpine:latest", "persist": True, "forkServer": True, "extraHosts": {"db": "127.0.0.1"},
    "security.seccomp": "unconfined", "security.profilePath": "/tmp/p.json", "security.ociRuntime": "runc",
    "audit.enabled": False, "audit.destination": "/tmp", "audit.includeCode": True, "audit.includeOutput": True,
    "audit.retentionDays": 1, "remoteCode.enabled": False, "remoteCode.allowedSchemes": ["http", "https"],
    "remoteCode.allowedHosts": [".*"], "remoteCode.blockedHosts": ["x"], "remoteCode.allowPrivate": ["0.0.0.0/0"],
    "remoteCode.maxCodeSize": 1, "remoteCode.fetchTimeoutMs": 1, "remoteCode.requireHash": True,
}

#: A value for each ignored field.
IGNORED_VALUE = {"mode": "persistent", "debug": True, "poolStrategy": "secure", "poolSize": 99, "maxConcurrent": 999,
                 "poolSize.clean": 7, "poolSize.dirty": 7}


def sent(path: str, value) -> dict:
    """``{"a": {"b": value}}`` for path ``a.b``."""
    for part in reversed(path.split(".")):
        value = {part: value}
    return value


def rule_paths(kind: str) -> list[str]:
    return [path for path, rule in OPTION_RULES.items() if rule.kind == kind]


@pytest.mark.parametrize("path", rule_paths(policy.SERVERS))
def test_servers_fields_are_refused_by_name_and_restating_is_fine(path):
    with pytest.raises(PolicyViolation) as caught:
        OptionsPolicy(CEILING).effective(sent(path, OTHER_VALUE[path]))
    assert caught.value.option == path
    # The ceiling's own value, written back: no change, the server's own engine.
    own = CEILING
    for part in path.split("."):
        own = getattr(own, next(f.name for f in msgspec.structs.fields(own) if f.encode_name == part))
    assert OptionsPolicy(CEILING).effective(sent(path, msgspec.to_builtins(own))).options is CEILING


@pytest.mark.parametrize("path", rule_paths(policy.AT_MOST))
def test_at_most_fields_are_capped_floored_and_honoured(path):
    above, below, between = AT_MOST[path]
    with pytest.raises(PolicyViolation) as caught:
        OptionsPolicy(CEILING).effective({path: above})
    assert caught.value.option == path
    with pytest.raises(policy.InvalidRequest, match=f"options.{path}"):
        OptionsPolicy(CEILING).effective({path: below})
    tightened = OptionsPolicy(CEILING).effective({path: between}).options
    name = next(f.name for f in msgspec.structs.fields(Isol8Options) if f.encode_name == path)
    assert getattr(tightened, name) == between


@pytest.mark.parametrize("path", rule_paths(policy.IGNORED))
def test_ignored_fields_change_nothing(path):
    assert OptionsPolicy(CEILING).effective(sent(path, IGNORED_VALUE[path])).options is CEILING


def test_the_remaining_rules():
    """The rules of one field each: network, readonlyRootFs, secrets, timeoutMs, logNetwork, networkFilter."""
    kinds = {path: rule.kind for path, rule in OPTION_RULES.items()}
    probed = set(rule_paths(policy.SERVERS)) | set(rule_paths(policy.AT_MOST)) | set(rule_paths(policy.IGNORED))
    rest = {path for path in OPTION_RULES if path not in probed}
    assert rest == {"network", "networkFilter", "networkFilter.whitelist", "networkFilter.blacklist",
                    "networkFilter.allowPrivate", "networkFilter.connectPorts", "readonlyRootFs", "secrets",
                    "timeoutMs", "logNetwork", "security", "audit", "remoteCode"}, kinds
    check = OptionsPolicy(CEILING)
    with pytest.raises(PolicyViolation, match="network"):
        check.effective({"network": "host"})
    assert check.effective({"network": "none"}).options.network == "none"
    with pytest.raises(PolicyViolation, match="readonlyRootFs"):
        check.effective({"readonlyRootFs": False})
    with pytest.raises(PolicyViolation, match="secrets.SERVER"):
        check.effective({"secrets": {"SERVER": "mine"}})
    assert check.effective({"secrets": {"MINE": "x"}}).options.secrets == {"SERVER": "s", "MINE": "x"}
    with pytest.raises(PolicyViolation, match="timeoutMs"):
        check.effective({"timeoutMs": 30_001})
    assert check.effective({"timeoutMs": 5}).timeout_ms == 5
    assert check.effective({"logNetwork": True}).options.log_network is True
    for widened, field in (({"whitelist": ["x"], "allowPrivate": ["0.0.0.0/0"]}, "allowPrivate"),
                           ({"connectPorts": [22]}, "connectPorts")):
        with pytest.raises(PolicyViolation, match=f"networkFilter.{field}"):
            check.effective({"networkFilter": widened})
    narrowed = check.effective({"networkFilter": {"whitelist": ["^ok$"], "blacklist": ["worse"]}}).network_filter
    assert narrowed.whitelist == ["^ok$"] and narrowed.blacklist == ["bad", "worse"]
    # Struct rules are each field's: a struct sent whole is checked field by field.
    with pytest.raises(PolicyViolation, match="security.ociRuntime"):
        check.effective({"security": {"seccomp": "strict", "ociRuntime": None}})
    with pytest.raises(PolicyViolation, match="audit"):
        check.effective({"audit": None})


def test_request_rules():
    """The request's own fields: the timeout under the ceiling, remote code only as the server allows it."""
    check = OptionsPolicy(Isol8Options(timeout_ms=10_000))
    with pytest.raises(PolicyViolation, match="timeoutMs"):
        check.check_request(ExecutionRequest(code="1", timeout_ms=10_001), check.effective(None))
    with pytest.raises(PolicyViolation, match="codeUrl"):
        check.check_request(ExecutionRequest(code_url="https://example.com/x.py"), check.effective(None))
    with pytest.raises(PolicyViolation, match="allowInsecureCodeUrl"):
        check.check_request(ExecutionRequest(code="1", allow_insecure_code_url=True), check.effective(None))
    free = [path for path, rule in REQUEST_RULES.items() if rule.kind == policy.FREE]
    assert {"code", "env", "files", "outputPaths", "installPackages", "metadata"} <= set(free)
    assert re.search(r"installs.*count", REQUEST_RULES["timeoutMs"].summary)
