"""`isol8rt run`'s flags as a user types them (the reference system's CLI cases, ported), sessions across
invocations, custom images, and golden --help output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
COMMANDS = ["run", "session", "setup", "build", "list-custom", "cleanup", "config", "profile", "serve", "engine", "mcp",
            "tools", "bench"]


def isol8rt(*args: str, stdin: str | None = None, cwd=None, timeout: float = 180):
    env = {**os.environ, "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-m", "isol8rt", *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


@pytest.mark.docker
@pytest.mark.parametrize("runtime,code,expected", [
    ("python", "print(1 + 1)", "2\n"), ("node", "console.log(1 + 1)", "2\n"), ("bun", "console.log(1 + 1)", "2\n"),
    ("deno", "console.log(1 + 1)", "2\n"), ("bash", "echo $((1 + 1))", "2\n")])
def test_each_runtime_inline(runtime, code, expected):
    done = isol8rt("run", "-r", runtime, "-e", code)
    assert (done.stdout, done.returncode) == (expected, 0), done.stderr


@pytest.mark.docker
def test_timeout_fails():
    done = isol8rt("run", "--timeout", "500", "-e", "import time; time.sleep(10)")
    assert done.returncode != 0 and "timed out after 500 ms" in done.stderr


@pytest.mark.docker
def test_net_none_blocks_urlopen():
    done = isol8rt("run", "--net", "none", "-e",
                   "import urllib.request\ntry:\n    urllib.request.urlopen('https://pypi.org', timeout=5)\n"
                   "    print('reached')\nexcept Exception as exc:\n    print('blocked')")
    assert done.stdout == "blocked\n", done.stderr


@pytest.mark.docker
@pytest.mark.parametrize("flag", [[], ["--no-stream"]])
def test_streaming_and_no_stream_give_the_same_output(flag):
    done = isol8rt("run", *flag, "-e", "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(4)")
    assert (done.stdout, done.stderr, done.returncode) == ("out\n", "err\n", 4)


@pytest.mark.docker
def test_setup_inline_repeated_and_from_a_file(tmp_path):
    script = tmp_path / "setup.sh"
    script.write_text("echo third >> /sandbox/order\n")
    done = isol8rt("run", "--setup", "echo first > /sandbox/order", "--setup", "echo second >> /sandbox/order",
                   "--setup", f"@{script}", "-e", "print(open('/sandbox/order').read(), end='')")
    assert done.stdout == "first\nsecond\nthird\n", done.stderr


@pytest.mark.docker
def test_setup_takes_a_files_path_as_the_reference_does(tmp_path):
    (tmp_path / "setup.sh").write_text("echo from-the-file > /sandbox/ready\n")
    done = isol8rt("run", "--setup", "./setup.sh", "-r", "bash", "-e", "cat /sandbox/ready", cwd=tmp_path)
    assert done.stdout == "from-the-file\n", done.stderr


@pytest.mark.docker
def test_failing_setup_stops_the_run():
    done = isol8rt("run", "--setup", "echo about to fail; exit 3", "--setup", "touch /sandbox/never",
                   "-e", "print('program ran')")
    assert done.returncode != 0 and "program ran" not in done.stdout
    assert "setup failed" in done.stderr


@pytest.mark.docker
def test_workdir_inside_sandbox_and_outside_refused():
    done = isol8rt("run", "--workdir", "/sandbox/project", "-e", "import os; print(os.getcwd())")
    assert done.stdout == "/sandbox/project\n", done.stderr
    refused = isol8rt("run", "--workdir", "/etc", "-e", "print(1)")
    assert refused.returncode == 2 and "outside /sandbox" in refused.stderr and refused.stdout == ""


@pytest.mark.docker
def test_files_dir_and_out_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "numbers.txt").write_text("1\n2\n3\n")
    out = tmp_path / "result.txt"
    done = isol8rt("run", "--files", str(tmp_path / "data"), "--out", str(out),
                   "-e", "print(sum(int(x) for x in open('numbers.txt')))")
    assert done.stdout == "6\n" and out.read_text() == "6\n", done.stderr


@pytest.mark.docker
def test_persistent_state_across_invocations():
    name = f"t{uuid.uuid4().hex[:8]}"
    try:
        first = isol8rt("run", "--session", name, "-e", "counter = 1\nopen('/sandbox/seen', 'w').write('yes')")
        assert first.returncode == 0, first.stderr
        second = isol8rt("run", "--session", name, "-e", "counter += 1\nprint(counter, open('/sandbox/seen').read())")
        assert second.stdout == "2 yes\n", second.stderr
        listed = isol8rt("session", "list")
        assert name in listed.stdout
    finally:
        stopped = isol8rt("session", "stop", name)
    assert stopped.returncode == 0, stopped.stderr
    assert name not in isol8rt("session", "list").stdout


@pytest.mark.docker
def test_custom_image_build_is_reused_and_usable():
    tag = "test-cli-build"
    first = isol8rt("build", "--base", "bash", "--tag", tag, "--setup", "echo from-build > /opt/built")
    assert first.returncode == 0, first.stderr
    again = isol8rt("build", "--base", "bash", "--tag", tag, "--setup", "echo from-build > /opt/built")
    assert "up to date" in again.stderr  # the same recipe: the image (its content-hash label) is reused
    assert f"isol8rt-custom:{tag}" in isol8rt("list-custom").stdout
    done = isol8rt("run", "--image", f"isol8rt-custom:{tag}", "-r", "bash", "-e", "cat /opt/built")
    assert done.stdout == "from-build\n", done.stderr
    failing = isol8rt("build", "--base", "bash", "--tag", "test-cli-broken", "--setup", "exit 7")
    assert failing.returncode != 0 and "failed" in failing.stderr


@pytest.mark.docker
def test_config_defaults_apply(tmp_path):
    (tmp_path / "isol8rt.config.json").write_text(json.dumps({"defaults": {"timeoutMs": 700}}))
    done = isol8rt("run", "-e", "import time; time.sleep(5)", cwd=tmp_path)
    assert "timed out after 700 ms" in done.stderr


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_golden_help(command):
    """The help text is part of the interface: a change to it shows up here (regenerate with
    ISOL8RT_UPDATE_GOLDEN=1 when it is meant)."""
    args = [command, "--help"] if command else ["--help"]
    done = isol8rt(*args)
    assert done.returncode == 0
    path = GOLDEN / f"{command or 'isol8rt'}.txt"
    if os.environ.get("ISOL8RT_UPDATE_GOLDEN"):
        path.write_text(done.stdout)
    assert done.stdout == path.read_text()
