"""The fork server as the local agent runs it: a prestarted interpreter that is a fork of a zygote, and
what a run forked from it is and is not given."""

from __future__ import annotations

import json
import os
import signal

import pytest

from isol8rt.agent.protocol import Configure, Exit, Prestart, Ready, Reset, Run

from .test_supervisor import ENV, PY


def _spec(sandbox: str) -> Prestart:
    return Prestart(argv=[PY, f"{sandbox}/main.py"], env=ENV, cwd=sandbox, code_path=f"{sandbox}/main.py")


def _run(run_id: int, code: str, sandbox: str, **fields) -> Run:
    spec = _spec(sandbox)
    return Run(id=run_id, argv=spec.argv, env=spec.env, cwd=spec.cwd, code=code.encode(), code_path=spec.code_path,
               **fields)


async def _configure(agent, preload=(), **fields) -> None:
    await agent.send(Configure(prestart=[_spec(agent.sandbox)], preload=list(preload), **fields))
    await agent.until(lambda m: isinstance(m, Ready) and m.reason == "configured")


async def _reset(agent, op_id: int) -> Ready:
    await agent.send(Reset(id=op_id))
    return (await agent.until(lambda m: isinstance(m, Ready) and m.reason == "reset", timeout=20))[-1]


_SELF = r"""
first_globals = sorted(globals())
import json, os, sys
with open('/proc/self/cmdline', 'rb') as f:
    forked = b'zygote.py' in f.read()
print(json.dumps({
    'forked': forked, 'uid': os.getresuid(), 'gid': os.getresgid(), 'groups': os.getgroups(),
    'session_leader': os.getsid(0) == os.getpid(), 'cwd': os.getcwd(), 'env': dict(os.environ),
    'argv': sys.argv, 'file': __file__, 'name': __name__, 'main_keys': first_globals,
    'preloaded': 'decimal' in sys.modules, 'fds': sorted(int(fd) for fd in os.listdir('/proc/self/fd')),
    'seccomp': [l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')][0],
    'dumpable_fd_dir_owner': os.stat(f'/proc/{os.getpid()}').st_uid,
}))
"""


async def test_a_forked_run_is_the_sandbox_user_in_its_own_session_with_the_runs_env(agent):
    await _configure(agent, preload=["decimal"])
    out, err, exit, _ = await agent.run(_run(1, _SELF, agent.sandbox), timeout=20)
    assert exit.exit_code == 0, err
    seen = json.loads(out)
    uid = agent.uid
    assert seen["forked"], "the run was not a fork of the zygote"
    assert seen["uid"] == [uid] * 3 and seen["gid"] == [uid] * 3 and seen["groups"] == []
    assert seen["session_leader"] and seen["cwd"] == agent.sandbox
    # The container's environment (here: the agent's) under the run's, as for any run.
    with open(f"/proc/{agent.process.pid}/environ", "rb") as environ:
        pairs = [item.decode().split("=", 1) for item in environ.read().split(b"\0") if item]
    container = {key: value for key, value in pairs if key not in ("HOME", "PWD", "OLDPWD")}
    assert seen["env"] == {**container, **ENV}
    assert seen["argv"] == [f"{agent.sandbox}/main.py"] and seen["file"] == f"{agent.sandbox}/main.py"
    assert seen["name"] == "__main__"
    assert seen["main_keys"] == ["__annotations__", "__builtins__", "__cached__", "__doc__", "__file__", "__loader__",
                                 "__name__", "__package__", "__spec__"]
    assert seen["preloaded"]
    assert seen["fds"] == [0, 1, 2, 3]  # 3: the listing itself
    assert seen["dumpable_fd_dir_owner"] == uid


_STDIO = r"""
import io, json, os, subprocess, sys
child_env = dict(line.split("=", 1) for line in
                 subprocess.run(["env", "-0"], capture_output=True).stdout.decode().split("\0") if line)
print(json.dumps({
    'stdin': sys.stdin.read(), 'stdin_seekable': sys.stdin.seekable(), 'stdout_seekable': sys.stdout.seekable(),
    'stdout_write_through': sys.stdout.write_through, 'stdout_raw': isinstance(sys.stdout.buffer, io.FileIO),
    'stderr_errors': sys.stderr.errors, 'encoding': sys.stdout.encoding,
    'fds': [sys.stdin.fileno(), sys.stdout.fileno(), sys.stderr.fileno()],
    'dunder_is_std': sys.__stdout__ is sys.stdout and sys.__stdin__ is sys.stdin,
    'env_is_the_c_env': child_env == dict(os.environ), 'env': dict(os.environ),
}))
sys.stdout.flush()
sys.stdout.write('never flushed: no later run may print this')
os._exit(0)
"""


@pytest.mark.parametrize("unbuffered", [False, True])
async def test_a_forked_runs_stdio_and_environment_are_a_fresh_interpreters(agent, unbuffered, tmp_path):
    # The zygote makes the runs' stdio objects once, and sets the environment without os.environ's
    # methods: a fork must see what a fresh python3 on pipes does (its stdin, PYTHONUNBUFFERED, an
    # environment its subprocesses inherit), and no run another's unwritten output.
    import subprocess

    extra = {"PYTHONUNBUFFERED": "1" if unbuffered else ""}  # "": unset, whatever the agent inherited
    stdin = b"the run's own stdin\n"
    script = tmp_path / "probe.py"
    script.write_text(_STDIO)
    plain = subprocess.run([PY, str(script)], input=stdin, capture_output=True, env={**ENV, **extra}, timeout=60)
    fresh = json.loads(plain.stdout.partition(b"\n")[0])
    await _configure(agent)
    spec = _spec(agent.sandbox)
    for run_id in (1, 3):
        run = Run(id=run_id, argv=spec.argv, env={**spec.env, **extra}, cwd=spec.cwd, code=_STDIO.encode(),
                  code_path=spec.code_path, stdin=stdin)
        out, err, exit, _ = await agent.run(run, timeout=20)
        assert exit.exit_code == 0, err
        line, _, rest = out.partition(b"\n")
        assert rest == (b"never flushed: no later run may print this" if unbuffered else b"")
        assert (await _reset(agent, run_id + 1)).verified
    forked = json.loads(line)
    assert forked["stdin"] == "the run's own stdin\n" and forked["fds"] == [0, 1, 2]
    assert forked["env_is_the_c_env"] and fresh["env_is_the_c_env"]
    assert forked["env"]["PYTHONUNBUFFERED"] == extra["PYTHONUNBUFFERED"]
    assert {key: forked["env"][key] for key in ENV} == {**ENV, **extra}
    for key in ("stdin", "stdin_seekable", "stdout_seekable", "stdout_write_through", "stdout_raw", "encoding",
                "fds", "dunder_is_std", "stderr_errors"):
        assert forked[key] == fresh[key], key


async def test_the_per_run_filter_is_on_the_forked_run(agent):
    from isol8rt.security import seccomp

    try:
        bpf = seccomp.user_filter_bpf(seccomp.host_arch())
    except Exception as exc:  # no libseccomp on this host
        pytest.skip(f"no per-run filter to be had here: {exc}")
    await _configure(agent, user_filter=bpf)
    out, err, exit, _ = await agent.run(_run(1, _SELF, agent.sandbox), timeout=20)
    assert exit.exit_code == 0, err
    seen = json.loads(out)
    assert seen["forked"] and seen["seccomp"] == "2"


async def test_a_run_after_the_reset_sees_nothing_of_the_run_before(agent):
    await _configure(agent, preload=["json"])
    plant = ("import builtins, json, sys\nbuiltins.planted = 1\nsys.modules['json'].planted = 1\n"
             "sys.modules['planted'] = sys\nsecret_global = 42\nopen('left.txt', 'w').write('x')\n"
             "import os\nos.environ['PLANTED'] = '1'\nprint(open('/proc/self/cmdline', 'rb').read().count(b'zygote'))")
    out, err, exit, _ = await agent.run(_run(1, plant, agent.sandbox), timeout=20)
    assert exit.exit_code == 0 and out == b"1\n", err
    assert (await _reset(agent, 2)).verified
    probe = ("import builtins, json, os, sys\n"
             "print(hasattr(builtins, 'planted'), hasattr(json, 'planted'), 'planted' in sys.modules,"
             " 'secret_global' in globals(), os.path.exists('left.txt'), 'PLANTED' in os.environ,"
             " b'zygote' in open('/proc/self/cmdline', 'rb').read())")
    out, err, exit, _ = await agent.run(_run(3, probe, agent.sandbox), timeout=20)
    assert (exit.exit_code, out) == (0, b"False False False False False False True\n"), err


async def test_the_sandbox_user_cannot_reach_the_zygote(agent):
    await _configure(agent)
    probe = r"""
import os
def is_zygote(p):
    try:
        return b'zygote.py' in open(f'/proc/{p}/cmdline', 'rb').read() and os.stat(f'/proc/{p}').st_uid == 0
    except OSError:
        return False
zygote = [int(p) for p in os.listdir('/proc') if p.isdigit() and os.getpid() != int(p) and is_zygote(p)]
assert zygote, 'no zygote found'
results = []
for attempt in (lambda pid: os.kill(pid, 0), lambda pid: open(f'/proc/{pid}/environ').read(),
                lambda pid: open(f'/proc/{pid}/mem', 'rb').read(1), lambda pid: os.listdir(f'/proc/{pid}/fd')):
    try:
        attempt(zygote[0])
        results.append('reached')
    except PermissionError:
        results.append('refused')
print(results)
"""
    out, err, exit, _ = await agent.run(_run(1, probe, agent.sandbox), timeout=20)
    assert exit.exit_code == 0, err
    assert out == b"['refused', 'refused', 'refused', 'refused']\n"


async def test_a_forked_run_times_out_and_is_killed(agent):
    await _configure(agent)
    code = "import os\nprint(b'zygote' in open('/proc/self/cmdline', 'rb').read(), flush=True)\nwhile True: pass"
    out, err, exit, _ = await agent.run(_run(1, code, agent.sandbox, timeout_ms=500), timeout=20)
    assert out == b"True\n" and exit.timed_out and exit.signal == signal.SIGKILL, err


async def test_an_exception_and_an_exit_code_are_as_pythons(agent):
    await _configure(agent)
    out, err, exit, _ = await agent.run(_run(1, "import sys\nprint('x')\nsys.exit(3)", agent.sandbox), timeout=20)
    assert (out, exit.exit_code) == (b"x\n", 3)
    assert (await _reset(agent, 2)).verified
    out, err, exit, _ = await agent.run(_run(3, "def f():\n    1/0\nf()", agent.sandbox), timeout=20)
    assert exit.exit_code == 1
    assert err.startswith(b"Traceback (most recent call last):\n  File \"" + agent.sandbox.encode() + b"/main.py\"")
    assert err.endswith(b"ZeroDivisionError: division by zero\n") and b"zygote" not in err


async def test_a_zygote_that_died_fails_the_reset(agent):
    await _configure(agent)
    out, _, _, _ = await agent.run(_run(1, "import os\nprint(os.getppid())", agent.sandbox), timeout=20)
    zygotes = [int(p) for p in os.listdir("/proc") if p.isdigit() and _is_zygote_of(int(p), agent.process.pid)]
    assert len(zygotes) == 1
    os.kill(zygotes[0], signal.SIGKILL)
    ready = await _reset(agent, 2)
    assert "state" not in ready.verified
    # Runs go on, as fresh interpreters.
    out, err, exit, _ = await agent.run(_run(3, "print(b'zygote' in open('/proc/self/cmdline', 'rb').read())",
                                             agent.sandbox), timeout=20)
    assert (exit.exit_code, out) == (0, b"False\n"), err


async def test_a_broken_preload_leaves_fresh_interpreters(agent):
    await _configure(agent, preload=["no_such_module_isol8rt"])
    out, err, exit, _ = await agent.run(_run(1, "print(b'zygote' in open('/proc/self/cmdline', 'rb').read())",
                                             agent.sandbox), timeout=20)
    assert (exit.exit_code, out) == (0, b"False\n"), err


def _is_zygote_of(pid: int, agent_pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline, open(f"/proc/{pid}/stat") as stat:
            return b"zygote.py" in cmdline.read() and int(stat.read().rsplit(")", 1)[1].split()[1]) == agent_pid
    except OSError:
        return False


@pytest.mark.parametrize(("variables", "forked"), [(1, True), (11, False)])
async def test_a_large_environment_goes_through_its_pipe_or_the_run_starts_fresh(agent, variables, forked):
    # 100 kB variables (exec takes up to 128 kB each): one fits the spec pipe once enlarged; eleven (1.1 MB)
    # do not, and the run starts a fresh interpreter instead.
    size = 100_000
    env = {**ENV, **{f"BIG{index}": "x" * size for index in range(variables)}}
    spec = Prestart(argv=[PY, f"{agent.sandbox}/main.py"], env=env, cwd=agent.sandbox,
                    code_path=f"{agent.sandbox}/main.py")
    await agent.send(Configure(prestart=[spec], preload=[]))
    await agent.until(lambda m: isinstance(m, Ready) and m.reason == "configured")
    code = "import os\nprint(len(os.environ['BIG0']), b'zygote' in open('/proc/self/cmdline', 'rb').read())"
    run = Run(id=1, argv=spec.argv, env=env, cwd=spec.cwd, code=code.encode(), code_path=spec.code_path)
    out, err, exit, _ = await agent.run(run, timeout=20)
    assert (exit.exit_code, out) == (0, f"{size} {forked}\n".encode()), err


@pytest.mark.parametrize(("code", "exit_code", "stdout", "stderr"), [
    ("import sys\nsys.exit('bye')", 1, b"", b"bye\n"),
    ("import sys\nsys.exit(300)", 300 & 0xFF, b"", b""),
    ("import sys\nsys.exit()", 0, b"", b""),
    ("import atexit\natexit.register(lambda: print('at exit'))\nprint('body')", 0, b"body\nat exit\n", b""),
    ("import threading, time\n"
     "threading.Thread(target=lambda: (time.sleep(0.2), print('thread done'))).start()\nprint('main done')",
     0, b"main done\nthread done\n", b""),
    ("import sys\nsys.stdout.write('no newline')", 0, b"no newline", b""),
])
async def test_a_forked_run_ends_as_python_does(agent, code, exit_code, stdout, stderr):
    await _configure(agent)
    out, err, exit, _ = await agent.run(_run(1, code, agent.sandbox), timeout=20)
    assert (exit.exit_code, out, err) == (exit_code, stdout, stderr)


async def test_unclosed_files_of_the_program_and_its_modules_are_flushed_at_exit(agent):
    await _configure(agent)
    with open(os.path.join(agent.sandbox, "helper.py"), "w") as helper:
        helper.write("log = open('helper.txt', 'w')\nlog.write('from the module')\n")
    os.chown(os.path.join(agent.sandbox, "helper.py"), agent.uid, agent.uid)
    code = "import helper\nout = open('main.txt', 'w')\nout.write('from main')\n"
    out, err, exit, _ = await agent.run(_run(1, code, agent.sandbox), timeout=20)
    assert exit.exit_code == 0, err
    with open(os.path.join(agent.sandbox, "main.txt")) as main, open(os.path.join(agent.sandbox, "helper.txt")) as h:
        assert (main.read(), h.read()) == ("from main", "from the module")


async def test_a_keyboard_interrupt_ends_it_by_sigint(agent):
    await _configure(agent)
    out, err, exit, _ = await agent.run(_run(1, "raise KeyboardInterrupt", agent.sandbox), timeout=20)
    assert exit.signal == signal.SIGINT and err.endswith(b"KeyboardInterrupt\n")


# The run as the agent's own child: forked as the zygote's sibling (clone with CLONE_PARENT), or, where
# that cannot be done, through a middle fork that exits. Driven directly, in a process of its own: the
# agent's side makes that process a child subreaper, which pytest's must not become.
_DIRECT = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from isol8rt.agent import fork_server
from isol8rt.agent.process import Identity
from isol8rt.agent.protocol import Prestart

sandbox, uid, wrapper = sys.argv[2], int(sys.argv[3]), sys.argv[4]
if wrapper:
    fork_server.ZYGOTE_MAIN = wrapper
server = fork_server.ForkServer.start("/usr/bin/python3", [], "/usr/bin:/bin", b"")
seen = []
for index in range(3):
    path = os.path.join(sandbox, f"main{index}.py")
    with open(path, "w") as program:
        program.write(sys.argv[5])
    child = server.fork(Prestart(argv=["python3", path], env={"PATH": "/usr/bin"}, cwd=sandbox, code_path=path),
                        Identity(uid, uid))
    # Ours to reap, not the zygote's (forked twice, it becomes ours once its middle fork has exited).
    pid = 0
    while pid != child.pid:
        pid, status = os.waitpid(-1, 0)
    os.set_blocking(child.stdout, True)
    out = b"".join(iter(lambda: os.read(child.stdout, 65536), b""))
    os.set_blocking(child.stderr, True)
    err = b"".join(iter(lambda: os.read(child.stderr, 65536), b""))
    if not out:
        raise SystemExit(f"run {index}: status {status}, stderr {err!r}")
    seen.append({"status": os.waitstatus_to_exitcode(status), "out": json.loads(out), "zygote": server.child.pid})
print(json.dumps({"me": os.getpid(), "runs": seen}))
"""

_TWICE = r"""
import sys
sys.path.insert(0, {root!r})
from isol8rt.agent import zygote
zygote._sibling_forker = lambda: None  # as where clone with CLONE_PARENT cannot be had
zygote.main(sys.argv[1:])
"""

_LINEAGE = r"""
import json, os, signal, threading
main_thread = threading.main_thread().ident
answer = {}
def poke():
    # glibc finds the main thread by the tid it keeps for it: a fork that did not set it would miss.
    try:
        signal.pthread_kill(main_thread, 0)
        answer["pthread_kill"] = "ok"
    except OSError as exc:
        answer["pthread_kill"] = type(exc).__name__
thread = threading.Thread(target=poke)
thread.start()
thread.join()
siblings = []
for entry in os.listdir("/proc"):
    if entry.isdigit() and int(entry) != os.getpid():
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getppid():
            siblings.append(int(entry))
answer.update(ppid=os.getppid(), pid=os.getpid(), siblings=siblings)
print(json.dumps(answer))
"""


@pytest.mark.parametrize("fork", ["sibling", "twice"])
def test_a_forked_run_is_the_agents_child_and_glibc_knows_its_thread(sandbox_dir, tmp_path, fork):
    import subprocess
    import sys

    if os.getuid() != 0:
        pytest.skip("the run drops to another uid, which needs root")
    from isol8rt.agent import zygote

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(zygote.__file__))))
    wrapper = ""
    if fork == "twice":
        wrapper = str(tmp_path / "zygote_twice.py")
        with open(wrapper, "w") as out:
            out.write(_TWICE.format(root=root))
    from .conftest import SANDBOX_UID

    done = subprocess.run([sys.executable, "-c", _DIRECT, root, sandbox_dir, str(SANDBOX_UID), wrapper, _LINEAGE],
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    seen = json.loads(done.stdout)
    for run in seen["runs"]:
        assert run["status"] == 0
        assert run["out"]["ppid"] == seen["me"], "the run is not the agent's child"
        assert run["out"]["pthread_kill"] == "ok"
        # Its siblings are the zygote alone: no middle fork is left for a program to see.
        assert run["out"]["siblings"] == [run["zygote"]]
    if fork == "sibling":
        assert zygote._sibling_forker() is not None, "this machine should fork runs as siblings"


def test_the_resets_look_at_the_zygote_reads_state_tracer_uids_and_threads():
    import subprocess
    import sys

    from isol8rt.agent.fork_server import ForkServer, _threads, _uids
    from isol8rt.agent.process import Child

    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        server = ForkServer.__new__(ForkServer)
        server.child = Child(None, -1, -1, -1, pid=process.pid)
        server.uids, server.threads = _uids(process.pid), _threads(process.pid)
        assert server.threads == 1 and len(server.uids) == 4
        assert server.intact() == ""
        server.threads = 2
        assert server.intact() == "the fork server's threads changed"
        server.threads = 1
        server.uids = ["12345"] * 4
        assert server.intact() == "the fork server changed its uids"
        server.uids = _uids(process.pid)
        os.kill(process.pid, signal.SIGSTOP)
        os.waitpid(process.pid, os.WUNTRACED)  # stopped now, as /proc says
        assert server.intact().startswith("the fork server is T")
        os.kill(process.pid, signal.SIGCONT)
        process.kill()
        process.wait()
        assert server.intact() == "the fork server is gone"
    finally:
        process.kill()
        process.wait()
