"""`isol8rt run`'s options as they reach the engine, without Docker: script arguments (a path, @FILE or
text), the config file's rules with the command line's on top, and errors before anything runs."""

from __future__ import annotations

import argparse
import json

import pytest

from isol8rt.cli import main, run
from isol8rt.cli.build import script_text
from isol8rt.config import parse_config
from isol8rt.errors import InvalidRequest


def run_args(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    run.register(parser.add_subparsers())
    return parser.parse_args(["run", *flags])


@pytest.fixture
def isol8rt(capsys, monkeypatch, tmp_path):
    """The command line in this process, in tmp_path with HOME there: (exit code, stderr lines)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))

    def call(*args: str) -> tuple[int, list[str]]:
        code = main(list(args))
        return code, capsys.readouterr().err.splitlines()

    return call


# --------------------------------------------------------------------------------------------------
# --setup: a file's path, @FILE, or the script's text

def test_an_existing_path_is_read_like_at_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "setup.sh").write_text("echo set up\n")
    assert script_text("--setup", "./setup.sh") == "echo set up\n"
    assert script_text("--setup", "setup.sh") == "echo set up\n"
    assert script_text("--setup", str(tmp_path / "setup.sh")) == "echo set up\n"
    assert script_text("--setup", "@setup.sh") == "echo set up\n"


@pytest.mark.parametrize("text", ["echo hi", "pip install x && touch /sandbox/ok", "true", "ls\n./x.sh",
                                  "mkdir -p /sandbox/a"])
def test_anything_else_is_the_scripts_text(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert script_text("--setup", text) == text


@pytest.mark.parametrize("value", ["./setup.sh", "setup.sh", "scripts/prepare", "/no/such/file", "@missing.sh"])
def test_a_missing_path_is_an_error_not_a_command(value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidRequest, match=r"^--setup .*(no such file|cannot read it)"):
        script_text("--setup", value)


def test_a_missing_setup_path_is_one_line_and_exit_2(isol8rt):
    for command in (["run", "-e", "print(1)", "--stdin", "", "--setup", "./setup.sh"],
                    ["build", "--base", "bash", "--tag", "x", "--setup", "./setup.sh"]):
        code, stderr = isol8rt(*command)
        assert code == 2, stderr
        assert stderr == ["isol8rt: --setup ./setup.sh: no such file (to run a path inside the "
                                            "sandbox instead, write it as a command: 'sh ./setup.sh')"]


def test_a_setup_file_becomes_the_requests_setup_script(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "setup.sh").write_text("touch /sandbox/ready\n")
    script = run._setup_script(["./setup.sh", "echo second"])
    assert "touch /sandbox/ready" in script and "echo second" in script
    assert script.index("touch /sandbox/ready") < script.index("echo second")


# --------------------------------------------------------------------------------------------------
# --out: said before the run

@pytest.mark.parametrize("out", ["no/such/dir/out.txt", "."])
def test_an_unwritable_out_is_one_line_and_exit_2(out, isol8rt):
    code, stderr = isol8rt("run", "-e", "print(1)", "--stdin", "", "--out", out)
    assert code == 2 and len(stderr) == 1 and stderr[0].startswith("isol8rt: --out ")


# --------------------------------------------------------------------------------------------------
# the config file's rules with the flags on top

FILE = parse_config(json.dumps({
    "defaults": {"network": "filtered", "timeoutMs": 9000, "memoryLimit": "256m"},
    "network": {"whitelist": ["^a\\.example$"], "blacklist": ["^bad$"], "allowPrivate": ["10.1.0.0/16"],
                "connectPorts": [8443]},
}))


def test_allow_keeps_the_files_allow_private_and_rules():
    options = run._options(run_args("-e", "1", "--allow", "^b\\.example$", "--deny", "^worse$"), FILE)
    assert options.network == "filtered"
    rules = options.network_filter
    assert rules.whitelist == ["^a\\.example$", "^b\\.example$"] and rules.blacklist == ["^bad$", "^worse$"]
    assert rules.allow_private == ["10.1.0.0/16"] and rules.connect_ports == [8443]


def test_no_network_flags_keep_the_files_rules_exactly():
    rules = run._options(run_args("-e", "1"), FILE).network_filter
    assert (rules.whitelist, rules.blacklist, rules.allow_private) == (["^a\\.example$"], ["^bad$"], ["10.1.0.0/16"])


def test_allow_on_a_file_with_private_networks_only_turns_filtering_on_and_keeps_them():
    config = parse_config(json.dumps({"network": {"allowPrivate": ["192.168.5.0/24"]}}))
    options = run._options(run_args("-e", "1", "--allow", "^intranet$"), config)
    assert options.network == "filtered"
    assert options.network_filter.whitelist == ["^intranet$"]
    assert options.network_filter.allow_private == ["192.168.5.0/24"]


def test_install_opens_the_registry_on_top_of_the_files_rules():
    config = parse_config(json.dumps({"network": {"allowPrivate": ["10.0.0.0/8"]}}))
    rules = run._options(run_args("-e", "1", "--install", "numpy"), config).network_filter
    assert rules.whitelist == list(run.REGISTRY_HOSTS["python"]) and rules.allow_private == ["10.0.0.0/8"]


def test_flags_override_the_files_defaults_and_the_rest_stays():
    options = run._options(run_args("-e", "1", "--timeout", "500", "--net", "none"), FILE)
    assert (options.timeout_ms, options.memory_limit, options.network) == (500, "256m", "none")


def test_allow_with_a_network_that_is_not_filtered_is_refused():
    with pytest.raises(InvalidRequest, match="--allow and --deny apply to --net filtered"):
        run._options(run_args("-e", "1", "--net", "host", "--allow", "x"), FILE)
