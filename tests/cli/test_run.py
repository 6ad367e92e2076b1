"""`isol8rt run` as a user runs it: a subprocess, real containers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def isol8rt(*args: str, stdin: str | None = None, env: dict | None = None, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-m", "isol8rt", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.docker
def test_eval_prints_and_exits_zero():
    done = isol8rt("run", "-e", "print('hello')", "-r", "python")
    assert (done.stdout, done.returncode) == ("hello\n", 0), done.stderr


@pytest.mark.docker
def test_program_from_stdin():
    done = isol8rt("run", "-r", "node", stdin="console.log(42)")
    assert (done.stdout, done.returncode) == ("42\n", 0), done.stderr


@pytest.mark.docker
@pytest.mark.parametrize(
    ("name", "code", "expected"),
    [
        ("script.py", "import sys; print('py', sys.argv[0]); sys.exit(42)", "py /sandbox/main.py\n"),
        ("script.sh", "echo sh; exit 42", "sh\n"),
        ("script.cjs", "const os = require('os'); console.log('cjs', typeof os.cpus); process.exit(42)", "cjs function\n"),
    ],
)
def test_file_argument_picks_runtime_from_extension(tmp_path, name, code, expected):
    script = tmp_path / name
    script.write_text(code)
    done = isol8rt("run", str(script))
    assert (done.stdout, done.returncode) == (expected, 42), done.stderr
    assert "Warning" not in done.stderr  # .cjs runs as CommonJS with no module-type warning


@pytest.mark.docker
def test_piped_data_is_the_programs_stdin_when_code_comes_from_eval():
    done = isol8rt("run", "-e", "import sys; print(len(sys.stdin.readlines()))", stdin="a\nb\nc\n")
    assert done.stdout == "3\n", done.stderr


@pytest.mark.docker
def test_stderr_goes_to_stderr():
    done = isol8rt("run", "-e", "import sys; print('o'); print('e', file=sys.stderr)")
    assert (done.stdout, done.stderr, done.returncode) == ("o\n", "e\n", 0)


def test_unknown_extension_is_one_clear_line(tmp_path):
    script = tmp_path / "prog.xyz"
    script.write_text("x")
    done = isol8rt("run", str(script))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "use -r" in done.stderr


def test_daemon_down_is_one_line_that_says_how_to_fix_it():
    done = isol8rt("run", "-e", "print(1)", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}, timeout=30)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "isol8rt setup" in done.stderr
