"""`isol8rt config`: every value in force, where it came from, and the reference's files."""

from __future__ import annotations

import json
import subprocess

import pytest

from isol8rt.cli import _config, main


@pytest.fixture
def isol8rt(capsys, monkeypatch):
    """The command line in this process (a subprocess costs a second): (exit code, stdout, stderr)."""

    def call(*args: str, cwd, home, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        monkeypatch.chdir(cwd)
        monkeypatch.setenv("HOME", str(home))
        for name in ("ISOL8_PORT", "PORT", "ISOL8_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(_config, "_told", set())  # each call a new process, as far as the notice goes
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return call


def test_the_defaults_in_force_are_shown_not_nulls(isol8rt, tmp_path):
    done = isol8rt("config", "--json", cwd=tmp_path, home=tmp_path)
    shown = json.loads(done.stdout)
    assert shown["source"] is None and "null" not in json.dumps(shown["config"])
    defaults = shown["config"]["defaults"]
    assert (defaults["timeoutMs"], defaults["memoryLimit"], defaults["cpuLimit"], defaults["pidsLimit"]) == (
        30000, "512m", 1.0, 64)
    assert shown["sources"]["defaults.timeoutMs"] == "default"
    text = isol8rt("config", cwd=tmp_path, home=tmp_path).stdout.splitlines()
    assert text[0] == "source: built-in defaults (no configuration file found)"
    assert any(line.split() == ["defaults.timeoutMs", "30000", "default"] for line in text)
    assert any(line.split() == ["cleanup.maxContainerAgeMs", "1800000", "default"] for line in text)


def test_each_value_says_whether_the_file_set_it(isol8rt, tmp_path):
    path = tmp_path / "isol8rt.config.json"
    path.write_text(json.dumps({"defaults": {"memoryLimit": "1g"}, "cleanup": {"autoPrune": False}}))
    shown = json.loads(isol8rt("config", "--json", cwd=tmp_path, home=tmp_path).stdout)
    assert shown["source"] == str(path)
    assert shown["config"]["defaults"]["memoryLimit"] == "1g"
    assert shown["sources"]["defaults.memoryLimit"] == f"file {path}"
    assert shown["sources"]["cleanup.autoPrune"] == f"file {path}"
    assert shown["sources"]["cleanup.maxContainerAgeMs"] == "default"
    text = isol8rt("config", cwd=tmp_path, home=tmp_path).stdout.splitlines()
    assert any(line.split() == ["defaults.memoryLimit", '"1g"', "file"] for line in text)


def test_a_reference_file_is_read_and_said_once_on_stderr(isol8rt, tmp_path):
    (tmp_path / "isol8.config.json").write_text(json.dumps({"defaults": {"timeoutMs": 4000}, "debug": True}))
    done = isol8rt("config", "--json", cwd=tmp_path, home=tmp_path)
    assert done.returncode == 0
    assert json.loads(done.stdout)["config"]["defaults"]["timeoutMs"] == 4000
    assert done.stderr.splitlines() == [
        f"isol8rt: no isol8rt.config.json found: reading the reference system's {tmp_path / 'isol8.config.json'} "
        "(ignoring debug)"]


def test_a_bad_file_is_one_line_and_exit_2(isol8rt, tmp_path):
    (tmp_path / "isol8rt.config.json").write_text(json.dumps({"cleanup": {"maxContainerAgeMs": "soon"}}))
    done = isol8rt("config", cwd=tmp_path, home=tmp_path)
    assert done.returncode == 2 and "`$.cleanup.maxContainerAgeMs`" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_serves_settings_name_the_environment_and_the_file(isol8rt, tmp_path):
    env = {"ISOL8_PORT": "4100", "ISOL8_API_KEY": "sekrit"}
    (tmp_path / "isol8rt.config.json").write_text(json.dumps({"maxConcurrent": 5}))
    done = isol8rt("config", "--json", cwd=tmp_path, home=tmp_path, env=env)
    shown = json.loads(done.stdout)
    assert shown["serve"] == {"port": 4100, "poolSize": 2, "maxConcurrent": 5, "apiKey": "(set)"}
    assert "sekrit" not in done.stdout
    sources = shown["sources"]
    assert sources["serve.port"] == "env ISOL8_PORT" and sources["serve.apiKey"] == "env ISOL8_API_KEY"
    assert sources["serve.poolSize"] == "default"
    assert sources["serve.maxConcurrent"] == f"file {tmp_path / 'isol8rt.config.json'}"
    text = isol8rt("config", "--file", str(tmp_path / "isol8rt.config.json"), cwd=tmp_path, home=tmp_path,
                   env=env).stdout.splitlines()
    assert text[0] == f"source: {tmp_path / 'isol8rt.config.json'} (--file)"
    assert any(line.split() == ["serve.port", "4100", "env", "ISOL8_PORT"] for line in text)


def test_the_reference_notice_is_said_once_per_process(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(_config, "_told", set())
    (tmp_path / "isol8.config.json").write_text("{}")
    _config.load()
    _config.load()
    assert capsys.readouterr().err.count("reading the reference system's") == 1
