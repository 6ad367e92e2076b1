"""Where the daemon is: the docker CLI's rules (DOCKER_HOST, TLS variables, contexts, ssh), on
environments and context stores made in a temporary directory. No daemon, no network."""

from __future__ import annotations

import hashlib
import json

import pytest

from isol8rt.docker import DockerError
from isol8rt.docker._endpoint import SSH_COMMAND_VARIABLE, parse_docker_host


def test_default_host_is_the_docker_socket(tmp_path):
    endpoint = parse_docker_host(None, {}, config_dir=str(tmp_path))
    assert endpoint.unix_path == "/var/run/docker.sock" and endpoint.host_header == b"docker"


def test_docker_host_is_honoured_and_an_explicit_host_wins():
    rootless = "unix:///run/user/1000/docker.sock"
    assert parse_docker_host(None, {"DOCKER_HOST": rootless}).unix_path == "/run/user/1000/docker.sock"
    assert parse_docker_host("unix:///a.sock", {"DOCKER_HOST": "unix:///b.sock"}).unix_path == "/a.sock"


def test_tcp_hosts_default_to_port_2375_and_2376_with_tls(tmp_path):
    endpoint = parse_docker_host("tcp://127.0.0.1", {})
    assert (endpoint.tcp_host, endpoint.tcp_port, endpoint.host_header) == ("127.0.0.1", 2375, b"127.0.0.1:2375")
    assert endpoint.tls is None
    assert parse_docker_host("tcp://localhost:12375", {}).tcp_port == 12375
    (tmp_path / "ca.pem").write_text("x")
    tls = parse_docker_host("tcp://h", {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)})
    assert tls.tcp_port == 2376 and tls.tls is not None and tls.tls.verify
    assert tls.tls.ca == str(tmp_path / "ca.pem") and tls.tls.cert is None


def test_tls_files_come_from_docker_cert_path(tmp_path):
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    endpoint = parse_docker_host(None, {"DOCKER_HOST": "tcp://h:1", "DOCKER_TLS_VERIFY": "1",
                                        "DOCKER_CERT_PATH": str(tmp_path)})
    assert endpoint.tls is not None
    assert (endpoint.tls.ca, endpoint.tls.cert, endpoint.tls.key) == tuple(
        str(tmp_path / name) for name in ("ca.pem", "cert.pem", "key.pem"))


def test_docker_tls_alone_encrypts_without_verifying(tmp_path):
    endpoint = parse_docker_host(None, {"DOCKER_HOST": "tcp://h:1", "DOCKER_TLS": "1",
                                        "DOCKER_CERT_PATH": str(tmp_path)})
    assert endpoint.tls is not None and not endpoint.tls.verify
    context = endpoint.tls.context()
    assert not context.check_hostname


def test_missing_tls_files_are_named(tmp_path):
    with pytest.raises(DockerError, match=r"DOCKER_TLS_VERIFY is set but .*ca\.pem does not exist"):
        parse_docker_host(None, {"DOCKER_HOST": "tcp://h:1", "DOCKER_TLS_VERIFY": "1",
                                 "DOCKER_CERT_PATH": str(tmp_path)})
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "cert.pem").write_text("x")
    with pytest.raises(DockerError, match=r"key\.pem is not"):
        parse_docker_host(None, {"DOCKER_HOST": "tcp://h:1", "DOCKER_TLS_VERIFY": "1",
                                 "DOCKER_CERT_PATH": str(tmp_path)})


def _context(config, name: str, host: str, *, tls: tuple[str, ...] = (), skip_verify: bool = False) -> None:
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / digest
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps(
        {"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip_verify}}}))
    if tls:
        files = config / "contexts" / "tls" / digest / "docker"
        files.mkdir(parents=True)
        for part in tls:
            (files / f"{part}.pem").write_text("x")


def test_the_current_context_of_the_config_file_is_used(tmp_path):
    _context(tmp_path, "remote", "tcp://build-box:2376", tls=("ca", "cert", "key"))
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "remote"}))
    endpoint = parse_docker_host(None, {"DOCKER_CONFIG": str(tmp_path)})
    assert (endpoint.tcp_host, endpoint.tcp_port, endpoint.context) == ("build-box", 2376, "remote")
    assert endpoint.tls is not None and endpoint.tls.verify and endpoint.tls.cert.endswith("cert.pem")
    assert "context remote" in endpoint.where


def test_docker_context_wins_over_the_config_file_and_docker_host_over_both(tmp_path):
    _context(tmp_path, "one", "unix:///one.sock")
    _context(tmp_path, "two", "unix:///two.sock")
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "one"}))
    environ = {"DOCKER_CONFIG": str(tmp_path)}
    assert parse_docker_host(None, environ).unix_path == "/one.sock"
    assert parse_docker_host(None, {**environ, "DOCKER_CONTEXT": "two"}).unix_path == "/two.sock"
    assert parse_docker_host(None, {**environ, "DOCKER_CONTEXT": "default"}).unix_path == "/var/run/docker.sock"
    both = {**environ, "DOCKER_CONTEXT": "two", "DOCKER_HOST": "unix:///env.sock"}
    assert parse_docker_host(None, both).unix_path == "/env.sock"


def test_a_context_may_skip_verification(tmp_path):
    _context(tmp_path, "lax", "tcp://h:2376", skip_verify=True)
    endpoint = parse_docker_host(None, {"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "lax"})
    assert endpoint.tls is not None and not endpoint.tls.verify


def test_an_unknown_context_is_named(tmp_path):
    with pytest.raises(DockerError, match="context 'nowhere' .*DOCKER_CONTEXT.* does not exist"):
        parse_docker_host(None, {"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "nowhere"})


def test_an_unreadable_config_file_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(DockerError, match="config.json"):
        parse_docker_host(None, {"DOCKER_CONFIG": str(tmp_path)})


def test_ssh_hosts_run_dial_stdio_as_the_docker_cli_does():
    endpoint = parse_docker_host("ssh://me@build-box:2222", {})
    assert endpoint.ssh_argv is not None and endpoint.host_header == b"docker"
    argv = list(endpoint.ssh_argv)
    assert argv[0] == "ssh" and "BatchMode=yes" in argv
    assert argv[argv.index("-l") + 1] == "me" and argv[argv.index("-p") + 1] == "2222"
    assert argv[argv.index("--") + 1:] == ["build-box", "docker", "system", "dial-stdio"]
    custom = parse_docker_host("ssh://box", {SSH_COMMAND_VARIABLE: "ssh -F '/tmp/my config'"})
    assert custom.ssh_argv[:3] == ("ssh", "-F", "/tmp/my config") and "-l" not in custom.ssh_argv


@pytest.mark.parametrize("host", ["ssh://box/path", "ssh://me:secret@box", "ssh://"])
def test_ssh_hosts_take_only_user_host_and_port(host):
    with pytest.raises(DockerError):
        parse_docker_host(host, {})


@pytest.mark.parametrize("host", ["https://docker:2376", "npipe:////./pipe/docker_engine"])
def test_unsupported_transports_are_refused_clearly(host):
    with pytest.raises(DockerError, match="not supported"):
        parse_docker_host(None, {"DOCKER_HOST": host})


@pytest.mark.parametrize("host", ["docker.sock", "unix://", "tcp://:2375", "tcp://h:port"])
def test_malformed_hosts_are_refused(host):
    with pytest.raises(DockerError):
        parse_docker_host(host, {})
