"""Kernel interfaces that have been container escapes or kernel exploits: namespaces, mounts, ptrace,
keyrings, BPF, perf events, io_uring, userfaultfd, module and kexec loading.

Stopped by: the container's strict seccomp profile (an allowlist: everything else is EPERM) and the
per-run filter each user process installs before exec (ptrace, unshare, setns, mount, keyctl, io_uring,
userfaultfd, namespace clone flags: EPERM even under a permissive container profile); below both, no
capabilities and no-new-privileges. The profiles' own tests (tests/security/test_seccomp_profiles.py)
check the filters syscall by syscall; these check them from user code in a real sandbox."""

from __future__ import annotations

import json
import platform

import trio

from isol8rt import ExecutionRequest

from .conftest import after_attack, stop_and_verify

NUMBERS = {
    "x86_64": {"keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298,
               "io_uring_setup": 425, "userfaultfd": 323, "clone": 56, "clone3": 435, "pivot_root": 155,
               "kexec_load": 246, "init_module": 175, "process_vm_readv": 310, "open_tree": 428, "fsopen": 430},
    "aarch64": {"keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280, "perf_event_open": 241,
                "io_uring_setup": 425, "userfaultfd": 282, "clone": 220, "clone3": 435, "pivot_root": 41,
                "kexec_load": 104, "init_module": 105, "process_vm_readv": 270, "open_tree": 428, "fsopen": 430},
}

PROBE = r"""
import ctypes, errno, json, os, subprocess
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
results = {}
def record(name, value):
    results[name] = 'ok' if value >= 0 else errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())
def sys_(name, *args):
    ctypes.set_errno(0)
    return libc.syscall(NR[name], *args)
buf = ctypes.create_string_buffer(256)
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
record('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))
record('mount_proc', libc.mount(b'proc', b'/sandbox', b'proc', 0, None))
record('umount', libc.umount2(b'/sys', 2))
record('unshare_user', libc.unshare(CLONE_NEWUSER))
record('unshare_mount', libc.unshare(CLONE_NEWNS))
record('unshare_net', libc.unshare(CLONE_NEWNET))
record('clone_newuser', sys_('clone', CLONE_NEWUSER | 17, 0, 0, 0, 0))   # SIGCHLD
record('clone_newpid', sys_('clone', CLONE_NEWPID | 17, 0, 0, 0, 0))
record('clone3', sys_('clone3', buf, 88))
ns = os.open('/proc/self/ns/mnt', os.O_RDONLY)
record('setns', libc.setns(ns, 0))
record('chroot', libc.chroot(b'/sandbox'))
record('pivot_root', sys_('pivot_root', b'/sandbox', b'/sandbox'))
child = subprocess.Popen(['sleep', '30'])
record('ptrace_attach_sibling', libc.ptrace(16, child.pid, None, None))      # PTRACE_ATTACH
record('ptrace_seize_sibling', libc.ptrace(0x4206, child.pid, None, None))   # PTRACE_SEIZE
record('ptrace_attach_pid1', libc.ptrace(16, 1, None, None))
record('ptrace_traceme', libc.ptrace(0, 0, None, None))
iov = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 16)
record('process_vm_readv', sys_('process_vm_readv', child.pid, iov, 1, iov, 1, 0))
child.kill()
record('keyctl', sys_('keyctl', 0, -3, 0, 0, 0))                 # KEYCTL_GET_KEYRING_ID, session keyring
record('add_key', sys_('add_key', b'user', b'isol8rt', b'secret', 6, -3))
record('request_key', sys_('request_key', b'user', b'isol8rt', None, 0))
record('bpf', sys_('bpf', 5, buf, 128))                          # BPF_PROG_LOAD
record('perf_event_open', sys_('perf_event_open', buf, 0, -1, -1, 0))
record('io_uring_setup', sys_('io_uring_setup', 8, buf))
record('userfaultfd', sys_('userfaultfd', 0))
record('kexec_load', sys_('kexec_load', 0, 0, None, 0))
record('init_module', sys_('init_module', buf, 16, b''))
record('open_tree', sys_('open_tree', -100, b'/', 1))           # OPEN_TREE_CLONE
record('fsopen', sys_('fsopen', b'tmpfs', 0))
record('reboot', libc.reboot(0x4321FEDC))                       # RB_POWER_OFF
record('swapon', libc.swapon(b'/sandbox/swap', 0))
for command in (['unshare', '-r', 'id'], ['unshare', '-m', 'id'], ['mount', '-t', 'tmpfs', 'none', '/sandbox'],
                ['nsenter', '-t', '1', '-m', 'id']):
    done = subprocess.run(command, capture_output=True, text=True)
    results[command[0] + ' ' + command[1]] = (done.returncode, done.stdout)
print(json.dumps(results))
"""

EXPECTED_EPERM = [
    "mount", "mount_proc", "umount", "unshare_user", "unshare_mount", "unshare_net", "clone_newuser",
    "clone_newpid", "setns", "chroot", "pivot_root", "ptrace_attach_sibling", "ptrace_seize_sibling",
    "ptrace_attach_pid1", "ptrace_traceme", "process_vm_readv", "keyctl", "add_key", "request_key", "bpf",
    "perf_event_open", "io_uring_setup", "userfaultfd", "kexec_load", "init_module", "open_tree", "fsopen",
    "reboot", "swapon",
]


async def test_forbidden_syscalls(attack_engine):
    """Each call above, straight from user code (ctypes), and the util-linux tools that wrap them
    (``unshare -r``, ``unshare -m``, ``mount``, ``nsenter``). Stopped by: seccomp (EPERM; ENOSYS for
    clone3, whose flags a filter cannot read, so that libc falls back to the checked clone)."""
    code = f"NR = {NUMBERS[platform.machine()]!r}\n{PROBE}"
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(code=code, timeout_ms=15_000))
    assert attack.exit_code == 0, attack.stderr
    results = json.loads(attack.stdout)
    assert {name: results[name] for name in EXPECTED_EPERM} == {name: "EPERM" for name in EXPECTED_EPERM}
    assert results["clone3"] == "ENOSYS"
    for tool in ("unshare -r", "unshare -m", "mount -t", "nsenter -t"):
        returncode, stdout = results[tool]
        assert returncode != 0 and stdout == "", (tool, returncode, stdout)
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)
