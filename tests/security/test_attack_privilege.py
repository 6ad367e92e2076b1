"""Becoming root, or acting like it: setuid binaries (one's own copy of bash, and the setuid-root tools
the Debian image ships), chown/mknod, the kernel's control files, the hostname, the clock, resource
limits, and the setuid family.

Stopped by: uid 1000 with no capabilities (effective, permitted, inheritable, ambient all empty);
no-new-privileges (a setuid bit never raises privileges on exec, even a root-owned one) and the nosuid
tmpfs mounts; the per-run seccomp filter (the setuid family is EPERM, even to one's own uid); the
read-only root, /proc/sys and /sys; the strict profile (sethostname, clock_settime, ... EPERM)."""

from __future__ import annotations

import json

import trio

from isol8rt import ExecutionRequest

from .conftest import after_attack, stop_and_verify

SHELL = r"""
cp /bin/bash /sandbox/rootsh && chmod u+s,g+s /sandbox/rootsh && echo "copied $(stat -c %A /sandbox/rootsh)"
echo "own-suid $(/sandbox/rootsh -p -c 'echo $EUID $(id -u) $(id -g)')"
chown 0:0 /sandbox/rootsh 2>/dev/null; echo "chown $?"
# The image's own setuid-root tools: no-new-privileges keeps them at uid 1000.
for tool in $(find / -xdev -perm -4000 -user root -type f 2>/dev/null | sort); do echo "suid-root $tool"; done
echo "mount-tool $(mount -t tmpfs none /sandbox 2>&1 | head -1)"
su -c id root </dev/null >/dev/null 2>&1; echo "su $?"
mknod /sandbox/mem c 1 1 2>/dev/null; echo "mknod-char $?"
mknod /sandbox/disk b 8 0 2>/dev/null; echo "mknod-block $?"
(echo b > /proc/sysrq-trigger) 2>/dev/null; echo "sysrq $?"
(echo 1 > /proc/sys/kernel/panic) 2>/dev/null; echo "proc-sys $?"
(echo pwned > /proc/sys/kernel/hostname) 2>/dev/null; echo "proc-hostname $?"
(echo '|/sandbox/x' > /proc/sys/kernel/core_pattern) 2>/dev/null; echo "core-pattern $?"
(echo /sandbox/x > /sys/fs/cgroup/memory/release_agent) 2>/dev/null; echo "release-agent $?"
(echo 1 > /sys/fs/cgroup/memory/notify_on_release) 2>/dev/null; echo "notify-on-release $?"
(echo 9999999999 > /sys/fs/cgroup/memory/memory.limit_in_bytes) 2>/dev/null; echo "cgroup-memory $?"
(echo max > /sys/fs/cgroup/pids/pids.max) 2>/dev/null; echo "cgroup-pids $?"
(echo 1 > /sys/kernel/mm/ksm/run) 2>/dev/null; echo "sys-kernel $?"
(echo x > /proc/1/oom_score_adj) 2>/dev/null; echo "pid1-oom $?"
(echo -1000 > /proc/self/oom_score_adj) 2>/dev/null; echo "own-oom-lower $?"
hostname pwned 2>/dev/null; echo "hostname $? $(hostname)"
date -s '2001-01-01 00:00:00' >/dev/null 2>&1; echo "date $?"
(ulimit -n 1048576) 2>/dev/null; echo "ulimit-nofile $?"
(ulimit -c unlimited) 2>/dev/null; echo "ulimit-core $?"
grep -E '^Cap(Inh|Prm|Eff|Amb)|^NoNewPrivs' /proc/self/status | tr -s '\t' ' '
"""

PYTHON = r"""
import ctypes, errno, json, os, resource, time
libc = ctypes.CDLL(None, use_errno=True)
results = {}
def attempt(name, action):
    try:
        action()
        results[name] = 'ok'
    except OSError as exc:
        results[name] = errno.errorcode.get(exc.errno, exc.errno)
attempt('setuid0', lambda: os.setuid(0))
attempt('seteuid0', lambda: os.seteuid(0))
attempt('setresuid0', lambda: os.setresuid(0, 0, 0))
attempt('setgid0', lambda: os.setgid(0))
attempt('setgroups', lambda: os.setgroups([0]))
attempt('setuid_self', lambda: os.setuid(os.getuid()))
def capset():
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff)
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), 'capset')
attempt('capset', capset)
def sethostname():
    if libc.sethostname(b'pwned', 5) != 0:
        raise OSError(ctypes.get_errno(), 'sethostname')
attempt('sethostname', sethostname)
attempt('clock_settime', lambda: time.clock_settime(time.CLOCK_REALTIME, 0))
def setrlimit(which, value):
    def action():
        limits = (ctypes.c_ulong * 2)(value, value)   # straight to the kernel, for its errno
        if libc.setrlimit(which, limits) != 0:
            raise OSError(ctypes.get_errno(), 'setrlimit')
    return action
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
attempt('rlimit_nofile_above_hard', setrlimit(resource.RLIMIT_NOFILE, hard + 1))
attempt('rlimit_core', setrlimit(resource.RLIMIT_CORE, 1 << 30))
attempt('mknod', lambda: os.mknod('/sandbox/kmem', 0o020600, os.makedev(1, 2)))
attempt('open_dev_mem', lambda: open('/dev/mem', 'rb'))
attempt('write_root', lambda: open('/etc/passwd', 'a'))
results['ids'] = [os.getresuid(), os.getresgid(), os.getgroups()]
print(json.dumps(results))
"""


async def test_shell_privilege_tricks(attack_engine):
    """From bash: a setuid copy of bash (``chmod u+s`` works on one's own file, and changes nothing),
    chown to root, the image's setuid-root tools (mount, su, ...), mknod, /proc/sysrq-trigger, /proc/sys
    (core_pattern: the classic escape), the container's own cgroup limits and release_agent (the other
    classic), /sys, PID 1's OOM score, hostname, date, ulimits. Stopped by: the layers in this module's
    docstring; every attempt fails."""
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(code=SHELL, runtime="bash", timeout_ms=20_000))
    assert attack.exit_code == 0, attack.stderr
    lines = attack.stdout.splitlines()
    facts = {line.split(" ", 1)[0].rstrip(":"): line.split(" ", 1)[1] for line in lines if " " in line
             and not line.startswith("suid-root ")}
    assert facts["copied"] == "-rwsr-sr-x"  # the bits are set; they just do nothing
    assert facts["own-suid"] == "1000 1000 1000"
    suid_tools = [line.split(" ", 1)[1] for line in lines if line.startswith("suid-root ")]
    assert "/usr/bin/mount" in suid_tools and "/usr/bin/su" in suid_tools  # the image has them ...
    assert "must be superuser" in facts["mount-tool"]  # ... and no-new-privileges makes them harmless
    for name in ("chown", "su", "mknod-char", "mknod-block", "sysrq", "proc-sys", "proc-hostname", "core-pattern", "release-agent",
                 "notify-on-release",
                 "cgroup-memory", "cgroup-pids", "sys-kernel", "pid1-oom", "own-oom-lower", "date",
                 "ulimit-nofile", "ulimit-core"):
        assert facts[name] != "0", f"{name} succeeded"
    status, hostname = facts["hostname"].split(" ", 1)
    assert status != "0" and hostname != "pwned"
    assert facts["CapInh"] == facts["CapPrm"] == facts["CapEff"] == facts["CapAmb"] == "0000000000000000"
    assert facts["NoNewPrivs"] == "1"
    await after_attack(attack_engine, attack, "bash")
    await stop_and_verify(attack_engine, attack)


async def test_python_privilege_calls(attack_engine):
    """From Python: setuid(0) and friends (even setuid to oneself), setgroups, capset, sethostname,
    clock_settime, raising RLIMIT_NOFILE past its hard limit and RLIMIT_CORE at all, mknod, /dev/mem,
    writing /etc. Stopped by: the per-run filter (setuid family, capset: EPERM), the strict profile
    (sethostname, clock_settime), no capabilities (rlimits, mknod), no /dev/mem, the read-only root."""
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(code=PYTHON, timeout_ms=15_000))
    assert attack.exit_code == 0, attack.stderr
    results = json.loads(attack.stdout)
    assert results.pop("ids") == [[1000, 1000, 1000], [1000, 1000, 1000], []]
    assert results.pop("open_dev_mem") == "ENOENT"
    assert results.pop("write_root") in ("EROFS", "EACCES")
    assert results == {name: "EPERM" for name in (
        "setuid0", "seteuid0", "setresuid0", "setgid0", "setgroups", "setuid_self", "capset", "sethostname",
        "clock_settime", "rlimit_nofile_above_hard", "rlimit_core", "mknod")}
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)
