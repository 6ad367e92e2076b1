"""Seccomp as the engine applies it: the container's profile (strict by default, or a custom file) and
the second, per-run filter every user process installs before exec."""

from __future__ import annotations

import json

import pytest

from isol8rt import ExecutionRequest, InvalidRequest, SecurityConfig
from isol8rt._resources import data_dir

PROBE = r"""
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(result):
    return errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno()) if result != 0 else 'ok'
print('mount', errno_of(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)))
try:
    os.setuid(os.getuid())
    print('setuid ok')
except PermissionError as exc:
    print('setuid', errno.errorcode[exc.errno])
print('personality', errno_of(0 if libc.personality(0x0008) != -1 else -1))
print('io_uring', errno_of(libc.syscall(425, 1, ctypes.create_string_buffer(120))))
"""


async def test_strict_profile_and_per_run_filter(engine):
    result = await engine.execute(ExecutionRequest(code=PROBE))
    assert result.exit_code == 0, result.stderr
    # mount: the container profile; setuid (even to oneself), personality and io_uring: the per-run filter.
    assert result.stdout.splitlines() == ["mount EPERM", "setuid EPERM", "personality EPERM", "io_uring EPERM"]


async def test_custom_profile_denying_mkdir(make_engine, tmp_path):
    strict = json.loads((data_dir("profiles") / "strict.json").read_text())
    for rule in strict["syscalls"]:
        rule["names"] = [name for name in rule["names"] if name not in ("mkdir", "mkdirat")]
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps(strict))
    async with make_engine(security=SecurityConfig(seccomp="custom", profile_path=str(profile)), pool_size=0) as engine:
        result = await engine.execute(ExecutionRequest(code="import os\ntry:\n    os.mkdir('d')\nexcept OSError as e:\n    print(e.errno)"))
    assert result.stdout == "1\n", result.stderr  # EPERM


async def test_misspelled_syscall_is_refused_before_anything_starts(make_engine, tmp_path):
    profile = tmp_path / "typo.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdri"], "action": "SCMP_ACT_ERRNO"}]}))
    async with make_engine(security=SecurityConfig(seccomp="custom", profile_path=str(profile)), pool_size=0) as engine:
        with pytest.raises(InvalidRequest, match="mkdri"):
            await engine.execute(ExecutionRequest(code="print(1)"))
