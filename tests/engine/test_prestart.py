"""An interpreter started ahead of time must be indistinguishable from a fresh `python3 /sandbox/main.py`
(or `node`, `bash`): same argv, __main__/__file__, /proc/self/cmdline, loaded modules, env, cwd, stdin,
descriptors, signal dispositions, exit and signal behaviour. Each probe runs once on a pooled container
(prestarted) and once with prestarting switched off (cold), and the outputs must be equal.

The probes also print how long their process had existed; that age is the one thing that differs, and
it proves the warm run really used a prestarted process."""

from __future__ import annotations

import re

import pytest
import trio

from isol8rt import DockerIsol8, ExecutionRequest, Isol8Options
from isol8rt.engine import engine as engine_module

pytestmark = pytest.mark.docker

PYTHON_PROBE = r"""
import os, signal, sys
age = float(open('/proc/uptime').read().split()[0]) - int(open('/proc/self/stat').read().rsplit(')', 1)[1].split()[19]) / os.sysconf('SC_CLK_TCK')
print('AGE', age)
print(sys.argv, __file__, __name__, __spec__, sys.path[0], sys.orig_argv)
print(open('/proc/self/cmdline', 'rb').read())
print(sorted(sys.modules))
print(sorted(os.environ.items()))
print(os.getcwd(), os.getuid(), os.getgid(), os.getgroups(), os.getsid(0) == os.getpid(), os.umask(0o22))
print(sorted(os.listdir('/proc/self/fd')), sys.flags)
print([(s.name, signal.getsignal(s)) for s in signal.valid_signals() if isinstance(s, signal.Signals) and s not in (signal.SIGKILL, signal.SIGSTOP)])
print(open('/proc/self/status').read().split('SigBlk')[1].split('\n')[0], open('/proc/self/status').read().split('SigIgn')[1].split('\n')[0])
print(repr(sys.stdin.read()))
sys.stdout.flush()
"""

NODE_PROBE = r"""
import fs from 'node:fs';
const stat = fs.readFileSync('/proc/self/stat', 'utf8').split(')').pop().trim().split(/\s+/);
console.log('AGE', Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]) - Number(stat[19]) / 100);
console.log(process.argv, process.execArgv, import.meta.url, process.cwd());
console.log(JSON.stringify(Object.entries(process.env).sort()));
console.log(fs.readFileSync('/proc/self/cmdline'));
console.log(fs.readdirSync('/proc/self/fd').length);
console.log(JSON.stringify(fs.readFileSync(0, 'utf8')));
"""

BASH_PROBE = r"""
read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ start _ < /proc/self/stat
read -r uptime _ < /proc/uptime
echo "AGE $(( ${uptime%.*}${uptime#*.} - start ))e-2"
echo "$0 $# $* ${BASH_SOURCE[0]} $PWD $$ $BASHPID"
env | grep -v '^_=' | sort
ls /proc/self/fd | wc -l
trap -p
cat
"""


async def both(runtime: str, code: str, monkeypatch, *, age_s: float = 0.0, **request_fields) -> tuple[str, str]:
    """The outputs of ``code`` run warm (prestarted, then aged ``age_s``) and cold."""
    request = ExecutionRequest(code=code, runtime=runtime, **request_fields)
    async with DockerIsol8(Isol8Options(pool_size=1)) as warm:
        # Prewarming returns once the agent's Ready says the interpreter waits for its program: no wait
        # is needed for that. ``age_s`` is for the test that measures how long the process existed.
        await warm.start(prewarm=[runtime])
        await trio.sleep(age_s)
        warm_result = await warm.execute(request)
    monkeypatch.setattr(engine_module, "prestart_spec", lambda runtime, options: None)
    async with DockerIsol8(Isol8Options(pool_size=1)) as cold:
        cold_result = await cold.execute(request)
    assert warm_result.exit_code == cold_result.exit_code, (warm_result, cold_result)
    assert warm_result.stderr == cold_result.stderr
    return warm_result.stdout, cold_result.stdout


def split_age(output: str) -> tuple[float, str]:
    """The process's age, and the rest of the output with what differs between containers (the hostname
    Docker sets to the container's id) blanked."""
    first, _, rest = output.partition("\n")
    assert first.startswith("AGE "), output
    return float(first.split()[1]), re.sub(r"\b[0-9a-f]{12}\b", "<container>", rest)


@pytest.mark.parametrize(("runtime", "probe"), [("python", PYTHON_PROBE), ("node", NODE_PROBE), ("deno", NODE_PROBE.replace("process.execArgv", "Deno.args")), ("bash", BASH_PROBE)])
async def test_prestarted_run_is_a_fresh_process(monkeypatch, runtime, probe):
    warm, cold = await both(runtime, probe, monkeypatch, age_s=1.0, stdin="some input\n")
    warm_age, warm_rest = split_age(warm)
    cold_age, cold_rest = split_age(cold)
    # Normalise what differs between any two processes: pids.
    if runtime == "bash":
        warm_rest, cold_rest = (text.split("\n", 1)[0].rsplit(" ", 2)[0] + text.split("\n", 1)[1]
                                for text in (warm_rest, cold_rest))
    assert warm_rest == cold_rest
    assert warm_age >= 0.5 > cold_age  # the warm process existed before the request; the cold one did not


@pytest.mark.parametrize(
    ("runtime", "code", "exit_code", "stderr_has"),
    [
        ("python", "import sys\nsys.exit(3)", 3, ""),
        ("python", "raise ValueError('x')", 1, "ValueError: x"),
        ("python", "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)", 143, ""),
        ("python", "import sys\nsys.stdout.close()\nprint('x')", 1, ""),
        ("node", "process.exitCode = 5", 5, ""),
        ("node", "process.kill(process.pid, 'SIGTERM')", 143, ""),
        ("node", "throw new Error('boom')", 1, "Error: boom"),
        ("deno", "Deno.exit(4)", 4, ""),
        ("deno", "throw new Error('boom')", 1, "Error: boom"),
        ("bash", "exit 7", 7, ""),
        ("bash", "kill -TERM $$", 143, ""),
    ],
)
async def test_exit_and_signal_behaviour_match(monkeypatch, runtime, code, exit_code, stderr_has):
    warm, cold = await both(runtime, code, monkeypatch)
    assert warm == cold


async def test_sigpipe_is_default_in_prestarted_processes(engine):
    # `yes | head -1` ends because yes dies of SIGPIPE: a process that inherited an ignored SIGPIPE would
    # instead get EPIPE errors and print them.
    result = await engine.execute(ExecutionRequest(code="yes | head -1", runtime="bash"))
    assert (result.stdout, result.stderr, result.exit_code) == ("y\n", "", 0)
