"""Persistent interpreter sessions in the agent (local process, no container)."""

from __future__ import annotations

import shutil

import pytest

from isol8rt.agent.protocol import Exit, Failed, Run

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "HOME": "/tmp"}


def cell(run_id, code, sandbox, session="python", **kwargs):
    return Run(id=run_id, argv=[], env=ENV, cwd=sandbox, code=code.encode(), session=session, **kwargs)


async def test_python_state_survives_between_runs(agent):
    out, err, exit, _ = await agent.run(cell(1, "x = 42\nimport math", agent.sandbox))
    assert exit.exit_code == 0, err
    out, err, exit, _ = await agent.run(cell(2, "print(x, math.pi > 3)", agent.sandbox))
    assert (out, exit.exit_code) == (b"42 True\n", 0), err


async def test_python_errors_and_exit_keep_the_session(agent):
    _, err, exit, _ = await agent.run(cell(1, "y = 1\nraise ValueError('boom')", agent.sandbox))
    assert exit.exit_code == 1 and b"ValueError: boom" in err
    assert b"_receive" not in err and b"exec(" not in err  # the driver's own frames are not shown
    _, _, exit, _ = await agent.run(cell(2, "import sys\nsys.exit(3)", agent.sandbox))
    assert exit.exit_code == 3
    out, _, exit, _ = await agent.run(cell(3, "print(y)", agent.sandbox))
    assert out == b"1\n"


async def test_python_stdin_env_and_cwd_per_run(agent):
    code = "import os, sys\nprint(sys.stdin.read(), os.environ['TOKEN'], os.getcwd())"
    out, err, _, _ = await agent.run(Run(id=1, argv=[], env={**ENV, "TOKEN": "a"}, cwd=agent.sandbox + "/w",
                                         code=code.encode(), session="python", stdin=b"first"))
    assert out == f"first a {agent.sandbox}/w\n".encode(), err
    out, err, _, _ = await agent.run(Run(id=2, argv=[], env={**ENV, "TOKEN": "b"}, cwd=agent.sandbox,
                                         code=code.encode(), session="python", stdin=b"second"))
    assert out == f"second b {agent.sandbox}\n".encode(), err


async def test_timeout_interrupts_and_keeps_state(agent):
    await agent.run(cell(1, "kept = 'yes'", agent.sandbox))
    _, err, exit, _ = await agent.run(cell(2, "while True: pass", agent.sandbox, timeout_ms=300), timeout=10)
    assert exit.timed_out and exit.exit_code == 137 and b"KeyboardInterrupt" in err
    out, _, _, _ = await agent.run(cell(3, "print(kept)", agent.sandbox))
    assert out == b"yes\n"


async def test_a_cell_that_ignores_the_interrupt_is_killed_and_the_next_run_starts_fresh(agent):
    await agent.run(cell(1, "lost = 1", agent.sandbox))
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: time.sleep(0.01)"
    _, _, exit, _ = await agent.run(cell(2, code, agent.sandbox, timeout_ms=300), timeout=10)
    assert exit.timed_out and exit.exit_code == 137
    out, err, exit, _ = await agent.run(cell(3, "print('lost' in globals())", agent.sandbox))
    assert out == b"False\n", err


async def test_interpreter_exit_ends_the_session(agent):
    _, _, exit, _ = await agent.run(cell(1, "import os\nos._exit(5)", agent.sandbox))
    assert exit.exit_code == 5
    out, _, exit, _ = await agent.run(cell(2, "print('again')", agent.sandbox))
    assert out == b"again\n" and exit.exit_code == 0


@pytest.mark.parametrize("reply", [
    b"\x00\x00\x00\x05[1,2]",                           # JSON, not the driver's object
    b"\x00\x00\x00\x02{}",                              # no status
    b'\x00\x00\x00\x0e{"status":"0"}',                  # a status that is not a number
    b'\x00\x00\x00\x0f{"status":-1}  ',                 # nor one of 0..255
    b"\x00\x00\x00\x03\xff\xfe\xfd",                    # not JSON
    b"\x7f\xff\xff\xff",                                  # a length no reply has
    b"\x00\x00\x0f\xa0" + b"[" * 4000,                     # nesting deep enough to exhaust the decoder's stack
])
async def test_an_interpreter_that_breaks_the_wire_is_killed_and_the_agent_lives(agent, reply):
    """The interpreter runs user code, which can reach the driver's control socket: what it writes there
    must not raise in the agent. The cell ends, killed, and the next run gets a fresh interpreter."""
    await agent.run(cell(1, "kept = 1", agent.sandbox))
    code = f"import sys\nsys.modules['__main__']._control.sendall({reply!r})\nimport time\ntime.sleep(30)"
    _, _, exit, _ = await agent.run(cell(2, code, agent.sandbox), timeout=10)
    assert isinstance(exit, Exit) and exit.exit_code == 137 and not exit.timed_out
    out, err, exit, _ = await agent.run(cell(3, "print('kept' in globals())", agent.sandbox))
    assert (out, exit.exit_code) == (b"False\n", 0), err


async def test_busy_session_refuses_a_second_run(agent):
    await agent.send(cell(1, "import time; time.sleep(1)", agent.sandbox))
    _, _, answer, _ = await agent.run(cell(2, "print(1)", agent.sandbox))
    assert isinstance(answer, Failed) and answer.kind == "busy"
    await agent.until(lambda m: isinstance(m, Exit) and m.id == 1)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed on this host")
async def test_node_state_survives_between_runs(agent):
    _, err, exit, _ = await agent.run(cell(1, "let x = 40; var y = 2; const f = (a) => a + y;", agent.sandbox, "node"))
    assert exit.exit_code == 0, err
    out, err, exit, _ = await agent.run(cell(2, "console.log(f(x))", agent.sandbox, "node"))
    assert (out, exit.exit_code) == (b"42\n", 0), err
    code = "await new Promise(r => setTimeout(r, 20)); console.log('awaited'); setTimeout(() => console.log('timer'), 30)"
    out, err, exit, _ = await agent.run(cell(3, code, agent.sandbox, "node"))
    assert (out, exit.exit_code) == (b"awaited\ntimer\n", 0), err
    _, err, exit, _ = await agent.run(cell(4, "throw new Error('nope')", agent.sandbox, "node"))
    assert exit.exit_code == 1 and b"nope" in err
    out, _, _, _ = await agent.run(cell(5, "console.log(typeof require('fs').readFileSync, x)", agent.sandbox, "node"))
    assert out == b"function 40\n"
