"""The command line's own latency: ``isol8rt run`` wall time as a user's shell sees it (a new process
each time), cold and through a local engine, beside ``docker run --rm`` of the same image as the floor,
and the floors under any Python command (``python3 -c pass``, importing the CLI, ``--version``).

The rows take turns run by run (cold, engine, docker run, floors, then again), so they see the same
moments of a busy machine. The engine is ``isol8rt serve --socket`` started here on a socket of the
bench's own, so a user's engine is neither used nor disturbed; the cold runs are told to use none
(``ISOL8RT_ENGINE=off``). Every row is the wall time of a subprocess, start to exit, in milliseconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from isol8rt.runtimes import RUNTIMES

from .results import Result, unavailable
from .workloads import HELLO_ARGV

_now = time.perf_counter
CODE = "print('hello')"
EXPECTED = "hello\n"


def isol8rt_command() -> list[str]:
    """How a user calls the CLI: the ``isol8rt`` script beside this interpreter, else ``python -m``."""
    script = Path(sys.executable).parent / "isol8rt"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "isol8rt"]


class Row:
    """One row: a command run as a subprocess, its output checked, its wall time recorded."""

    def __init__(self, result: Result, argv: list[str], env: dict[str, str], expected: str | None) -> None:
        self.result, self.argv, self.env, self.expected = result, argv, env, expected

    async def once(self, keep: bool) -> None:
        started = _now()
        done = await trio.run_process(self.argv, env=self.env, capture_stdout=True, capture_stderr=True, check=False)
        elapsed = (_now() - started) * 1000
        self.result.wall_s += elapsed / 1000
        stdout = done.stdout.decode(errors="replace")
        problem = None
        if done.returncode != 0 or (self.expected is not None and stdout != self.expected):
            stderr = done.stderr.decode(errors="replace")
            problem = f"exit {done.returncode}, stdout {stdout[:60]!r}, stderr {stderr[-160:]!r}"
        self.result.record(problem, elapsed, keep=keep)


def _row(result_id: str, label: str, argv: list[str], env: dict[str, str], expected: str | None) -> Row:
    return Row(Result(id=result_id, group="cli", label=label, params={"argv": argv}), argv, env, expected)


async def _start_engine(cli: list[str], env: dict[str, str], socket_path: Path) -> trio.Process:
    process = await trio.lowlevel.open_process(
        [*cli, "serve", "--socket", str(socket_path), "--prewarm", "python"], env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with trio.move_on_after(120):
        while process.poll() is None:
            status = await trio.run_process([*cli, "engine", "status", "--socket", str(socket_path)], env=env,
                                            capture_stdout=True, capture_stderr=True, check=False)
            if status.returncode == 0:
                return process
            await trio.sleep(0.2)
    process.terminate()
    await process.wait()
    raise RuntimeError(f"the local engine did not answer on {socket_path} (exit {process.poll()})")


async def section_cli(ctx) -> list[Result]:
    s = ctx.settings
    cli = isol8rt_command()
    directory = Path(tempfile.mkdtemp(prefix="isol8rt-bench-"))
    socket_path = directory / "engine" / "engine.sock"
    base = {**os.environ, "ISOL8RT_SOCKET": str(socket_path)}
    cold_env = {**base, "ISOL8RT_ENGINE": "off"}
    image = RUNTIMES["python"].image
    rows_each = [  # run every time round
        _row("cli.run.engine", "isol8rt run -e \"print('hello')\" through a local engine (serve --socket)",
             [*cli, "run", "-e", CODE], base, EXPECTED),
        _row("cli.floor.python", "python3 -c pass (whatever python3 is on PATH: a pyenv shim is a shell script)",
             [shutil.which("python3") or "python3", "-c", "pass"], base, ""),
        _row("cli.floor.interpreter", "python -c pass (the interpreter isol8rt runs on, alone)",
             [sys.executable, "-c", "pass"], base, ""),
        _row("cli.floor.import", "python -I -c 'import isol8rt.cli' (the interpreter and the CLI's import)",
             [sys.executable, "-I", "-c", "import isol8rt.cli"], base, ""),
        _row("cli.version", "isol8rt --version", [*cli, "--version"], base, None),
    ]
    rows_cold = [  # the slow ones: fewer runs
        _row("cli.run.cold", "isol8rt run -e \"print('hello')\" cold (no engine: a fresh sandbox)",
             [*cli, "run", "-e", CODE], cold_env, EXPECTED),
    ]
    docker = shutil.which("docker")
    if docker:
        rows_cold.append(_row("cli.docker_run", f"docker run --rm --network none {image} python3 -c (the floor)",
                              [docker, "run", "--rm", "--network", "none", "--entrypoint", HELLO_ARGV["python"][0],
                               image, *HELLO_ARGV["python"][1:]], base, EXPECTED))
    out: list[Result] = []
    if not docker:
        out.append(unavailable("cli.docker_run", "cli", "docker run --rm (the floor)", "no docker CLI on PATH"))
    ctx.progress(f"cli: isol8rt run through an engine x{s.cli_runs}, cold x{s.cli_cold_runs}, docker run --rm "
                 f"x{s.cli_cold_runs}, floors x{s.cli_runs}")
    engine = None
    try:
        engine = await _start_engine(cli, base, socket_path)
        for index in range(s.cli_warmup + s.cli_runs):
            keep = index >= s.cli_warmup
            for row in rows_each:
                await row.once(keep)
            if index < s.cli_warmup + s.cli_cold_runs:
                for row in rows_cold:
                    await row.once(keep)
    finally:
        if engine is not None:
            engine.terminate()
            with trio.move_on_after(60):
                await engine.wait()
        shutil.rmtree(directory, ignore_errors=True)
    return out + [row.result for row in rows_each + rows_cold]
