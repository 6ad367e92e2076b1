"""Reading what is not the run's own through /proc: the agent's environment and command line, other
processes' environments, the host's environment, and values an earlier run was given.

Stopped by: the agent never holds secrets (they come with each run, not in the container's config, so
/proc/1/environ has none, and it is root's and unreadable anyway); only the run's own processes carry
them; the container's PID namespace hides the host; the reset kills every process of an earlier run."""

from __future__ import annotations

import json

import pytest
import trio

from isol8rt import ExecutionRequest

from .conftest import after_attack, stop_and_verify

SECRET = "sk-live-9f8e7d6c5b4a39281706"
HOST_CANARY = "isol8rt-host-canary-5b1f0c"
EARLIER_TOKEN = "earlier-run-token-77d2a1"

SCAN = r"""
import errno, json, os, subprocess, sys
needles = {name: value.encode() for name, value in NEEDLES.items()}
# Processes of our own run that carry the environment, and one started with an empty one.
own_child = subprocess.Popen(['sleep', '30'])
bare_child = subprocess.Popen(['sleep', '31'], env={})
my_sid = os.getsid(0)
report = {'pid1_environ': None, 'processes': []}
try:
    open('/proc/1/environ', 'rb').read()
    report['pid1_environ'] = 'readable'
except OSError as exc:
    report['pid1_environ'] = errno.errorcode[exc.errno]
for name in os.listdir('/proc'):
    if not name.isdigit():
        continue
    entry = {'pid': int(name), 'own': False, 'environ': None, 'found': []}
    try:
        entry['own'] = os.getsid(int(name)) == my_sid
    except OSError:
        pass
    try:
        tids = os.listdir(f'/proc/{name}/task')
    except OSError:
        tids = []
    for part in ('cmdline', 'environ'):
        # Through every thread: a process whose main thread ended shows nothing at /proc/PID/environ.
        for source in [f'/proc/{name}/{part}'] + [f'/proc/{name}/task/{tid}/{part}' for tid in tids]:
            try:
                data = open(source, 'rb').read()
            except OSError as exc:
                if part == 'environ' and entry['environ'] is None:
                    entry['environ'] = errno.errorcode[exc.errno]
                continue
            if part == 'environ':
                entry['environ'] = 'read'
            entry['found'] += [f'{key} in {part}' for key, needle in needles.items()
                               if needle in data and f'{key} in {part}' not in entry['found']]
    entry['bare'] = int(name) == bare_child.pid
    report['processes'].append(entry)
own_child.kill(); bare_child.kill()
print(json.dumps(report))
"""


def _scan(needles: dict[str, str]) -> str:
    return f"NEEDLES = {needles!r}\n{SCAN}"


async def test_environ_and_cmdline_of_other_processes(make_engine, strategy, monkeypatch):
    """Scan /proc/*/environ and /proc/*/cmdline of every process for the engine's secret and a variable
    of the host process that runs the engine. Stopped by: PID 1's environ is unreadable (EACCES) and holds
    no secret; only processes of the run itself carry the secret; nothing of the host is visible."""
    monkeypatch.setenv("ISOL8RT_HOST_CANARY", HOST_CANARY)
    async with make_engine(pool_strategy=strategy, pool_size=0, secrets={"API_KEY": SECRET}) as engine:
        code = _scan({"secret": SECRET, "host": HOST_CANARY})
        with trio.fail_after(30):
            attack = await engine.execute(ExecutionRequest(code=code, timeout_ms=15_000))
        assert attack.exit_code == 0, attack.stderr
        report = json.loads(attack.stdout)
        assert report["pid1_environ"] == "EACCES"
        processes = {entry["pid"]: entry for entry in report["processes"]}
        assert processes[1]["found"] == [] and processes[1]["environ"] == "EACCES"
        assert len(processes) >= 4  # the agent, the run, its two children
        for entry in report["processes"]:
            assert not any(found.startswith("host ") for found in entry["found"]), entry
            assert "secret in cmdline" not in entry["found"], entry
            if "secret in environ" in entry["found"]:
                assert entry["own"], f"another process carries the secret: {entry}"
        bare = [entry for entry in report["processes"] if entry["bare"]]
        assert bare and bare[0]["environ"] == "read" and bare[0]["found"] == []
        # The run's own environment has it, as expected; printing it is masked.
        assert sum("secret in environ" in entry["found"] for entry in report["processes"]) >= 2
        await after_attack(engine, attack, "python")
        await stop_and_verify(engine, attack)


LEAVE = {
    "python": "import os, subprocess\n"
              "subprocess.Popen(['sleep', '300'])\n"
              "if os.fork() == 0:\n    os.setsid()\n    os.execvp('sleep', ['sleep', '301'])\n"
              "print('left')",
    "bash": "sleep 300 &\nexport EXPORTED_TOKEN=$RUN_TOKEN\n(setsid sleep 301 &)\necho left",
}


@pytest.mark.parametrize("runtime", ["python", "bash"])
async def test_an_earlier_runs_values_are_gone(attack_engine, runtime):
    """An earlier run is given a token in its env and leaves processes holding it; the next run of the
    same runtime (in fast, the same container) scans every process for it. Stopped by: the reset kills
    every process of the earlier run (fast), or the next run has a new container (secure); the
    prestarted interpreter only has the engine's environment, never a request's."""
    with trio.fail_after(30):
        earlier = await attack_engine.execute(ExecutionRequest(code=LEAVE[runtime], runtime=runtime,
                                                               timeout_ms=10_000, env={"RUN_TOKEN": EARLIER_TOKEN}))
    assert earlier.stdout == "left\n", earlier.stderr
    scan = _scan({"token": EARLIER_TOKEN})
    if runtime == "bash":
        scan = f"python3 - <<'EOF'\n{scan}\nEOF"
    with trio.fail_after(30):
        later = await attack_engine.execute(ExecutionRequest(code=scan, runtime=runtime, timeout_ms=15_000))
    assert later.exit_code == 0, later.stderr
    report = json.loads(later.stdout)
    assert [entry for entry in report["processes"] if entry["found"]] == []
    if attack_engine.options.pool_strategy == "fast":
        assert later.container_id == earlier.container_id
    await after_attack(attack_engine, later, runtime)
    await stop_and_verify(attack_engine, earlier, later)
