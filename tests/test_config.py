"""The configuration file: strict checking with the offending key's path, defaults, the JSON Schema."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from isol8rt.config import SCHEMA_PATH, json_schema, load_config, options_from_config, parse_config
from isol8rt.errors import InvalidRequest

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
