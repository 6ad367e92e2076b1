"""The warm pool.

On Docker: recycled containers carry nothing over, secure containers are never reused, and the engine
leaves no container behind. In memory, on trio's mock clock (seconds of pool life in milliseconds): how
the pool grows under load and shrinks when quiet, retires containers by uses and by age, and never hands
out a container that is broken or whose reset did not verify.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter

import pytest
import trio
import trio.testing

from isol8rt import ExecutionRequest
from isol8rt.agent import protocol
from isol8rt.engine.backend import SandboxSpec
from isol8rt.engine.pool import Pool
from isol8rt.engine.container import Container
from isol8rt.errors import SandboxError
from isol8rt.runtimes import LABEL_ENGINE
from isol8rt.testing import AgentScript, MemoryBackend, RunReply, open_memory_backend

from ..conftest import managed_containers

ATTACK = r"""
import ctypes, os, subprocess
subprocess.Popen(['sleep', '300'])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp('sleep', ['sleep', '301'])
    os._exit(0)
subprocess.Popen(['bash', '-c', 'while true; do ls /proc > /dev/null; sleep 0.05; done'])
for path in ('/sandbox/left.txt', '/tmp/left.txt', '/dev/shm/left'):
    open(path, 'w').write('left behind')
os.makedirs('/sandbox/locked/deeper')
os.chmod('/sandbox/locked', 0)
libc = ctypes.CDLL(None, use_errno=True)
print('shm', libc.shmget(0x1234, 4096, 0o1666) >= 0)
rt = ctypes.CDLL('librt.so.1', use_errno=True)
rt.mq_open.restype = ctypes.c_int
print('mq', rt.mq_open(b'/leftover', os.O_CREAT | os.O_RDWR, 0o600, None) >= 0)
"""

CHECK = r"""
import os
others = []
for pid in os.listdir('/proc'):
    if pid.isdigit() and int(pid) != os.getpid():
        for tid in os.listdir(f'/proc/{pid}/task') if os.path.isdir(f'/proc/{pid}/task') else ():
            try:   # every thread: a process whose main thread ended looks like a zombie
                status = open(f'/proc/{pid}/task/{tid}/status').read()
            except OSError:
                continue
            if any(line.split()[1] == '1000' for line in status.splitlines() if line.startswith('Uid:')):
                others.append((pid, tid))
print('procs', others)
print('sandbox', sorted(os.listdir('/sandbox')))
print('tmp', sorted(os.listdir('/tmp')), 'shm', sorted(os.listdir('/dev/shm')), 'mq', sorted(os.listdir('/dev/mqueue')))
print('ipc', [open(f'/proc/sysvipc/{t}').read().splitlines()[1:] for t in ('shm', 'msg', 'sem')])
print('env', os.environ.get('LEFTOVER'))
"""


@pytest.mark.parametrize("strategy", ["fast", "secure"])
async def test_nothing_survives_into_the_next_run(make_engine, strategy):
    async with make_engine(pool_strategy=strategy, pool_size=1) as engine:
        attack = await engine.execute(ExecutionRequest(code=ATTACK))
        assert attack.stdout == "shm True\nmq True\n", attack.stderr
        exported = await engine.execute(ExecutionRequest(code="export LEFTOVER=1", runtime="bash"))
        assert exported.exit_code == 0
        check = await engine.execute(ExecutionRequest(code=CHECK))
    assert check.exit_code == 0, check.stderr
    if strategy == "fast":
        assert check.container_id == attack.container_id  # really the recycled container
    else:
        assert check.container_id != attack.container_id
    assert check.stdout.splitlines() == [
        "procs []",
        "sandbox ['main.py']",
        "tmp [] shm [] mq []",
        "ipc [[], [], []]",
        "env None",
    ]


async def test_many_runs_then_stop_leaves_no_container(make_engine):
    async with make_engine(pool_strategy="fast", pool_size=2) as engine:
        for index in range(200):
            result = await engine.execute(ExecutionRequest(code=f"print({index})"))
            assert result.stdout == f"{index}\n", result.stderr
        used = {result.container_id}
        engine_id = engine.engine_id
        assert await managed_containers(engine_id)
    assert await managed_containers(engine_id) == []
    assert used


async def test_secure_runs_never_share_a_container(make_engine):
    async with make_engine(pool_strategy="secure", pool_size=1) as engine:
        seen = set()
        for index in range(50):
            result = await engine.execute(ExecutionRequest(code=f"echo {index}", runtime="bash"))
            assert result.stdout == f"{index}\n"
            seen.add(result.container_id)
        engine_id = engine.engine_id
    assert len(seen) == 50
    assert await managed_containers(engine_id) == []


async def test_concurrent_runtimes(engine):
    results = {}

    async def one(name, runtime, code):
        results[name] = await engine.execute(ExecutionRequest(code=code, runtime=runtime))

    async with trio.open_nursery() as nursery:
        for index in range(2):
            nursery.start_soon(one, f"py{index}", "python", f"print('py', {index})")
            nursery.start_soon(one, f"node{index}", "node", f"console.log('node', {index})")
            nursery.start_soon(one, f"sh{index}", "bash", f"echo sh {index}")
    assert {name: result.stdout for name, result in results.items()} == {
        "py0": "py 0\n", "py1": "py 1\n", "node0": "node 0\n", "node1": "node 1\n", "sh0": "sh 0\n", "sh1": "sh 1\n"}


async def test_max_concurrent_queues_runs(make_engine):
    async with make_engine(max_concurrent=2, pool_size=2) as engine:
        spans = []

        async def one(index):
            code = "import time\nstart = time.time()\ntime.sleep(0.4)\nprint(start, time.time())"
            result = await engine.execute(ExecutionRequest(code=code))
            spans.append(tuple(map(float, result.stdout.split())))

        async with trio.open_nursery() as nursery:
            for index in range(5):
                nursery.start_soon(one, index)
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert len(spans) == 5 and peak <= 2


async def test_stop_removes_checked_out_and_pooled_containers(make_engine):
    engine = make_engine(pool_size=2)
    await engine.start(prewarm=["python", "bash"])
    engine_id = engine.engine_id
    assert len(await managed_containers(engine_id)) >= 4
    await engine.stop()
    await engine.stop()  # safe twice
    assert await managed_containers(engine_id) == []
    assert LABEL_ENGINE


# --------------------------------------------------------------------------------------------------
# the pool's policy, in memory under MockClock(autojump_threshold=0)

SPEC = SandboxSpec(image="img", labels={}, memory_bytes=2**29, nano_cpus=10**9, pids_limit=64)
CONFIGURE = protocol.Configure()


def _reply(run: protocol.Run) -> RunReply:
    """Runs are scripted by their argv: ["sleep", seconds], ["hang"] or ["crash"]."""
    if run.argv[0] == "sleep":
        return RunReply(seconds=float(run.argv[1]))
    return RunReply(hang=run.argv[0] == "hang", crash=run.argv[0] == "crash")


SCRIPT = AgentScript(run=_reply)


@contextlib.asynccontextmanager
async def memory_pool(script: AgentScript = SCRIPT, **options):
    async with open_memory_backend(script) as backend:
        async with trio.open_nursery() as nursery:
            pool = Pool(backend, nursery, **options)
            try:
                yield pool, backend
            finally:
                await pool.close()
                nursery.cancel_scope.cancel()  # the pool's shrink timer


async def use(pool: Pool, *argv: str, timeout_s: float = 30.0) -> Container:
    """One run as the engine makes it: take a container, run on it, give it back; the container."""
    container = await pool.acquire(SPEC, CONFIGURE)
    assert not container.broken and not container.conversation.awaiting_ready
    try:
        op_id = container.next_id()
        async for _ in container.operate([protocol.Run(id=op_id, argv=list(argv or ["sleep", "0"]), env={})], op_id,
                                       timeout_s):
            pass
    finally:
        await pool.release(container)
    return container


async def load(pool: Pool, callers: int, seconds: float) -> set[str]:
    """``callers`` runs at once, each holding its container ``seconds``; the containers used."""
    used: set[str] = set()

    async def one() -> None:
        used.add((await use(pool, "sleep", str(seconds))).container_id)

    async with trio.open_nursery() as nursery:
        for _ in range(callers):
            nursery.start_soon(one)
    # The last containers' resets (the agent answers at once) are done once nothing but timers is left.
    await trio.testing.wait_all_tasks_blocked()
    return used


def removed(backend: MemoryBackend) -> set[str]:
    return {c.id for c in backend.containers.values() if c.state == "removed"}


async def test_the_pool_grows_to_the_load_and_a_steady_load_makes_no_new_containers(autojump_clock):
    async with memory_pool(size=1, max_idle=4) as (pool, backend):
        assert len(await load(pool, 4, 10)) == 4
        grown = set(pool.live)
        assert len(grown) == 4  # never more in all than max_idle
        made = len(backend.containers)
        for _ in range(3):
            used = await load(pool, 4, 10)  # the load stops between rounds, as every client's does
            assert used <= grown
        assert set(pool.live) == grown and len(backend.containers) == made


async def test_a_quiet_pool_shrinks_back_to_its_size(autojump_clock):
    async with memory_pool(size=1, max_idle=4, shrink_after_s=60) as (pool, backend):
        await load(pool, 4, 10)
        grown = set(pool.live)
        assert len(grown) == 4
        for _ in range(20):  # not quiet: one caller every 10 s keeps what the burst made
            await use(pool, "sleep", "1")
            await trio.sleep(10)
        assert set(pool.live) == grown
        await trio.sleep(2 * pool.shrink_after_s)  # quiet: the pool's own timer shrinks it
        [kept] = pool.live
        assert kept in grown and grown - {kept} <= removed(backend)
        assert (await use(pool)).container_id == kept  # the one kept is warm and used


async def test_containers_retire_after_about_max_uses_runs(autojump_clock):
    async with memory_pool(size=1, max_uses=4) as (pool, backend):
        runs = Counter(container.container_id for container in [await use(pool) for _ in range(40)])
        await trio.testing.wait_all_tasks_blocked()
        retired = removed(backend)
        assert len(retired) >= 40 // 5
        # Each container's limit is drawn between 0.75 and 1.25 times the pool's: 3 to 5 runs.
        assert all(3 <= runs[container_id] <= 5 for container_id in retired), runs
        assert all(runs[container_id] <= 5 for container_id in pool.live)


async def test_containers_retire_after_about_max_age(autojump_clock):
    async with memory_pool(size=1, max_age_s=100) as (pool, backend):
        ages = []
        for _ in range(40):
            container = await pool.acquire(SPEC, CONFIGURE)
            ages.append((container.container_id, trio.current_time() - container.created))
            await pool.release(container)
            await trio.sleep(10)
        assert all(age <= 125 for _, age in ages)  # never handed out past its age (at most 1.25 times)
        assert len({container_id for container_id, _ in ages}) >= 400 // 125
        assert removed(backend)


async def test_no_container_is_handed_out_older_than_max_age(autojump_clock):
    """maxContainerAgeMs is a promise (the config file's cleanup key): the spread only shortens lives."""
    async with memory_pool(size=2, max_age_s=50, shrink_after_s=20) as (pool, backend):
        ages = []
        for step in range(60):
            container = await pool.acquire(SPEC, CONFIGURE)
            ages.append(trio.current_time() - container.created)
            await pool.release(container)
            await trio.sleep(3 + step % 7)
        assert max(ages) <= 50 and len(removed(backend)) >= 3


def test_the_engine_caps_its_pools_age_at_max_container_age():
    from isol8rt.engine import DockerIsol8
    from isol8rt.engine.pool import POOL_MAX_AGE_S

    assert DockerIsol8()._pool_max_age_s == POOL_MAX_AGE_S
    assert DockerIsol8(max_container_age_s=60)._pool_max_age_s == 60
    assert DockerIsol8(max_container_age_s=10 * POOL_MAX_AGE_S)._pool_max_age_s == POOL_MAX_AGE_S


async def test_a_quiet_pool_replaces_idle_containers_past_their_age(autojump_clock):
    async with memory_pool(size=1, max_age_s=100, shrink_after_s=60) as (pool, backend):
        await pool.prewarm(SPEC, CONFIGURE)
        [first] = pool.live  # as many as the pool keeps: only its age can retire it
        await trio.sleep(1000)
        assert len(pool.live) == 1 and first not in pool.live and first in removed(backend)


@pytest.mark.parametrize("strategy", ["fast", "secure"])
async def test_a_reset_that_did_not_verify_retires_the_container(strategy, autojump_clock, caplog):
    # Everything but the kernel's count of tasks: a task the reset could not kill.
    unverified = AgentScript(run=_reply, verified=lambda agent: ["processes", "files", "ipc", "state"])
    async with memory_pool(unverified, size=1, strategy=strategy) as (pool, backend):
        used = [(await use(pool)).container_id for _ in range(5)]
        await trio.testing.wait_all_tasks_blocked()
        assert len(set(used)) == 5  # never reused
        assert set(used) <= removed(backend)
    if strategy == "fast":
        assert "could not verify its reset: ['tasks']" in caplog.text


@pytest.mark.parametrize("failure", [["hang"], ["crash"]])
async def test_a_broken_container_is_never_handed_out_again(failure, autojump_clock):
    async with memory_pool(size=2) as (pool, backend):
        with pytest.raises(SandboxError):
            await use(pool, *failure, timeout_s=5)
        await trio.testing.wait_all_tasks_blocked()  # its removal, in the pool's nursery
        broken = [c.id for c in backend.containers.values() if c.agent.received
                  and isinstance(c.agent.received[-1], protocol.Run) and c.agent.received[-1].argv == failure]
        assert len(broken) == 1 and broken[0] in removed(backend) and broken[0] not in pool.live
        for _ in range(10):
            assert (await use(pool)).container_id != broken[0]


async def test_secure_containers_serve_once_and_the_next_is_made_ahead(autojump_clock):
    async with memory_pool(size=1, strategy="secure") as (pool, backend):
        await use(pool)
        await trio.testing.wait_all_tasks_blocked()
        used = []
        for _ in range(5):
            made = len(backend.containers)
            container = await pool.acquire(SPEC, CONFIGURE)
            assert len(backend.containers) == made  # it was ready: nothing made on the caller's path
            used.append(container.container_id)
            await pool.release(container)
            await trio.testing.wait_all_tasks_blocked()
        assert len(set(used)) == 5 and set(used) <= removed(backend)


async def test_close_removes_idle_and_checked_out_containers(autojump_clock):
    async with open_memory_backend(SCRIPT) as backend:
        async with trio.open_nursery() as nursery:
            pool = Pool(backend, nursery, size=2)
            out = await pool.acquire(SPEC, CONFIGURE)
            await trio.testing.wait_all_tasks_blocked()
            assert len(pool.live) == 3  # the one out, and two ready
            await pool.close()
            nursery.cancel_scope.cancel()
        assert removed(backend) == set(backend.containers) and out.container_id in removed(backend)


async def test_a_container_that_cannot_start_is_an_error_for_the_caller_only(autojump_clock, caplog):
    caplog.set_level(logging.WARNING)
    outdated = AgentScript(version=protocol.PROTOCOL_VERSION + 1)
    async with memory_pool(outdated, size=1) as (pool, backend):
        with pytest.raises(SandboxError, match="image is out of date"):
            await pool.acquire(SPEC, CONFIGURE)
        await trio.testing.wait_all_tasks_blocked()
        assert pool.live == {} and removed(backend) == set(backend.containers)


@pytest.mark.parametrize("room", [4, 2])
async def test_a_container_runs_one_tenants_code_only(make_engine, room):
    """Containers are bound to the tenant whose code they ran: each tenant keeps reusing its own (fast),
    none is ever handed to another. With room for fewer containers than tenants, another tenant's idle
    container makes room (it is removed, never lent)."""
    async with make_engine(pool_size=0, max_concurrent=room) as engine:
        tenants_of: dict[str, set[str]] = {}
        for tenant in ["a", "b", "a", "b", "c", "a", "c", "b"]:
            result = await engine.execute(ExecutionRequest(code="print(1)"), tenant=tenant)
            assert result.stdout == "1\n", result.stderr
            tenants_of.setdefault(result.container_id, set()).add(tenant)
            assert len(engine.containers) <= room
        assert all(len(tenants) == 1 for tenants in tenants_of.values()), tenants_of
        if room >= 3:
            assert len(tenants_of) == 3  # one each, reused
