"""The container's own layers beyond seccomp: ulimits, memory = swap, private IPC, Docker's masked and
read-only /proc paths, no-new-privileges, and the OCI runtime passthrough."""

from __future__ import annotations

import pytest

from isol8rt import DockerIsol8, ExecutionRequest, InvalidRequest, Isol8Options, SecurityConfig
from isol8rt.docker import DockerClient

PROBE = r"""
import os, resource
print('fsize', resource.getrlimit(resource.RLIMIT_FSIZE))
print('nofile', resource.getrlimit(resource.RLIMIT_NOFILE))
print('core', resource.getrlimit(resource.RLIMIT_CORE))
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1 << 20, 1 << 20))
    print('raise nofile: allowed')
except (ValueError, OSError):
    print('raise nofile: refused')
print('nnp', [line.split()[1] for line in open('/proc/self/status') if line.startswith('NoNewPrivs')][0])
print('masked', repr(open('/proc/timer_list').read()), os.listdir('/sys/firmware'))
try:
    open('/proc/sys/kernel/hostname', 'w').write('x')
    print('proc sys writable')
except OSError as exc:
    print('proc sys', exc.errno)
"""


async def test_ulimits_and_proc(engine):
    result = await engine.execute(ExecutionRequest(code=PROBE))
    lines = result.stdout.splitlines()
    assert lines[0] == f"fsize ({512 * 1024 * 1024}, {512 * 1024 * 1024})"
    assert lines[1] == "nofile (4096, 4096)" and lines[2] == "core (0, 0)"
    assert lines[3] == "raise nofile: refused" and lines[4] == "nnp 1"
    assert lines[5] == "masked '' []"  # Docker's masked paths: /dev/null and an empty tmpfs bound over them
    assert lines[6] in ("proc sys 30", "proc sys 13")  # read-only /proc/sys


async def test_memory_equals_swap_and_ipc_is_private(engine):
    result = await engine.execute(ExecutionRequest(code="print(1)"))
    async with DockerClient() as client:
        inspect = await client.inspect_container(result.container_id)
    host_config = inspect.host_config
    assert host_config["Memory"] == host_config["MemorySwap"] == 512 * 1024 * 1024
    assert host_config["IpcMode"] == "private"
    assert "no-new-privileges" in host_config["SecurityOpt"]
    assert host_config["CapDrop"] == ["ALL"] and set(host_config["CapAdd"]) == {"SETUID", "SETGID", "KILL"}
    assert host_config["ReadonlyRootfs"] is True


@pytest.mark.docker
async def test_oci_runtime_passthrough():
    # runc is always there; a user with gVisor names runsc the same way.
    async with DockerIsol8(Isol8Options(pool_size=0, security=SecurityConfig(oci_runtime="runc"))) as engine:
        result = await engine.execute(ExecutionRequest(code="print('on runc')"))
        async with DockerClient() as client:
            inspect = await client.inspect_container(result.container_id)
    assert result.stdout == "on runc\n" and inspect.host_config["Runtime"] == "runc"
    with pytest.raises(InvalidRequest, match="ociRuntime"):
        async with DockerIsol8(Isol8Options(pool_size=0, security=SecurityConfig(oci_runtime="bad name"))) as bad:
            await bad.execute(ExecutionRequest(code="print(1)"))
