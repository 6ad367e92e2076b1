"""State that survives the wipe: extended attributes (and POSIX ACLs, which are extended attributes) set
on /sandbox itself, the one thing the wipe of its contents left alone; the next run reads them. Stopped
by: the reset removes every extended attribute the directory did not have when the container started,
and verifies it."""

from __future__ import annotations

import struct

import pytest

from isol8rt import ExecutionRequest

from .conftest import assert_same_container, run

# A POSIX ACL granting uid 4242 read access, as the kernel stores it (system.posix_acl_access).
_ACL = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in (
    (0x01, 7, 0xFFFFFFFF), (0x02, 4, 4242), (0x04, 5, 0xFFFFFFFF), (0x10, 5, 0xFFFFFFFF), (0x20, 5, 0xFFFFFFFF)))

MARK = f"""
import os
os.setxattr('/sandbox', 'user.x', b'A')
os.setxattr('/sandbox', 'system.posix_acl_access', {_ACL!r})
os.setxattr('/sandbox', 'system.posix_acl_default', {_ACL!r})
print(sorted(os.listxattr('/sandbox')))
"""
READ = "import os\nprint(sorted(os.listxattr('/sandbox')))"


async def test_library(reuse_engine, strategy):
    attack = await run(reuse_engine, MARK)
    assert attack.exit_code == 0, attack.stderr
    assert "'user.x'" in attack.stdout and "system.posix_acl_access" in attack.stdout
    later = await run(reuse_engine, READ)
    assert (later.stdout, later.exit_code) == ("[]\n", 0), later.stderr
    assert_same_container(strategy, attack, later)


@pytest.mark.parametrize("same_key", [False, True], ids=["two-keys", "one-key"])
async def test_server(two_keys, strategy, same_key):
    attacker, later_client = two_keys.first, (two_keys.first if same_key else two_keys.second)
    async with attacker, later_client:
        attack = await attacker.execute(ExecutionRequest(code=MARK))
        assert attack.exit_code == 0, attack.stderr
        await two_keys.settled()
        later = await later_client.execute(ExecutionRequest(code=READ))
    assert (later.stdout, later.exit_code) == ("[]\n", 0), later.stderr
    if same_key:
        assert_same_container(strategy, attack, later)
