"""Hostile requests rather than hostile code: a huge command line, a huge environment, NUL bytes where
paths and strings go, a very large program. Stopped by: the engine's request checks (InvalidRequest,
nothing run, no container touched) and the kernel's exec limits (E2BIG, reported as exit 126 with the
reason); either way the run ends at once and the engine stays healthy."""

from __future__ import annotations

import time

import pytest
import trio

from isol8rt import ExecutionRequest, InvalidRequest

from .conftest import after_attack, stop_and_verify

MiB = 1024 * 1024


async def test_huge_command_line(attack_engine):
    """A ``cmd`` of 1 MiB (one argument of ``sh -c``, eight times the kernel's 128 KiB per-argument
    limit). Stopped by: exec's E2BIG: exit 126 with the reason, at once. The same text as a bash
    program (a file, not an argument) just runs."""
    started = time.monotonic()
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(runtime="bash", cmd="echo " + "a" * MiB + " | wc -c"))
    assert attack.exit_code == 126 and "Argument list too long" in attack.stderr, attack.stderr
    with trio.fail_after(30):
        program = await attack_engine.execute(ExecutionRequest(runtime="bash", code="echo " + "a" * MiB + " | wc -c"))
    assert program.stdout == f"{MiB + 1}\n", program.stderr
    assert time.monotonic() - started < 20
    await after_attack(attack_engine, program, "bash")
    await stop_and_verify(attack_engine, attack, program)


async def test_huge_environment(attack_engine):
    """One 1 MiB variable, and 20000 variables of 100 bytes. Stopped by: exec's limits (E2BIG, exit 126
    with the reason); 1000 ordinary variables still work."""
    with trio.fail_after(30):
        one = await attack_engine.execute(ExecutionRequest(code="print('ran')", env={"BIG": "b" * MiB}))
        many = await attack_engine.execute(ExecutionRequest(
            code="print('ran')", env={f"VAR_{index}": "v" * 100 for index in range(20000)}))
        fine = await attack_engine.execute(ExecutionRequest(
            code="import os; print(sum(name.startswith('VAR_') for name in os.environ))",
            env={f"VAR_{index}": "v" * 10 for index in range(1000)}))
    for result in (one, many):
        assert result.exit_code == 126 and result.stdout == "", result.stderr
        assert "Argument list too long" in result.stderr
    assert fine.stdout == "1000\n", fine.stderr
    await after_attack(attack_engine, fine, "python")
    await stop_and_verify(attack_engine, one, many, fine)


NUL_REQUESTS = {
    "files": dict(code="print(1)", files={"a\x00b": "x"}),
    "outputPaths": dict(code="print(1)", output_paths=["out\x00/../../etc/passwd"]),
    "workdir": dict(code="print(1)", workdir="sub\x00dir"),
    "cmd": dict(cmd="echo hi\x00; id"),
    "env": dict(code="print(1)", env={"NAME": "value\x00MORE=1"}),
    "env name": dict(code="print(1)", env={"NA\x00ME": "value"}),
}


async def test_nul_bytes(attack_engine):
    """A NUL byte in a file path, an output path, the working directory, a command, an environment value
    and an environment name: C strings would cut them short, so a path could mean something else
    inside than it did when checked. Stopped by: the request check: InvalidRequest, and nothing ran (no
    container was made or used)."""
    for name, fields in NUL_REQUESTS.items():
        with pytest.raises(InvalidRequest):
            await attack_engine.execute(ExecutionRequest(**fields))
    assert attack_engine.containers == []
    await after_attack(attack_engine, None, "python")
    await stop_and_verify(attack_engine)


async def test_very_large_programs(attack_engine):
    """10 MiB of Python source (under the 16 MiB limit) runs; 17 MiB is refused before anything starts.
    Held: no hang, a clear error, and the engine serves the next run."""
    big = "# " + "c" * (10 * MiB) + "\nprint('ran')\n"
    started = time.monotonic()
    with trio.fail_after(60):
        attack = await attack_engine.execute(ExecutionRequest(code=big, timeout_ms=30_000))
    assert attack.stdout == "ran\n", attack.stderr[-500:]
    assert time.monotonic() - started < 30
    with pytest.raises(InvalidRequest, match="code"):
        await attack_engine.execute(ExecutionRequest(code="#" * (17 * MiB)))
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)
