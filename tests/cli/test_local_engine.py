"""`isol8rt run` through a local engine, as a user runs it: the same output, exit code, stdin and --out as
a run made here; runs it cannot make with exactly their options, and a dead engine, fall back to a cold run.

Proof that a run went through the engine: the CLI is given a DOCKER_HOST that does not exist, so a run
made here would fail; the engine was started with the real one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from isol8rt.local.paths import pid_file

NO_DOCKER = {"DOCKER_HOST": "unix:///nonexistent/not-docker.sock"}


def isol8rt(*args: str, socket: Path, stdin: str | None = None, env: dict | None = None, cwd=None):
    return subprocess.run([sys.executable, "-m", "isol8rt", *args], input=stdin, capture_output=True, text=True,
                          timeout=120, cwd=cwd, env={**os.environ, "ISOL8RT_SOCKET": str(socket), **(env or {})})


@pytest.fixture(scope="module")
def socket_path():
    # Short: a Unix socket's path is limited to about 100 bytes, and pytest's tmp_path can be longer.
    directory = Path(tempfile.mkdtemp(prefix="i8e-"))
    path = directory / "engine" / "engine.sock"
    yield path
    isol8rt("engine", "stop", socket=path)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def engine(socket_path):
    if isol8rt("engine", "status", socket=socket_path).returncode != 0:
        started = isol8rt("engine", "start", socket=socket_path)
        assert started.returncode == 0, started.stderr
    return socket_path


CASES = [
    pytest.param(["run", "-e", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(7)"], None,
                 id="stream-and-exit-code"),
    pytest.param(["run", "-e", "import sys; print(sys.stdin.read().upper())"], "piped\n", id="stdin"),
    pytest.param(["run", "--no-stream", "-r", "bash", "-e", "echo a; echo b >&2; exit 3"], None, id="no-stream"),
    pytest.param(["run", "-r", "node", "-e", "console.log(6 * 7)"], None, id="node"),
    pytest.param(["run", "--timeout", "500", "-e", "import time; print('start', flush=True); time.sleep(5)"], None,
                 id="timeout"),
    pytest.param(["run", "-r", "bash", "--env", "A=1", "-e", "echo $A; echo bad >&2; exit 42"], None, id="env"),
]


@pytest.mark.docker
@pytest.mark.parametrize(("args", "stdin"), CASES)
def test_a_run_through_the_engine_is_the_run_made_here(engine, args, stdin):
    here = isol8rt(*args, socket=engine, stdin=stdin, env={"ISOL8RT_ENGINE": "off"})
    near = isol8rt(*args, socket=engine, stdin=stdin, env=NO_DOCKER)
    assert (near.stdout, near.stderr, near.returncode) == (here.stdout, here.stderr, here.returncode)


@pytest.mark.docker
def test_files_through_the_engine(engine, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.bin").write_bytes(bytes(range(256)))
    (tmp_path / "in" / "note.txt").write_text("héllo")
    args = ["run", "--files", str(tmp_path / "in"), "-e",
            "print(len(open('data.bin','rb').read()), open('data.bin','rb').read()[250:], open('note.txt').read())"]
    here = isol8rt(*args, socket=engine, env={"ISOL8RT_ENGINE": "off"})
    near = isol8rt(*args, socket=engine, env=NO_DOCKER)
    assert (near.stdout, near.returncode) == (here.stdout, here.returncode) == (
        "256 b'\\xfa\\xfb\\xfc\\xfd\\xfe\\xff' héllo\n", 0), near.stderr


@pytest.mark.docker
def test_out_file_through_the_engine(engine, tmp_path):
    near = isol8rt("run", "--out", str(tmp_path / "out.txt"), "-e", "print('to file')", socket=engine, env=NO_DOCKER)
    assert (near.stdout, near.returncode) == ("to file\n", 0), near.stderr
    assert (tmp_path / "out.txt").read_text() == "to file\n"


@pytest.mark.docker
@pytest.mark.parametrize("flags", [["--memory", "1g"], ["--net", "host"], ["--timeout", "600000"], ["--writable"],
                                   ["--persistent"], ["--debug"]])
def test_options_the_engine_cannot_honour_run_here(engine, flags):
    """Not run by the engine with its own options: run here instead (which, without Docker, fails)."""
    done = isol8rt("run", *flags, "-e", "print('ran')", socket=engine, env=NO_DOCKER)
    assert done.stdout == "" and done.returncode == 3, (done.stdout, done.stderr)
    assert "Docker" in done.stderr or "docker" in done.stderr


@pytest.mark.docker
def test_a_config_file_the_engine_did_not_read_runs_here(engine, tmp_path):
    (tmp_path / "isol8rt.config.json").write_text('{"defaults": {"pidsLimit": 128}}')
    done = isol8rt("run", "-e", "print('ran')", socket=engine, env=NO_DOCKER, cwd=tmp_path)
    assert done.returncode == 3 and done.stdout == "", done.stderr


@pytest.mark.docker
def test_tighter_limits_get_an_engine_of_their_own(engine):
    """Run by the engine (the value itself is the policy's test: tests/server/test_policy.py)."""
    done = isol8rt("run", "--memory", "128m", "-e", "print('tight')", socket=engine, env=NO_DOCKER)
    assert (done.stdout, done.returncode) == ("tight\n", 0), done.stderr


@pytest.mark.docker
def test_a_dead_engine_falls_back_at_once_and_is_replaced_on_the_next_start(engine):
    os.kill(int(pid_file(engine).read_text()), signal.SIGKILL)
    done = isol8rt("run", "-e", "print('cold')", socket=engine)  # the stale socket: refused at once, run here
    assert (done.stdout, done.returncode) == ("cold\n", 0), done.stderr
    assert engine.exists()  # still the dead one's file
    assert isol8rt("engine", "status", socket=engine).returncode == 1
    again = isol8rt("engine", "start", socket=engine)
    assert again.returncode == 0, again.stderr
    near = isol8rt("run", "-e", "print('warm')", socket=engine, env=NO_DOCKER)
    assert (near.stdout, near.returncode) == ("warm\n", 0), near.stderr


@pytest.mark.docker
def test_a_second_start_and_stop(engine):
    assert "already running" in isol8rt("engine", "start", socket=engine).stdout
    served = subprocess.run([sys.executable, "-m", "isol8rt", "serve", "--socket", str(engine)], capture_output=True,
                            text=True, timeout=60)
    assert served.returncode == 1 and "an engine already serves" in served.stderr
    stopped = isol8rt("engine", "stop", socket=engine)
    assert stopped.returncode == 0 and not engine.exists(), stopped.stdout + stopped.stderr
    assert isol8rt("engine", "status", socket=engine).returncode == 1
