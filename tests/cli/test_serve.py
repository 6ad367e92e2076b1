"""`isol8rt serve`'s argument handling, and the config file it reads."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from isol8rt.cli import main, serve
from isol8rt.cli.serve import resolve_port
from isol8rt.config import load_config


def test_port_precedence():
    assert resolve_port(8080, {"ISOL8_PORT": "1", "PORT": "2"}) == 8080
    assert resolve_port(None, {"ISOL8_PORT": "1", "PORT": "2"}) == 1
    assert resolve_port(None, {"PORT": "2"}) == 2
    assert resolve_port(None, {}) == 3000


def test_serve_refuses_to_start_without_a_key(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "isol8rt", "serve", "--port", "0"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "isol8rt: serve needs an API key: pass --key or set ISOL8_API_KEY (or --no-auth, for a trusted loopback only)"]


# --------------------------------------------------------------------------------------------------
# the config file, as `isol8rt run` reads it, with the flags over it


SERVER_FILE = {
    "maxConcurrent": 4,
    "poolSize": 3,
    "poolStrategy": "secure",
    "defaults": {"timeoutMs": 9000, "memoryLimit": "256m", "network": "filtered", "pidsLimit": 32},
    "network": {"whitelist": ["^pypi\\.org$"], "allowPrivate": ["10.9.0.0/16"], "connectPorts": [8443]},
    "security": {"seccomp": "unconfined"},
    "audit": {"enabled": True, "destination": "/tmp/audit-here", "includeCode": True, "retentionDays": 7},
    "remoteCode": {"enabled": True, "allowedHosts": ["^raw\\.githubusercontent\\.com$"]},
    "cleanup": {"maxContainerAgeMs": 600000},
}


def serve_config(tmp_path, document, *flags):
    path = tmp_path / "isol8rt.config.json"
    path.write_text(json.dumps(document))
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--key", "k", "--config", str(path), *flags])
    return serve._config(args)


def test_serve_takes_its_settings_from_the_config_file(tmp_path):
    config = serve_config(tmp_path, SERVER_FILE)
    options = config.options
    assert (options.max_concurrent, options.pool_size, options.pool_strategy) == (4, 3, "secure")
    assert (options.timeout_ms, options.memory_limit, options.pids_limit) == (9000, "256m", 32)
    assert options.network == "filtered"
    assert options.network_filter.whitelist == ["^pypi\\.org$"]
    assert options.network_filter.allow_private == ["10.9.0.0/16"] and options.network_filter.connect_ports == [8443]
    assert options.security.seccomp == "unconfined"
    assert options.audit.enabled and options.audit.destination == "/tmp/audit-here" and options.audit.include_code
    assert options.remote_code.enabled and options.remote_code.allowed_hosts == ["^raw\\.githubusercontent\\.com$"]
    assert config.session_ttl_s == 600.0


def test_serve_flags_override_the_file_and_network_flags_extend_it(tmp_path):
    config = serve_config(tmp_path, SERVER_FILE, "--max-concurrent", "8", "--pool-size", "1", "--timeout", "1000",
                          "--seccomp", "strict", "--audit", str(tmp_path / "a"), "--session-ttl", "30",
                          "--allow", "^files\\.pythonhosted\\.org$", "--deny", "^evil$")
    options = config.options
    assert (options.max_concurrent, options.pool_size, options.timeout_ms) == (8, 1, 1000)
    assert options.memory_limit == "256m"  # what no flag names stays the file's
    assert options.security.seccomp == "strict"
    assert options.audit.destination == str(tmp_path / "a") and options.audit.include_code  # the file's choices stay
    assert config.session_ttl_s == 30
    rules = options.network_filter
    assert rules.whitelist == ["^pypi\\.org$", "^files\\.pythonhosted\\.org$"] and rules.blacklist == ["^evil$"]
    assert rules.allow_private == ["10.9.0.0/16"]


def test_serve_without_a_file_keeps_its_own_defaults(tmp_path):
    config = serve_config(tmp_path, {})
    options = config.options
    assert (options.max_concurrent, options.pool_size, options.timeout_ms, options.memory_limit) == (16, 2, 30000,
                                                                                                    "512m")
    assert options.network == "none" and options.security.seccomp == "strict" and options.audit is None
    assert options.remote_code is None and config.session_ttl_s == 1800.0


def test_auto_prune_off_keeps_idle_sessions(tmp_path):
    assert serve_config(tmp_path, {"cleanup": {"autoPrune": False}}).session_ttl_s == float("inf")


def test_serve_allow_needs_a_filtered_network_from_the_file_or_a_flag(tmp_path):
    with pytest.raises(SystemExit, match="--allow and --deny need --net filtered"):
        serve_config(tmp_path, {}, "--allow", "x")
    assert serve_config(tmp_path, {}, "--net", "filtered", "--allow", "x").options.network_filter.whitelist == ["x"]


def test_serve_finds_the_config_file_like_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "isol8rt.config.json").write_text(json.dumps({"maxConcurrent": 3}))
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    config = serve._config(parser.parse_args(["serve", "--key", "k"]))
    assert config.options.max_concurrent == 3
    assert load_config().path == str(tmp_path / "isol8rt.config.json")


def test_serve_refuses_a_bad_config_file_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "isol8rt.config.json").write_text(json.dumps({"maxConcurrent": 0}))
    assert main(["serve", "--key", "k", "--port", "0"]) == 2
    stderr = capsys.readouterr().err.splitlines()
    assert len(stderr) == 1 and "maxConcurrent must be at least 1" in stderr[0]


@pytest.mark.docker
def test_a_served_run_has_the_config_files_defaults(tmp_path):
    (tmp_path / "isol8rt.config.json").write_text(json.dumps({"defaults": {"timeoutMs": 700}, "poolSize": 0}))
    env = {**os.environ, "HOME": str(tmp_path)}
    server = subprocess.Popen([sys.executable, "-m", "isol8rt", "serve", "--key", "k", "--port", "0", "--prewarm", "",
                               "--no-keys-db", "--state-dir", str(tmp_path / "state")],
                              stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        line = server.stderr.readline()
        assert "serving on http://127.0.0.1:" in line, line
        url = line.split("serving on ", 1)[1].strip()
        body = json.dumps({"request": {"runtime": "python", "code": "import time; time.sleep(5)"}}).encode()
        request = urllib.request.Request(f"{url}/execute", data=body, method="POST",
                                         headers={"Authorization": "Bearer k", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            result = json.loads(answer.read())
        assert result["exitCode"] != 0 and "700 ms" in result["stderr"], result
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def test_keys_db_takes_a_file_or_a_postgres_url(tmp_path, monkeypatch):
    from isol8rt.server.keys_pg import DEFAULT_MAX_STALE_S

    monkeypatch.delenv("ISOL8RT_KEYS_DB", raising=False)
    assert serve_config(tmp_path, {}, "--keys-db", str(tmp_path / "k.db")).keys_db == tmp_path / "k.db"
    url = "postgresql://isol8rt:secret@db.internal/keys"
    config = serve_config(tmp_path, {}, "--keys-db", url)
    assert (config.keys_db, config.keys_max_stale_s) == (url, DEFAULT_MAX_STALE_S)  # the parser's own copy agrees
    assert config.keys_refresh_s <= config.keys_max_stale_s / 2
    monkeypatch.setenv("ISOL8RT_KEYS_DB", url)  # keeps the password off the command line
    assert serve_config(tmp_path, {}).keys_db == url


def test_keys_max_stale_must_be_positive(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        serve_config(tmp_path, {}, "--keys-max-stale", "0")
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == ["isol8rt: --keys-max-stale: must be a positive number of seconds"]


def test_a_bad_keys_db_url_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        serve_config(tmp_path, {}, "--keys-db", "postgresql://db.internal/keys")
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "isol8rt: --keys-db: key store URL: name the user and the database, as postgresql://user@host/database"]


def test_node_id_flag(tmp_path, capsys):
    assert serve_config(tmp_path, {}, "--node-id", "node-7").node_id == "node-7"
    assert serve_config(tmp_path, {}).node_id is None  # decided at start: $ISOL8RT_NODE_ID, else the state dir's
    with pytest.raises(SystemExit) as exited:
        serve_config(tmp_path, {}, "--node-id", "a/b")
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "isol8rt: --node-id: 'a/b' must be 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"]


def test_a_key_store_database_that_does_not_answer_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "isol8rt", "serve", "--port", "0", "--key", "k", "--prewarm", "",
                           "--keys-db", "postgresql://me:secret@127.0.0.1:1/keys", "--state-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("isol8rt: the shared key store at postgresql://me:***@127.0.0.1:1/keys failed: ")
    assert "127.0.0.1" in line.split(" failed: ")[1] and "secret" not in line

def test_serve_socket_refuses_a_directory_others_can_enter_in_one_line(tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    directory.chmod(0o755)
    message = "has mode 0755, not 0700"
    done = subprocess.run([sys.executable, "-m", "isol8rt", "serve", "--socket", str(directory / "e.sock")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (directory / "e.sock").exists()


def test_serve_socket_takes_no_port_or_key(tmp_path):
    done = subprocess.run([sys.executable, "-m", "isol8rt", "serve", "--socket", str(tmp_path / "e.sock"), "--key",
                           "k"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--socket serves on a Unix socket only" in done.stderr, done.stderr
