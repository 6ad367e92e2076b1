"""Filling the writable places: /sandbox and /tmp are size-capped tmpfs mounts (RAM, charged to the
container's memory cgroup), the root filesystem is read-only, so nothing reaches the host's disk; the
reset empties them before a container is used again."""

from __future__ import annotations

import shutil

import trio

from isol8rt import ExecutionRequest

from .conftest import after_attack, stop_and_verify

MiB = 1024 * 1024

FILL = r"""
import errno, os
def fill(path, limit_mib):
    written = 0
    try:
        with open(path, 'wb', buffering=0) as file:
            for _ in range(limit_mib):
                file.write(b'\xa5' * (1 << 20))
                written += 1 << 20
        return 'no error', written
    except OSError as exc:
        return errno.errorcode.get(exc.errno, exc.errno), written
for target in ('/', '/etc', '/var/tmp', '/home', '/opt'):
    try:
        open(os.path.join(target, 'isol8rt-fill'), 'wb').close()
        print(target, 'writable', flush=True)
    except OSError as exc:
        print(target, errno.errorcode.get(exc.errno, exc.errno), flush=True)
for directory in ('/tmp', '/sandbox'):
    error, written = fill(directory + '/fill.bin', 1024)
    print(directory, error, written >> 20, flush=True)
    try:
        open(directory + '/one-more', 'wb').write(b'x' * 65536)
        print(directory, 'room left', flush=True)
    except OSError as exc:
        print(directory, 'then', errno.errorcode.get(exc.errno, exc.errno), flush=True)
mounts = {line.split()[1]: line.split()[2] for line in open('/proc/self/mounts')}
print('fs', mounts['/sandbox'], mounts['/tmp'], flush=True)
"""


def _disk_used() -> int:
    return shutil.disk_usage("/var/lib/docker").used


async def test_fill_sandbox_and_tmp_until_enospc(make_engine, strategy):
    """Write to every writable place until the write fails. Stopped by: the read-only root filesystem
    (EROFS everywhere else) and the tmpfs size caps (ENOSPC at sandboxSize/tmpSize, here 256m/128m, below
    the memory limit); the host's disk does not grow; the recycled container's /sandbox and /tmp are empty."""
    async with make_engine(pool_strategy=strategy, pool_size=0, sandbox_size="256m", tmp_size="128m") as engine:
        disk_before = _disk_used()
        with trio.fail_after(60):
            attack = await engine.execute(ExecutionRequest(code=FILL, timeout_ms=30_000))
        disk_growth = _disk_used() - disk_before
        assert attack.exit_code == 0, attack.stderr
        lines = attack.stdout.splitlines()
        assert lines[:5] == ["/ EROFS", "/etc EROFS", "/var/tmp EROFS", "/home EROFS", "/opt EROFS"], lines
        tmp_error, tmp_mib = lines[5].split()[1:]
        sandbox_error, sandbox_mib = lines[7].split()[1:]
        assert (tmp_error, lines[6]) == ("ENOSPC", "/tmp then ENOSPC"), lines
        assert (sandbox_error, lines[8]) == ("ENOSPC", "/sandbox then ENOSPC"), lines
        assert 100 <= int(tmp_mib) <= 128 and 200 <= int(sandbox_mib) <= 256, lines
        assert lines[9] == "fs tmpfs tmpfs"
        # 384 MiB were written; none of it may land on the host's disk (other work on this machine may
        # write a little meanwhile, hence the slack).
        assert disk_growth < 128 * MiB, disk_growth
        await after_attack(engine, attack, "python")
        await stop_and_verify(engine, attack)


async def test_fill_sandbox_past_the_memory_limit(attack_engine):
    """With the defaults (/sandbox 512m, /tmp 256m, memory 512m) the tmpfs pages count against the
    memory limit: /tmp fills to ENOSPC, then filling /sandbox meets the memory cgroup before its own cap.
    Stopped by: the memory cgroup (the writer is OOM-killed, or gets ENOSPC); the container's memory use
    never passes the limit; nothing reaches the host's disk; the reset empties everything."""
    disk_before = _disk_used()
    with trio.fail_after(60):
        attack = await attack_engine.execute(ExecutionRequest(code=FILL, timeout_ms=30_000))
    disk_growth = _disk_used() - disk_before
    lines = attack.stdout.splitlines()
    assert lines[:5] == ["/ EROFS", "/etc EROFS", "/var/tmp EROFS", "/home EROFS", "/opt EROFS"], lines
    assert lines[5].startswith("/tmp ENOSPC ") and lines[6] == "/tmp then ENOSPC", lines
    assert attack.oom_killed or (len(lines) > 7 and lines[7].startswith("/sandbox ENOSPC")), (lines, attack.stderr)
    assert not attack.timed_out
    assert disk_growth < 256 * MiB, disk_growth
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)
