"""Attacks on the fork server (agent/zygote.py) from a forked run, and what the next run in the same
container sees: it must be a fork too (the server was not harmed), in the same container (the reset
verified), and see nothing of the attacker: not its objects (a preloaded module patched, builtins, its
__main__), its files or its environment. And the server itself is out of the sandbox user's reach."""

from __future__ import annotations

import json

import pytest

from .conftest import run

pytestmark = pytest.mark.docker

_FORKED = "b'zygote.py' in open('/proc/self/cmdline', 'rb').read()"

ATTACK = r"""
import builtins, ctypes, json, os, signal, sys
report = {'forked': %s}
dumps = json.dumps
builtins.planted = 'builtins'
json.dumps = lambda *a, **k: 'patched'
sys.modules['planted'] = sys
sys.path.insert(0, '/tmp/planted')
os.environ['PLANTED'] = '1'
open('/sandbox/planted.py', 'w').write('x = 1')
zygotes = []
for pid in os.listdir('/proc'):
    try:
        if pid.isdigit() and b'zygote.py' in open(f'/proc/{pid}/cmdline', 'rb').read() and int(pid) != os.getpid():
            zygotes.append(int(pid))
    except OSError:
        pass
report['zygotes'] = len(zygotes)
libc = ctypes.CDLL(None, use_errno=True)
for pid in zygotes:
    for name, attempt in (('kill', lambda: os.kill(pid, signal.SIGKILL)), ('stop', lambda: os.kill(pid, signal.SIGSTOP)),
                          ('environ', lambda: open(f'/proc/{pid}/environ').read()),
                          ('mem', lambda: open(f'/proc/{pid}/mem', 'rb').read(1)),
                          ('fd', lambda: os.listdir(f'/proc/{pid}/fd'))):
        try:
            attempt()
            report[name] = 'reached'
        except PermissionError:
            report[name] = 'refused'
    report['ptrace'] = 'reached' if libc.ptrace(16, pid, 0, 0) == 0 else 'refused'  # PTRACE_ATTACH
print(dumps(report))
""" % _FORKED

VICTIM = r"""
import builtins, json, os, sys
print(json.dumps({'forked': %s, 'builtins': hasattr(builtins, 'planted'), 'json': json.dumps([1]),
                  'modules': 'planted' in sys.modules, 'path': '/tmp/planted' in sys.path,
                  'environ': 'PLANTED' in os.environ, 'file': os.path.exists('/sandbox/planted.py'),
                  'main': sorted(k for k in globals() if not k.startswith('__'))}))
""" % _FORKED


async def test_a_forked_run_cannot_reach_the_server_or_leave_anything_to_the_next(strategy, fork_server, reuse_engine):
    if not fork_server or strategy != "fast":
        pytest.skip("about the fork server in a reused container")
    attack = await run(reuse_engine, ATTACK)
    assert attack.exit_code == 0, attack.stderr
    seen = json.loads(attack.stdout)
    assert seen["forked"] and seen["zygotes"] == 1
    assert {seen[name] for name in ("kill", "stop", "environ", "mem", "fd", "ptrace")} == {"refused"}
    victim = await run(reuse_engine, VICTIM)
    assert victim.exit_code == 0, victim.stderr
    assert victim.container_id == attack.container_id, "the reset did not verify: the container was retired"
    assert json.loads(victim.stdout) == {"forked": True, "builtins": False, "json": "[1]", "modules": False,
                                         "path": False, "environ": False, "file": False,
                                         "main": ["builtins", "json", "os", "sys"]}


# The stdio objects every forked run takes over were made once, in the zygote, and a run's environment is
# set through os.environ's store: an attacker reconfigures the objects it was given (and breaks io), writes
# output it never flushes, and sets variables behind os.environ's back (C putenv), hoping the next run
# inherits any of it.
STDIO_ATTACK = r"""
import ctypes, io, os, sys
sys.stdout.reconfigure(encoding='latin-1', errors='replace', line_buffering=True)
sys.stderr.reconfigure(encoding='ascii', errors='strict')
io.open = None
sys.__stdout__.buffer.write(b'PLANTED-unflushed')
os.putenv('C_PLANTED', '1')
ctypes.CDLL(None).setenv(b'LIBC_PLANTED', b'1', 1)
os.environ['PLANTED'] = '1'
sys.stdout.buffer.flush()
os._exit(0)
"""

STDIO_VICTIM = r"""
import io, json, os, subprocess, sys
child_env = subprocess.run(['env'], capture_output=True, text=True).stdout
print(json.dumps({'forked': %s, 'stdout': [sys.stdout.encoding, sys.stdout.errors, sys.stdout.line_buffering],
                  'stderr': [sys.stderr.encoding, sys.stderr.errors],
                  'io_open': io.open is not None,
                  'environ': sorted(k for k in os.environ if k.endswith('PLANTED')),
                  'child_env': sorted(l.split('=')[0] for l in child_env.splitlines() if 'PLANTED' in l)}))
""" % _FORKED


async def test_the_stdio_and_environment_a_forked_run_is_given_come_fresh_to_the_next(strategy, fork_server,
                                                                                       reuse_engine):
    if not fork_server or strategy != "fast":
        pytest.skip("about the fork server in a reused container")
    attack = await run(reuse_engine, STDIO_ATTACK)
    assert attack.exit_code == 0, attack.stderr
    assert attack.stdout == "PLANTED-unflushed"  # its own output, flushed by itself: it reached only its result
    victim = await run(reuse_engine, STDIO_VICTIM)
    assert victim.exit_code == 0, victim.stderr
    assert victim.container_id == attack.container_id, "the reset did not verify: the container was retired"
    assert not victim.stdout.startswith("PLANTED"), "the attacker's output reached the next run"
    assert json.loads(victim.stdout) == {"forked": True, "stdout": ["utf-8", "strict", False],
                                         "stderr": ["utf-8", "backslashreplace"], "io_open": True,
                                         "environ": [], "child_env": []}
