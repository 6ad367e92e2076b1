"""DockerIsol8.execute and execute_stream on real containers: the core runtime's promises."""

from __future__ import annotations

import pytest

from isol8rt import ExecutionRequest, InvalidRequest

HELLO = {
    "python": "print('hello from python')",
    "node": "console.log('hello from node')",
    "bun": "console.log('hello from bun')",
    "deno": "console.log('hello from deno')",
    "bash": "echo hello from bash",
}


@pytest.mark.parametrize("runtime", list(HELLO))
async def test_hello_in_every_runtime(engine, runtime):
    result = await engine.execute(ExecutionRequest(code=HELLO[runtime], runtime=runtime))
    assert (result.stdout, result.stderr, result.exit_code) == (f"hello from {runtime}\n", "", 0)
    assert result.runtime == runtime and result.container_id and len(result.execution_id) == 36
    assert not result.timed_out and not result.truncated


async def test_exit_code_and_stderr_apart(engine):
    code = "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(42)"
    result = await engine.execute(ExecutionRequest(code=code))
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 42)


async def test_stdin_reaches_the_program(engine):
    result = await engine.execute(ExecutionRequest(code="import sys; print(sys.stdin.read()[::-1])", stdin="abc"))
    assert result.stdout == "cba\n"
    result = await engine.execute(ExecutionRequest(code="read x; echo \"got $x\"", runtime="bash", stdin="42\n"))
    assert result.stdout == "got 42\n"


async def test_cmd_runs_a_shell_command(engine):
    result = await engine.execute(ExecutionRequest(cmd="echo $((6 * 7)); exit 3", runtime="bash"))
    assert (result.stdout, result.exit_code) == ("42\n", 3)


SANDBOX_FACTS = r"""
import os, subprocess
status = dict(line.split(':\t', 1) for line in open('/proc/self/status').read().splitlines() if ':\t' in line)
print('uid', os.getuid(), os.getgid(), os.getgroups())
print('capeff', status['CapEff'].strip(), 'capprm', status['CapPrm'].strip(), 'capbnd', status['CapBnd'].strip())
print('nnp', status['NoNewPrivs'].strip())
try:
    open('/evil', 'w')
    print('root writable')
except OSError as exc:
    print('root', exc.errno)
open('/sandbox/ok.txt', 'w').write('fine')
print('sandbox', open('/sandbox/ok.txt').read())
import shutil
shutil.copy('/bin/true', '/tmp/mytrue'); os.chmod('/tmp/mytrue', 0o755)
try:
    subprocess.run(['/tmp/mytrue'], check=True)
    print('tmp exec allowed')
except PermissionError as exc:
    print('tmp exec', exc.errno)
print('ifaces', sorted(os.listdir('/sys/class/net')))
"""


async def test_inside_the_sandbox(engine):
    result = await engine.execute(ExecutionRequest(code=SANDBOX_FACTS))
    assert result.exit_code == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["uid"] == "1000 1000 []"
    assert lines["capeff"].startswith("0000000000000000 capprm 0000000000000000")
    assert lines["nnp"] == "1"
    assert lines["root"] == "30"  # EROFS: the root filesystem is read-only
    assert lines["sandbox"] == "fine"
    assert lines["tmp"] == "exec 13"  # EACCES: /tmp is mounted noexec
    assert lines["ifaces"] == "['lo']"


async def test_streaming_order_and_exit_event(engine):
    code = "import sys, time\nfor i in range(5):\n    print(i, flush=True)\n    time.sleep(0.01)\nsys.exit(7)"
    events = [event async for event in engine.execute_stream(ExecutionRequest(code=code))]
    assert "".join(e.data for e in events if e.type == "stdout") == "0\n1\n2\n3\n4\n"
    assert events[-1].type == "exit" and events[-1].data == "7" and events[-1].phase == "code"
    assert all(e.type in ("stdout", "exit") for e in events)


async def test_bad_requests_are_refused_before_anything_runs(engine):
    with pytest.raises(InvalidRequest, match="exactly one of code and cmd"):
        await engine.execute(ExecutionRequest(code="1", cmd="true"))
    with pytest.raises(InvalidRequest, match="runtime"):
        await engine.execute(ExecutionRequest(code="1", runtime="cobol"))
    with pytest.raises(InvalidRequest, match="workdir"):
        await engine.execute(ExecutionRequest(code="1", workdir="/etc"))
    with pytest.raises(InvalidRequest, match="workdir"):
        await engine.execute(ExecutionRequest(code="1", workdir="../../etc"))
    with pytest.raises(InvalidRequest, match="files"):
        await engine.execute(ExecutionRequest(code="1", files={"../x": "y"}))
    with pytest.raises(InvalidRequest, match="outputPaths"):
        await engine.execute(ExecutionRequest(code="1", output_paths=["/etc/passwd"]))
    with pytest.raises(InvalidRequest, match="environment variable"):
        await engine.execute(ExecutionRequest(code="1", env={"A=B": "c"}))
    # The engine is still fine afterwards.
    assert (await engine.execute(ExecutionRequest(code="print(1)"))).stdout == "1\n"


async def test_workdir_inside_sandbox(engine):
    result = await engine.execute(ExecutionRequest(code="import os; print(os.getcwd())", workdir="sub/dir"))
    assert result.stdout == "/sandbox/sub/dir\n", result.stderr
