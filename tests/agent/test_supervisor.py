"""The agent as a local process: runs, output, limits, files, prestarted interpreters, reset."""

from __future__ import annotations

import os
import signal

from isol8rt.agent.protocol import (
    Configure, Done, Exit, Failed, FileData, GetFile, Prestart, PutFile, Ready, Reset, Run, Signal, Stdin,
)

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "HOME": "/tmp"}
PY = "/usr/bin/python3"


def python_run(run_id, code, sandbox, **kwargs):
    return Run(id=run_id, argv=[PY, f"{sandbox}/main.py"], env=ENV, cwd=sandbox, code=code.encode(),
               code_path=f"{sandbox}/main.py", **kwargs)


async def test_hello_and_exit_code(agent):
    out, err, exit, _ = await agent.run(python_run(1, "import sys\nprint('hello')\nsys.exit(42)", agent.sandbox))
    assert out == b"hello\n"
    assert err == b""
    assert isinstance(exit, Exit) and exit.exit_code == 42 and exit.signal == 0 and not exit.timed_out


async def test_stderr_apart_and_stdin(agent):
    code = "import sys\ndata = sys.stdin.read()\nprint(data.upper())\nprint('warn', file=sys.stderr)"
    out, err, exit, _ = await agent.run(python_run(1, code, agent.sandbox, stdin=b"piped in"))
    assert (out, err, exit.exit_code) == (b"PIPED IN\n", b"warn\n", 0)


async def test_runs_as_sandbox_user_in_own_session(agent):
    code = "import os\nprint(os.getuid(), os.getgid(), os.getgroups(), os.getsid(0) == os.getpid(), os.getpgrp() == os.getpid())"
    out, _, exit, _ = await agent.run(python_run(1, code, agent.sandbox))
    assert out == f"{agent.uid} {agent.uid} [] True True\n".encode(), out


async def test_timeout_kills_group_and_keeps_earlier_output(agent):
    code = "import subprocess, time\nprint('before', flush=True)\nsubprocess.Popen(['sleep', '30'])\ntime.sleep(30)"
    out, _, exit, _ = await agent.run(python_run(1, code, agent.sandbox, timeout_ms=500), timeout=10)
    assert exit.timed_out and exit.exit_code == 137 and exit.signal == signal.SIGKILL
    assert out == b"before\n"


async def test_output_cap_truncates_and_drains(agent):
    code = "import sys\nsys.stdout.write('x' * 10_000_000)\nsys.stderr.write('e' * 10)"
    out, err, exit, _ = await agent.run(python_run(1, code, agent.sandbox, max_output=1024))
    assert len(out) == 1024 and exit.truncated_stdout and not exit.truncated_stderr
    assert err == b"e" * 10 and exit.exit_code == 0


async def test_missing_program_is_exit_127(agent):
    out, err, exit, _ = await agent.run(Run(id=1, argv=["no-such-program"], env=ENV, cwd=agent.sandbox))
    assert exit.exit_code == 127 and b"cannot run no-such-program" in err


async def test_signal_and_streaming_stdin(agent):
    code = "import sys\nfor line in sys.stdin:\n    print('got', line.strip(), flush=True)"
    await agent.send(python_run(1, code, agent.sandbox, stdin_open=True))
    await agent.send(Stdin(id=1, data=b"a\n"))
    # Unbuffered print() writes its pieces separately: wait for the line's end, then look at the whole.
    seen = await agent.until(lambda m: getattr(m, "data", b"").endswith(b"\n"))
    assert b"".join(m.data for m in seen) == b"got a\n"
    await agent.send(Stdin(id=1, data=b"b\n", eof=True))
    seen = await agent.until(lambda m: isinstance(m, Exit))
    assert b"got b\n" in b"".join(m.data for m in seen if hasattr(m, "fd"))
    await agent.send(python_run(2, "import time\nprint('up', flush=True)\ntime.sleep(30)", agent.sandbox))
    await agent.until(lambda m: getattr(m, "data", b"").endswith(b"\n"))
    await agent.send(Signal(id=2, signum=signal.SIGTERM))
    exit = (await agent.until(lambda m: isinstance(m, Exit)))[-1]
    assert exit.signal == signal.SIGTERM and exit.exit_code == 143


async def test_files_in_and_out_binary(agent):
    payload = bytes(range(256)) * 4096  # 1 MiB + spans chunk boundaries once doubled
    big = payload * 5
    puts = [PutFile(id=1, path="data/in.bin", data=big[o:o + 1 << 20], offset=o, last=o + (1 << 20) >= len(big))
            for o in range(0, len(big), 1 << 20)]
    code = "import shutil\nshutil.copy('data/in.bin', 'out.bin')\nprint(open('data/in.bin','rb').read() == bytes(range(256)) * 4096 * 5)"
    out, err, exit, seen = await agent.run(python_run(2, code, agent.sandbox, output_paths=["out.bin", "missing"]), *[
        PutFile(id=2, path=p.path, data=p.data, offset=p.offset, last=p.last) for p in puts])
    assert out == b"True\n", err
    got = b"".join(m.data for m in seen if isinstance(m, FileData) and m.path == "out.bin")
    assert got == big
    assert "missing" in exit.file_errors


async def test_a_file_whose_middle_chunk_failed_is_answered_failed(agent):
    """Only the last chunk of a file asks for an answer: a failure of an earlier chunk must be that answer
    (the file is not whole), never a Done."""
    await agent.send(PutFile(id=7, path="whole.bin", data=b"abc", offset=0, last=False),
                     PutFile(id=7, path="../outside.bin", data=b"def", offset=3, last=False),
                     PutFile(id=7, path="whole.bin", data=b"ghi", offset=6, last=True, ack=True))
    answers = [m for m in await agent.until(lambda m: isinstance(m, (Done, Failed)) and m.id == 7)
               if isinstance(m, (Done, Failed))]
    assert len(answers) == 1 and isinstance(answers[0], Failed) and answers[0].kind == "bad_path", answers


async def test_paths_that_escape_are_refused(agent):
    for bad in ("../etc/passwd", "/etc/passwd", "a/../../x", "nul\x00byte", ""):
        await agent.send(PutFile(id=9, path=bad, data=b"x", ack=True))
        answer = (await agent.until(lambda m: getattr(m, "id", None) == 9))[-1]
        assert isinstance(answer, Failed) and answer.kind == "bad_path", (bad, answer)
    # A symlink planted by user code is not followed on the way in or out.
    code = "import os\nos.symlink('/etc', 'evil')\nos.symlink('/etc/hostname', 'host')\nos.symlink('main.py', 'inside')"
    _, _, exit, _ = await agent.run(python_run(1, code, agent.sandbox, output_paths=["host", "inside"]))
    assert "outside" in exit.file_errors["host"] and "inside" not in exit.file_errors
    await agent.send(PutFile(id=10, path="evil/owned", data=b"x", ack=True))
    answer = (await agent.until(lambda m: getattr(m, "id", None) == 10))[-1]
    assert isinstance(answer, Failed) and "symlink" in answer.message
    await agent.send(GetFile(id=11, path="evil/hostname"))
    answer = (await agent.until(lambda m: isinstance(m, (Done, Failed)) and m.id == 11))[-1]
    assert isinstance(answer, Failed)


async def test_prestarted_interpreter_is_indistinguishable(agent):
    sandbox = agent.sandbox
    spec = Prestart(argv=[PY, f"{sandbox}/main.py"], env=ENV, cwd=sandbox, code_path=f"{sandbox}/main.py")
    await agent.send(Configure(prestart=[spec]))
    code = ("import sys, os, __main__\n"
            "print(sys.argv, __file__, os.path.isfile(__file__), sys.path[0], os.getcwd())\n"
            "print(open('/proc/self/cmdline','rb').read().split(b'\\0')[:-1])\n"
            "print(sys.stdin.read())")
    out1, err1, exit1, _ = await agent.run(python_run(1, code, sandbox, stdin=b"in"))
    out2, err2, exit2, _ = await agent.run(python_run(2, code, sandbox, stdin=b"in"))  # cold: prestart used up
    assert err1 == err2 == b""
    assert out1 == out2
    assert f"['{sandbox}/main.py'] {sandbox}/main.py True {sandbox} {sandbox}".encode() in out1


async def test_reset_kills_and_wipes(agent):
    sandbox = agent.sandbox
    code = ("import os, subprocess\n"
            "subprocess.Popen(['sleep', '300'])\n"
            "if os.fork() == 0:\n    os.setsid()\n    os.execvp('sleep', ['sleep', '301'])\n"
            "os.makedirs('deep/er'); open('deep/er/f', 'w').write('x'); os.chmod('deep', 0)\n")
    _, err, exit, _ = await agent.run(python_run(1, code, sandbox))
    assert exit.exit_code == 0, err
    await agent.send(Reset(id=5))
    seen = await agent.until(lambda m: isinstance(m, Ready))
    done = next(m for m in seen if isinstance(m, Done))
    assert seen[-1].generation == 1
    assert {"processes", "files"} <= set(seen[-1].verified)
    assert done.detail["files_removed"] >= 3
    assert os.listdir(sandbox) == []


async def test_a_run_that_cannot_use_the_prestarted_interpreter_replaces_its_fifo(agent):
    # Regression: a cold run wrote its program onto the discarded prestart's FIFO and blocked forever.
    sandbox = agent.sandbox
    spec = Prestart(argv=[PY, f"{sandbox}/main.py"], env=ENV, cwd=sandbox, code_path=f"{sandbox}/main.py")
    await agent.send(Configure(prestart=[spec]))
    run = python_run(1, "import os; print(os.getcwd())", sandbox)
    run = Run(id=1, argv=run.argv, env=run.env, cwd=f"{sandbox}/sub", code=run.code, code_path=run.code_path)
    out, err, exit, _ = await agent.run(run, timeout=5)
    assert out == f"{sandbox}/sub\n".encode() and exit.exit_code == 0, err


async def test_files_refuse_to_write_into_a_fifo(agent):
    _, _, exit, _ = await agent.run(python_run(1, "import os; os.mkfifo('pipe')", agent.sandbox))
    await agent.send(PutFile(id=2, path="pipe", data=b"x", ack=True))
    answer = (await agent.until(lambda m: getattr(m, "id", None) == 2, timeout=5))[-1]
    assert isinstance(answer, Failed) and "FIFO" in answer.message


async def test_reset_survives_a_very_deep_tree(agent):
    # Regression: a recursive wipe hit Python's recursion limit on ~3000 levels and took the agent down.
    code = "import os\nfor _ in range(4000):\n    os.mkdir('d')\n    os.chdir('d')\nopen('leaf', 'w').write('x')"
    _, err, exit, _ = await agent.run(python_run(1, code, agent.sandbox), timeout=60)
    assert exit.exit_code == 0, err
    await agent.send(Reset(id=2))
    seen = await agent.until(lambda m: isinstance(m, Ready), timeout=60)
    assert "files" in seen[-1].verified and os.listdir(agent.sandbox) == []
