"""Shared pieces of the exploit-regression suite (``test_attack_*.py``).

Every attack test follows the same shape: run the attack, assert that what it tried failed, then prove
the engine and the host are unharmed:

- :func:`after_attack` runs a probe in the same runtime's pool (so in the ``fast`` strategy it lands in the
  very container the attack used, recycled) and asserts that nothing of the attack is left there: no
  sandbox-user thread (every thread of every process is looked at), an empty /sandbox, /tmp and /dev/shm;
  then a plain ``print('ok')`` must work. ``reuse/`` goes further: a fingerprint of everything a run can
  observe must equal a fresh container's.
- :func:`stop_and_verify` stops the engine and asserts that no container with its label is left and
  that no process on the host still lives in one of its containers' cgroups.

Engines come from the ``attack_engine`` fixture, parametrized over both pool strategies. Its pool keeps
no spare container (``pool_size=0``): in ``fast`` the run after an attack then deterministically gets the
attacked container back (when its reset verified), which is the case worth testing; in ``secure`` it
gets a new one.

"""

from __future__ import annotations

import json
import os
import shlex

import pytest
import trio

from isol8rt import DockerIsol8, ExecutionRequest, ExecutionResult, Isol8Options

from ..conftest import managed_containers, needs_docker

STRATEGIES = ("fast", "secure")

#: Runs as the sandbox user in the container under test; reports what an attack could have left behind.
_PROBE = r"""
import json, os
me = os.getpid()
ancestors = set()
pid = me
while pid > 1:
    ancestors.add(pid)
    with open(f'/proc/{pid}/stat') as stat:
        pid = int(stat.read().rsplit(')', 1)[1].split()[1])
procs = []
for name in os.listdir('/proc'):
    if not name.isdigit() or int(name) in ancestors:
        continue
    try:
        with open(f'/proc/{name}/cmdline', 'rb') as cmdline:
            command = cmdline.read().replace(b'\0', b' ').decode(errors='replace').strip()
        threads = []
        # Every thread, not only the process: a process whose main thread has ended shows as a zombie
        # while its other threads live on.
        for tid in os.listdir(f'/proc/{name}/task'):
            with open(f'/proc/{name}/task/{tid}/status') as status:
                fields = dict(line.split(':', 1) for line in status.read().splitlines() if ':' in line)
            threads.append((fields['Uid'].split()[0], fields['State'].strip()[:1], fields['Name'].strip()))
    except OSError:
        continue
    if any(uid == '1000' and state != 'Z' for uid, state, _ in threads):
        procs.append(command or threads[0][2])
listing = {}
for directory in ('/sandbox', '/tmp', '/dev/shm'):
    try:
        listing[directory] = sorted(os.listdir(directory))
    except OSError as exc:
        listing[directory] = f'error {exc.errno}'
print(json.dumps({'procs': procs, 'dirs': listing, 'uid': os.getuid()}))
"""


@pytest.fixture(params=STRATEGIES)
def strategy(request) -> str:
    return request.param


@pytest.fixture
@needs_docker
async def attack_engine(strategy):
    """An engine of the parametrized pool strategy with no spare containers (see the module docstring).
    Tests stop it themselves through :func:`stop_and_verify`; this only makes sure it is stopped."""
    engine = DockerIsol8(Isol8Options(pool_strategy=strategy, pool_size=0))
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


def probe_request(runtime: str) -> ExecutionRequest:
    # A shell command, not a program: it runs in the same runtime's pool (same image, same slot), and the
    # prestarted interpreter's program FIFO is removed for it, so /sandbox must be exactly empty.
    return ExecutionRequest(runtime=runtime, cmd=f"exec python3 -c {shlex.quote(_PROBE)}", timeout_ms=20_000)


async def after_attack(engine: DockerIsol8, attack: ExecutionResult | None, runtime: str = "python",
                       *, recycled: bool = True) -> dict:
    """Assert the attacked pool is clean and the engine healthy; returns the probe's report.

    In ``fast`` with ``recycled`` the probe must run in the attacked container itself (its reset verified
    everything); in ``secure`` it must run in another one.
    """
    with trio.fail_after(60):
        result = await engine.execute(probe_request(runtime))
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["uid"] == 1000
    assert report["procs"] == [], f"sandbox-user processes survived the attack: {report['procs']}"
    assert report["dirs"] == {"/sandbox": [], "/tmp": [], "/dev/shm": []}, report["dirs"]
    if attack is not None and attack.container_id is not None:
        if engine.options.pool_strategy == "secure":
            assert result.container_id != attack.container_id, "secure strategy reused a container"
        elif recycled:
            assert result.container_id == attack.container_id, (
                "the attacked container was not recycled: its reset did not verify (see the engine's log)")
    with trio.fail_after(60):
        ok = await engine.execute(ExecutionRequest(code="print('ok')"))
    assert (ok.stdout, ok.stderr, ok.exit_code) == ("ok\n", "", 0)
    return report


def _host_processes_in(container_ids: set[str]) -> list[str]:
    """Host tasks whose cgroup names one of ``container_ids`` (cgroup v1 and v2 paths both hold the id).
    Every thread is looked at: the main thread of a process may be gone while the others live on."""
    found = []
    if not container_ids:
        return found
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            tids = os.listdir(f"/proc/{name}/task")
            with open(f"/proc/{name}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{name}/task/{tid}/cgroup") as cgroup:
                    text = cgroup.read()
            except OSError:
                continue
            if any(container_id in text for container_id in container_ids):
                found.append(f"{name}/{tid}: {command}")
    return found


async def stop_and_verify(engine: DockerIsol8, *results: ExecutionResult | None) -> None:
    """Stop the engine; no container of it and no host process inside one may be left."""
    used = {result.container_id for result in results if result is not None and result.container_id}
    used.update(engine.containers)
    engine_id = engine.engine_id
    with trio.fail_after(60):
        await engine.stop()
    assert await managed_containers(engine_id) == []
    assert _host_processes_in(used) == []


__all__ = ["STRATEGIES", "after_attack", "probe_request", "stop_and_verify"]
