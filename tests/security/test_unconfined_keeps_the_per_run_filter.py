"""``security.seccomp: unconfined`` lifts the container's profile, not the guard on user code: the
per-run filter is still installed by every user process (profiles/README.md). Before issue 14 the
engine dropped it for unconfined, so user code could setuid(), change its personality and make user
namespaces."""

from __future__ import annotations

from isol8rt import ExecutionRequest, SecurityConfig

PROBE = r"""
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def outcome(result):
    return errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno()) if result == -1 else 'ok'
try:
    os.setuid(os.getuid())
    print('setuid ok')
except PermissionError as exc:
    print('setuid', errno.errorcode[exc.errno])
print('personality', outcome(libc.personality(0x0008)))
print('unshare', outcome(libc.unshare(0x10000000)))  # CLONE_NEWUSER
print('vmsplice', outcome(libc.vmsplice(-1, None, 0, 0)))  # refused by strict only
"""


async def test_unconfined_keeps_the_per_run_filter(make_engine):
    async with make_engine(security=SecurityConfig(seccomp="unconfined"), pool_size=0) as engine:
        result = await engine.execute(ExecutionRequest(code=PROBE))
    assert result.exit_code == 0, result.stderr
    # The per-run filter: EPERM. The container profile really is lifted: vmsplice reaches the kernel
    # (EBADF for the bad descriptor), where the strict profile answers EPERM.
    assert result.stdout.splitlines() == ["setuid EPERM", "personality EPERM", "unshare EPERM", "vmsplice EBADF"]


async def test_strict_refuses_what_unconfined_lets_through(engine):
    result = await engine.execute(ExecutionRequest(code=PROBE))
    assert result.stdout.splitlines() == ["setuid EPERM", "personality EPERM", "unshare EPERM", "vmsplice EPERM"]
