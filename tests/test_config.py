"""The configuration file: strict checking with the offending key's path, defaults, the JSON Schema."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from isol8rt.config import (SCHEMA_PATH, Isol8Config, LoadedConfig, effective, json_schema, load_config, merge_network,
                            options_from_config, parse_config, session_idle_s)
from isol8rt.errors import InvalidRequest
from isol8rt.types import Isol8Options, NetworkFilter

SEED_EXAMPLE = {
    "$schema": "node_modules/isol8/schema/isol8.config.schema.json",
    "maxConcurrent": 10,
    "defaults": {"timeoutMs": 30000, "memoryLimit": "512m", "cpuLimit": 1.0, "network": "none"},
    "network": {"whitelist": ["^api\\.openai\\.com$"], "blacklist": []},
    "cleanup": {"autoPrune": True, "maxContainerAgeMs": 3600000},
    "dependencies": {"python": ["numpy", "pandas"], "node": ["lodash"]},
    "security": {"seccomp": "strict"},
}


def test_the_reference_systems_example_loads():
    config = parse_config(json.dumps(SEED_EXAMPLE))
    options = options_from_config(config)
    assert options.timeout_ms == 30000 and options.memory_limit == "512m" and options.network == "none"
    assert options.network_filter.whitelist == ["^api\\.openai\\.com$"]
    assert config.dependencies.python == ["numpy", "pandas"]
    assert options.security.oci_runtime is None


def test_the_oci_runtime_reaches_the_engine():
    options = options_from_config(parse_config(json.dumps({"security": {"ociRuntime": "crun"}})))
    assert options.security.oci_runtime == "crun" and options.security.seccomp == "strict"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"defaults": {"timeOutMs": 1}}, r"unknown field `timeOutMs` - at `\$.defaults`"),
        ({"defaults": {"timeoutMs": "fast"}}, r"at `\$.defaults.timeoutMs`"),
        ({"poolStrategy": "quick"}, r"at `\$.poolStrategy`"),
        ({"maxConcurrent": 0}, r"maxConcurrent must be at least 1"),
        ({"security": {"seccomp": "custom"}}, r"customProfilePath is missing"),
        ({"extra": 1}, r"unknown field `extra`"),
    ],
)
def test_bad_keys_and_values_are_refused_with_their_path(document, message):
    with pytest.raises(InvalidRequest, match=message):
        parse_config(json.dumps(document), "cfg.json")


def test_not_json():
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        parse_config(b"{nope", "cfg.json")


def test_project_file_then_user_file_then_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load_config(cwd=tmp_path).path is None
    user = tmp_path / "home" / ".isol8rt" / "config.json"
    user.parent.mkdir(parents=True)
    user.write_text(json.dumps({"poolSize": 3}))
    assert load_config(cwd=tmp_path).path == str(user)
    (tmp_path / "isol8rt.config.json").write_text(json.dumps({"defaults": {"timeoutMs": 1000}}))
    loaded = load_config(cwd=tmp_path)
    assert loaded.path == str(tmp_path / "isol8rt.config.json")
    assert loaded.sources["defaults"] == "file" and loaded.sources["pool_size"] == "default"


def test_shipped_schema_is_current():
    assert json.loads(SCHEMA_PATH.read_text()) == json_schema()


def test_config_command(tmp_path):
    (tmp_path / "isol8rt.config.json").write_text(json.dumps({"defaults": {"timeoutMs": 1234}}))
    done = subprocess.run([sys.executable, "-m", "isol8rt", "config", "--json"], cwd=tmp_path,
                          capture_output=True, text=True)
    resolved = json.loads(done.stdout)
    assert resolved["config"]["defaults"]["timeoutMs"] == 1234 and resolved["config"]["maxConcurrent"] == 10
    (tmp_path / "isol8rt.config.json").write_text("{\"defaults\": {\"nope\": 1}}")
    done = subprocess.run([sys.executable, "-m", "isol8rt", "config"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "`$.defaults`" in done.stderr and done.stderr.count("\n") == 1


# --------------------------------------------------------------------------------------------------
# the reference system's files, read when no isol8rt file exists

def test_a_reference_file_is_read_when_no_isol8rt_file_exists_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    reference = {**SEED_EXAMPLE, "debug": True, "auth": {"enabled": True},
                 "audit": {"enabled": True, "destination": "filesystem", "logDir": "/var/log/isol8",
                           "trackResources": True},
                 "remoteCode": {"enabled": False, "cacheTtl": 60}}
    (tmp_path / "isol8.config.json").write_text(json.dumps(reference))
    loaded = load_config(cwd=tmp_path)
    assert loaded.path == str(tmp_path / "isol8.config.json")
    assert loaded.config.audit.destination == "/var/log/isol8"  # the reference's logDir is our destination
    assert loaded.notice.startswith("no isol8rt.config.json found: reading the reference system's")
    assert "ignoring auth, debug, audit.trackResources, remoteCode.cacheTtl" in loaded.notice
    # Its user file too, after ours.
    (tmp_path / "isol8.config.json").unlink()
    user = tmp_path / "home" / ".isol8" / "config.json"
    user.parent.mkdir(parents=True)
    user.write_text(json.dumps({"defaults": {"timeoutMs": 5000}}))
    loaded = load_config(cwd=tmp_path)
    assert loaded.path == str(user) and loaded.config.defaults.timeout_ms == 5000 and loaded.notice
    ours = tmp_path / "home" / ".isol8rt" / "config.json"
    ours.parent.mkdir(parents=True)
    ours.write_text("{}")
    assert load_config(cwd=tmp_path).path == str(ours) and load_config(cwd=tmp_path).notice is None


def test_an_isol8rt_file_stays_strict_about_reference_only_keys(tmp_path):
    (tmp_path / "isol8rt.config.json").write_text(json.dumps({"debug": True}))
    with pytest.raises(InvalidRequest, match="unknown field `debug`"):
        load_config(cwd=tmp_path)


# --------------------------------------------------------------------------------------------------
# the values in force, and where each came from

def test_effective_values_fill_in_the_engines_defaults_and_name_their_source(tmp_path):
    view, sources = effective(LoadedConfig(Isol8Config(), None, {}))
    builtin = Isol8Options()
    assert view["defaults"]["timeoutMs"] == builtin.timeout_ms == 30000
    assert view["defaults"]["memoryLimit"] == "512m" and view["defaults"]["cpuLimit"] == 1.0
    assert view["defaults"]["pidsLimit"] == 64 and view["defaults"]["network"] == "none"
    assert view["cleanup"] == {"autoPrune": True, "maxContainerAgeMs": 1800000}

    def nulls(node):
        return [key for key, value in node.items() if value is None or (isinstance(value, dict) and nulls(value))]

    assert nulls(view) == []
    assert set(sources.values()) == {"default"}

    path = tmp_path / "isol8rt.config.json"
    path.write_text(json.dumps({"defaults": {"timeoutMs": 1234}, "network": {"allowPrivate": ["10.0.0.0/8"]},
                                "poolSize": {"clean": 2, "dirty": 1}}))
    view, sources = effective(load_config(cwd=tmp_path))
    assert view["defaults"]["timeoutMs"] == 1234 and view["defaults"]["memoryLimit"] == "512m"
    assert sources["defaults.timeoutMs"] == f"file {path}" and sources["defaults.memoryLimit"] == "default"
    assert sources["network.allowPrivate"] == f"file {path}" and sources["network.whitelist"] == "default"
    assert sources["poolSize"] == f"file {path}" and view["poolSize"] == {"clean": 2, "dirty": 1}


def test_session_idle_time_follows_cleanup():
    assert session_idle_s(Isol8Config()) == 1800.0
    assert session_idle_s(parse_config('{"cleanup": {"maxContainerAgeMs": 60000}}')) == 60.0
    assert session_idle_s(parse_config('{"cleanup": {"autoPrune": false}}')) == float("inf")


# --------------------------------------------------------------------------------------------------
# the command line's --allow/--deny on the file's network rules

FILE_RULES = NetworkFilter(whitelist=["^a\\.example$"], blacklist=["^bad\\.example$"],
                           allow_private=["10.0.0.0/8"], connect_ports=[8443])


@pytest.mark.parametrize(("base", "allow", "deny", "expected"), [
    # no flags: the file's rules exactly
    (FILE_RULES, [], [], FILE_RULES),
    # --allow extends a whitelist the file has; allowPrivate and connectPorts stay
    (FILE_RULES, ["^b\\.example$"], [], NetworkFilter(["^a\\.example$", "^b\\.example$"], ["^bad\\.example$"],
                                                      ["10.0.0.0/8"], [8443])),
    # --allow narrows a file that allows every host (an empty whitelist) to the hosts given
    (NetworkFilter(allow_private=["10.0.0.0/8"]), ["^b\\.example$"], [],
     NetworkFilter(["^b\\.example$"], [], ["10.0.0.0/8"], [])),
    # --deny adds to the blacklist (deny wins: it only narrows); a rule given twice is kept once
    (FILE_RULES, ["^a\\.example$"], ["^c\\.example$"],
     NetworkFilter(["^a\\.example$"], ["^bad\\.example$", "^c\\.example$"], ["10.0.0.0/8"], [8443])),
    # no file rules at all
    (None, [], ["^c$"], NetworkFilter([], ["^c$"], [], [])),
])
def test_flags_narrow_or_extend_the_files_network_rules(base, allow, deny, expected):
    before = copy.deepcopy(base)
    assert merge_network(base, allow, deny) == expected
    assert base == before  # the file's rules themselves are left as they were


def test_the_docs_defaults_table_is_what_applies():
    """docs/config.md's table of keys and defaults: each row's default is what `isol8rt config` shows."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "config.md").read_text()
    rows = re.findall(r"^\| `([\w.]+)` \| `(.+?)` \|", page, flags=re.M)
    view, sources = effective(LoadedConfig(Isol8Config(), None, {}))
    assert len(rows) >= 25
    for key, shown in rows:
        value = view
        for part in key.split("."):
            value = value[part]
        assert key in sources and msgspec.json.decode(shown) == value, key
