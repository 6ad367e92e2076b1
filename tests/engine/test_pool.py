"""The warm pool: recycled containers carry nothing over, secure containers are never reused, and the
engine leaves no container behind."""

from __future__ import annotations

import pytest
import trio

from isol8rt import ExecutionRequest
from isol8rt.runtimes import LABEL_ENGINE

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


async def settled(engine) -> None:
    """Until no container of the engine's pool is being made or reset."""
    with trio.fail_after(60):
        while any(slot.creating or slot.settling for slot in engine._pool._slots.values()):
            await trio.sleep(0.05)


async def test_a_steady_load_makes_no_new_containers(make_engine):
    """Callers that come back again and again reuse the pool's containers: making one costs as much CPU
    as dozens of runs, so none is made, or removed, while the load holds (the load stopping between the
    rounds, as every client's does, included)."""
    async with make_engine(pool_size=2, max_concurrent=4) as engine:
        used: set[str] = set()

        async def caller(runs: int) -> None:
            for _ in range(runs):
                result = await engine.execute(ExecutionRequest(code="print('hi')"))
                assert result.stdout == "hi\n", result.stderr
                used.add(result.container_id)

        async def load(runs: int) -> None:
            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(caller, runs)

        await load(8)  # the pool grows to the load
        await settled(engine)  # containers made for the growth may still be on their way
        before = set(engine.containers)
        used.clear()
        for _ in range(3):
            await load(10)
        assert used <= before
        assert set(engine.containers) == before


async def test_a_quiet_pool_shrinks_back_to_its_size(make_engine):
    """A burst grows the pool; once nothing has asked for a container for a while, the idle ones beyond
    pool_size are removed (the shrink runs every half shrink_after_s; here it is called at once)."""
    async with make_engine(pool_size=1, max_concurrent=4) as engine:
        async def one() -> None:
            result = await engine.execute(ExecutionRequest(code="import time; time.sleep(0.3); print('hi')"))
            assert result.stdout == "hi\n", result.stderr

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(one)
        pool = engine._pool
        await settled(engine)  # the burst's containers finish their resets
        grown = set(engine.containers)
        assert len(grown) >= 4
        pool.shrink()  # not quiet yet: nothing goes
        assert set(engine.containers) == grown
        for slot in pool._slots.values():
            slot.last_acquired -= pool.shrink_after_s
        pool.shrink()
        kept = set(engine.containers)
        assert len(kept) == 1 and kept <= grown
        result = await engine.execute(ExecutionRequest(code="print('after')"))
        assert result.stdout == "after\n" and result.container_id in kept
        engine_id = engine.engine_id
    assert await managed_containers(engine_id) == []


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
