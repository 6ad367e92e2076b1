"""The seccomp profiles: they load, name only real syscalls and compile; bad profiles are refused with
the offending item named; and what they refuse is refused, on this host (a forked child under the
compiled filter, installed by the agent's own code) and in Docker (runc loading the profile's JSON)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import os
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pyseccomp
import pytest
import trio

from isol8rt.agent import seccomp_filter
from isol8rt.cli import main as cli_main
from isol8rt.docker import ContainerSpec, DockerClient, HostConfig, NotFound
from isol8rt.errors import InvalidRequest
from isol8rt.security.seccomp import (
    BUILTIN_PROFILES,
    compile_profile,
    describe,
    docker_json,
    docker_security_opt,
    host_arch,
    load_profile,
    parse_profile,
    rules_for,
    user_filter_bpf,
)

from ..conftest import needs_docker

ARCHES = ("x86_64", "aarch64")
SCMP_ARCH = {"x86_64": pyseccomp.Arch.X86_64, "aarch64": pyseccomp.Arch.AARCH64}

CLONE_NEWUSER = 0x10000000

#: What strict must never allow (the task's list, plus the legacy names of the same operations).
FORBIDDEN = {
    "mount", "umount", "umount2", "pivot_root", "chroot", "unshare", "setns", "clone3", "ptrace",
    "process_vm_readv", "process_vm_writev", "bpf", "userfaultfd", "perf_event_open", "keyctl", "add_key",
    "request_key", "io_uring_setup", "io_uring_enter", "io_uring_register", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "swapon", "swapoff", "reboot", "settimeofday",
    "clock_settime", "clock_adjtime", "adjtimex", "open_by_handle_at", "name_to_handle_at", "acct", "quotactl",
    "quotactl_fd", "lookup_dcookie", "nfsservctl", "vm86", "vm86old", "iopl", "ioperm", "syslog", "sethostname",
    "setdomainname", "fanotify_init", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "open_tree",
    "mount_setattr", "kcmp", "pidfd_getfd", "process_madvise", "modify_ldt",
}  # fmt: skip

#: Allowed by strict only under argument conditions.
CONDITIONAL = {"socket", "socketpair", "personality", "clone"}


@pytest.fixture(scope="module")
def strict():
    return load_profile("strict")


def write_profile(tmp_path: Path, text: str) -> str:
    path = tmp_path / "profile.json"
    path.write_text(text)
    return str(path)


def refusal(tmp_path: Path, text: str) -> str:
    path = write_profile(tmp_path, text)
    with pytest.raises(InvalidRequest) as caught:
        load_profile(path)
    message = str(caught.value)
    assert message.startswith(f"profile {path}: ")
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------------------------------
# loading and validating


@pytest.mark.parametrize("name", BUILTIN_PROFILES)
@pytest.mark.parametrize("arch", ARCHES)
def test_builtin_profiles_load_and_compile(name, arch):
    bpf = compile_profile(load_profile(name), arch)
    assert bpf and len(bpf) % 8 == 0


def test_strict_is_an_allowlist_the_others_denylists(strict):
    assert not strict.is_denylist
    assert load_profile("unconfined").is_denylist and load_profile("unconfined").is_unconfined
    assert load_profile("per-run").is_denylist and not load_profile("per-run").is_unconfined
    assert docker_security_opt(load_profile("unconfined")) == "seccomp=unconfined"
    assert docker_security_opt(strict) == "seccomp=" + docker_json(strict)


def missing_syscalls(profile_name: str, arch: str, also_in: int | None = None) -> list[str]:
    return [
        syscall
        for rule in rules_for(load_profile(profile_name), arch)
        for syscall in rule.syscalls
        if pyseccomp.resolve_syscall(SCMP_ARCH[arch], syscall) < 0
        and (also_in is None or pyseccomp.resolve_syscall(also_in, syscall) < 0)
    ]


@pytest.mark.parametrize("arch", ARCHES)
def test_every_syscall_strict_names_exists_on_each_arch_its_rule_applies_to(arch):
    """A name libseccomp does not know for the architecture would be skipped silently by runc."""
    assert missing_syscalls("strict", arch) == []


@pytest.mark.parametrize("arch", ARCHES)
def test_every_syscall_the_per_run_filter_names_exists_natively_or_in_the_32_bit_abi(arch):
    compat = {"x86_64": pyseccomp.Arch.X86, "aarch64": pyseccomp.Arch.ARM}[arch]
    assert missing_syscalls("per-run", arch, also_in=compat) == []


@pytest.mark.parametrize("arch", ARCHES)
def test_strict_allows_none_of_the_forbidden_syscalls(strict, arch):
    allowed, conditional = set(), set()
    for rule in rules_for(strict, arch):
        if rule.action == "SCMP_ACT_ALLOW":
            (conditional if rule.args else allowed).update(rule.syscalls)
    assert allowed & FORBIDDEN == set()
    assert conditional == CONDITIONAL
    assert {"setuid", "setgid", "setresuid", "kill", "prctl", "seccomp", "membarrier", "rseq", "statx"} <= allowed
    assert {"close_range", "pidfd_open", "pidfd_send_signal", "faccessat2", "epoll_pwait", "io_submit"} <= allowed
    [clone3] = [rule for rule in rules_for(strict, arch) if "clone3" in rule.syscalls]
    assert (clone3.action, clone3.errno_ret) == ("SCMP_ACT_ERRNO", errno.ENOSYS)
    personalities = {rule.args[0].value for rule in rules_for(strict, arch) if "personality" in rule.syscalls}
    assert personalities == {0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF}


def test_strict_counts_on_x86_64(strict):
    text = describe(strict, "x86_64")
    assert "SCMP_ACT_ALLOW: 271 syscalls, 4 more only under argument conditions" in text
    assert "anything else: SCMP_ACT_ERRNO(EPERM)" in text
    assert "arg0 & 0x7e020080 == 0x0" in text  # clone without namespace flags


def denying(*names: str, **rule) -> str:
    """A denylist profile's text, with one rule refusing ``names`` (``rule`` adds or replaces fields)."""
    return json.dumps(
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": list(names), "action": "SCMP_ACT_ERRNO", **rule}]}
    )


def test_misspelled_syscall_is_refused_by_name(tmp_path):
    message = refusal(tmp_path, denying("mkdir", "mkdri"))
    assert 'unknown syscall "mkdri" for x86_64 and aarch64' in message
    assert "$.syscalls[0].names[1]" in message and 'did you mean "mkdir"' in message


def test_syscall_of_another_architecture_passes_and_stays_out_of_this_ones_filter(tmp_path):
    """As with Docker: a known name is kept for the filters of architectures that have it."""
    profile = load_profile(write_profile(tmp_path, denying("arch_prctl", "mkdirat")))
    without = parse_profile(denying("mkdirat"))
    assert compile_profile(profile, "aarch64") == compile_profile(without, "aarch64")
    assert compile_profile(profile, "x86_64") != compile_profile(without, "x86_64")


def test_malformed_json_is_refused_with_its_position(tmp_path):
    message = refusal(tmp_path, '{"defaultAction": "SCMP_ACT_ALLOW",\n "syscalls": [\n  {"names": ["mkdir"],}\n]}')
    assert "invalid JSON" in message and "line 3, column" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}}',
            "Expected `array | null`, got `object` - at `$.syscalls`",
        ),
        (denying("mkdir", errnoRet="1"), "got `str` - at `$.syscalls[0].errnoRet`"),
        ('{"defaultAction": "SCMP_ACT_ALLOW", "defaultActon": "x"}', "unknown field `defaultActon`"),
        ('{"defaultAction": "SCMP_ACT_DENY"}', "Invalid enum value 'SCMP_ACT_DENY' - at `$.defaultAction`"),
        (
            denying("mkdir", action="SCMP_ACT_REFUSE"),
            "Invalid enum value 'SCMP_ACT_REFUSE' - at `$.syscalls[0].action`",
        ),
        (
            denying("mkdir", args=[{"index": 0, "value": 1, "op": "SCMP_CMP_SAME"}]),
            "Invalid enum value 'SCMP_CMP_SAME' - at `$.syscalls[0].args[0].op`",
        ),
        (denying("mkdir", args=[{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]), "at `$.syscalls[0].args[0].index`"),
        (denying("mkdir", args=[{"index": 0, "value": 2**64, "op": "SCMP_CMP_EQ"}]), "does not fit in 64 bits"),
        (denying("mkdir", action="SCMP_ACT_ALLOW", errnoRet=1), "'errnoRet' needs action SCMP_ACT_ERRNO"),
        (denying(), "names no syscall"),
        (
            denying("mkdir", includes={"arches": ["x86_64"]}),
            "Invalid enum value 'x86_64' - at `$.syscalls[0].includes.arches[0]`",
        ),
        (
            '{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],'
            ' "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}',
            "both 'architectures' and 'archMap'",
        ),
    ],
)
def test_malformed_profiles_are_refused_naming_the_item(tmp_path, text, expected):
    assert expected in refusal(tmp_path, text)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(InvalidRequest, match=r"profile .*nothing\.json: cannot read it: No such file"):
        load_profile(str(tmp_path / "nothing.json"))


def test_empty_allow_profile_is_a_denylist_that_compiles(tmp_path):
    profile = load_profile(write_profile(tmp_path, '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}'))
    assert profile.is_denylist and profile.is_unconfined
    assert compile_profile(profile)


def test_docker_style_profile_is_accepted_and_resolved_like_docker(tmp_path):
    """Docker's own profiles carry 32-bit names (via sub-architectures) and capability conditions."""
    profile = load_profile(
        write_profile(
            tmp_path,
            json.dumps(
                {
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "defaultErrnoRet": 1,
                    "archMap": [
                        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
                        {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": None},
                    ],
                    "syscalls": [
                        {"names": ["read", "write", "chown32", "recv", "_llseek"], "action": "SCMP_ACT_ALLOW"},
                        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                        {
                            "names": ["s390_runtime_instr"],
                            "action": "SCMP_ACT_ALLOW",
                            "includes": {"arches": ["s390x"]},
                        },
                        # Docker lists sync_file_range2 for arm, where libseccomp has none (ppc has it).
                        {
                            "names": ["sync_file_range2", "set_tls"],
                            "action": "SCMP_ACT_ALLOW",
                            "includes": {"arches": ["arm64"]},
                        },
                        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
                    ],
                }
            ),
        )
    )
    assert [rule.syscalls for rule in rules_for(profile, "x86_64")] == [
        ["read", "write", "chown32", "recv", "_llseek"],
        ["ptrace"],
    ]
    assert len(rules_for(profile, "x86_64", caps=["CAP_SYS_ADMIN"])) == 3
    assert compile_profile(profile, "x86_64") != compile_profile(profile, "x86_64", caps=["CAP_SYS_ADMIN"])


def test_docker_json_is_compact_without_comments_and_round_trips(strict):
    text = docker_json(strict)
    assert "\n" not in text and '"comment"' not in text and ": " not in text
    assert compile_profile(parse_profile(text)) == compile_profile(strict)


def test_compile_is_cached_by_content(strict):
    assert compile_profile(strict) is compile_profile(load_profile("strict"))


def test_profile_show_prints_the_rules(capsys):
    assert cli_main(["profile", "show", "strict", "--arch", "aarch64"]) == 0
    out = capsys.readouterr().out
    assert "allowlist" in out and "SCMP_ACT_ERRNO(ENOSYS)" in out and "arch_prctl" not in out


def test_profile_show_refuses_a_bad_profile_in_one_line(tmp_path, capsys):
    path = write_profile(tmp_path, denying("opne"))
    assert cli_main(["profile", "show", path]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'unknown syscall "opne"' in err


# --------------------------------------------------------------------------------------------------
# behaviour on this host: the compiled filter, installed in a forked child by the agent's own code

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="refusals are only told apart from missing privileges as root"
)
needs_host_arch = pytest.mark.skipif(host_arch() not in ARCHES, reason="isol8rt compiles for x86_64 and aarch64")

_libc = ctypes.CDLL(None, use_errno=True)


def syscall(name: str, *args: int | bytes | None) -> int:
    """Call ``name`` raw; 0 when it succeeds, else its errno."""
    number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
    converted = [ctypes.c_long(arg) if isinstance(arg, int) else arg for arg in args]
    return 0 if _libc.syscall(ctypes.c_long(number), *converted) >= 0 else ctypes.get_errno()


def in_child(work, bpf: bytes | None = None):
    """``work()``'s JSON-able result, run in a forked child with ``bpf`` installed first."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(read_end)
            if bpf is not None:
                seccomp_filter.install(bpf)
            result = {"value": work()}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            result = {"error": repr(exc)}
        try:
            os.write(write_end, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        data = reader.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        pytest.fail(f"the child died without answering (wait status {status:#x})")
    result = json.loads(data)
    assert "error" not in result, result["error"]
    return result["value"]


def os_call(function, *args) -> int:
    """Call an ``os`` function; 0 when it succeeds, else its errno."""
    try:
        function(*args)
    except OSError as exc:
        return exc.errno
    return 0


def _clone_new_user() -> int:
    """clone(CLONE_NEWUSER | SIGCHLD) raw: a fork into a new user namespace."""
    pid = _libc.syscall(ctypes.c_long(pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "clone")),
                        ctypes.c_long(CLONE_NEWUSER | 17), ctypes.c_long(0), None, None, ctypes.c_long(0))  # fmt: skip
    if pid == 0:  # pragma: no cover - the grandchild
        os._exit(0)
    if pid < 0:
        return ctypes.get_errno()
    os.waitpid(pid, 0)
    return 0


MISSING = b"/nonexistent-isol8rt"
#: Calls that root may make but the filters refuse; arguments are chosen so that, unfiltered, each one
#: fails harmlessly with another errno (or does nothing lasting): EPERM can only come from the filter.
PROBES = {
    "mount": lambda: syscall("mount", b"none", MISSING, b"tmpfs", 0, None),
    "umount2": lambda: syscall("umount2", MISSING, 0),
    "unshare(CLONE_NEWUSER)": lambda: syscall("unshare", CLONE_NEWUSER),
    "clone(CLONE_NEWUSER)": _clone_new_user,
    "setns": lambda: syscall("setns", -1, 0),
    "ptrace": lambda: syscall("ptrace", 16, 0x3FFFFFFF, 0, 0),  # PTRACE_ATTACH to no process
    "process_vm_readv": lambda: syscall("process_vm_readv", 0x3FFFFFFF, None, 0, None, 0, 0),
    "keyctl": lambda: syscall("keyctl", 9999, 0, 0, 0, 0),
    "add_key": lambda: syscall("add_key", None, None, None, 0, 0),
    "userfaultfd": lambda: syscall("userfaultfd", 0),
    "io_uring_setup": lambda: syscall("io_uring_setup", 1, None),
    "personality(ADDR_NO_RANDOMIZE)": lambda: syscall("personality", 0x0040000),
    "chroot": lambda: syscall("chroot", MISSING),
    "pivot_root": lambda: syscall("pivot_root", MISSING, MISSING),
    "fsopen": lambda: syscall("fsopen", None, 0),
}
STRICT_ONLY_PROBES = {
    "bpf": lambda: syscall("bpf", 9999, None, 0),
    "perf_event_open": lambda: syscall("perf_event_open", None, 0, -1, -1, 0),
    "sethostname": lambda: syscall("sethostname", None, 100000),
    "reboot": lambda: syscall("reboot", 0, 0, 0, None),  # bad magic
    "swapon": lambda: syscall("swapon", MISSING, 0),
    "clock_settime": lambda: syscall("clock_settime", 0, None),
    "adjtimex": lambda: syscall("adjtimex", None),
    "open_by_handle_at": lambda: syscall("open_by_handle_at", -1, None, 0),
    "acct": lambda: syscall("acct", MISSING),
    "quotactl": lambda: syscall("quotactl", 0, None, 0, None),
    "syslog": lambda: syscall("syslog", 10, None, 0),  # SYSLOG_ACTION_SIZE_BUFFER
    "fanotify_init": lambda: syscall("fanotify_init", 0xFFFFFFFF, 0),
    "socket(AF_VSOCK)": lambda: syscall("socket", 40, 1, 0),
    "socket(AF_ALG)": lambda: syscall("socket", 38, 5, 0),
}
PER_RUN_ONLY_PROBES = {
    "os.setuid(1000)": lambda: os_call(os.setuid, 1000),
    "os.setgid(1000)": lambda: os_call(os.setgid, 1000),
    "os.setgroups([])": lambda: os_call(os.setgroups, []),
    "setresuid(0)": lambda: syscall("setresuid", 0, 0, 0),
    "capset": lambda: syscall("capset", None, None),
    "personality(query)": lambda: syscall("personality", 0xFFFFFFFF),
}


@pytest.fixture(scope="module")
def strict_bpf(strict):
    return compile_profile(strict, host_arch())


def assert_refused(probe, bpf: bytes, expected: int = errno.EPERM) -> None:
    unfiltered, filtered = in_child(probe), in_child(probe, bpf)
    assert filtered == expected, f"{errno.errorcode.get(filtered, filtered)} under the filter"
    assert unfiltered != expected, "refused without the filter too: this host cannot tell"


@needs_root
@needs_host_arch
@pytest.mark.parametrize("name", sorted({**PROBES, **STRICT_ONLY_PROBES}))
def test_strict_refuses_on_this_host(strict_bpf, name):
    assert_refused({**PROBES, **STRICT_ONLY_PROBES}[name], strict_bpf)


@needs_root
@needs_host_arch
def test_strict_answers_clone3_with_enosys(strict_bpf):
    assert_refused(lambda: syscall("clone3", None, 0), strict_bpf, errno.ENOSYS)


def ordinary_work() -> dict:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory, "file")
        path.write_text("written")
        Path(directory, "sub").mkdir()
        read = path.read_text()
    results = []
    threads = [threading.Thread(target=results.append, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    left, right = socket.socketpair()
    left.sendall(b"x")
    listener = socket.create_server(("127.0.0.1", 0))
    with socket.create_connection(listener.getsockname()):
        pass
    return {
        "read": read,
        "threads": sorted(results),
        "subprocess": subprocess.run(["true"]).returncode,
        "pipe": subprocess.run(["sh", "-c", "echo hi | cat"], capture_output=True, text=True).stdout,
        "socketpair": right.recv(1).decode(),
        "interfaces": bool(socket.if_nameindex()),
        "personality(query)": syscall("personality", 0xFFFFFFFF) == 0,
    }


ORDINARY = {
    "read": "written",
    "threads": [0, 1, 2, 3],
    "subprocess": 0,
    "pipe": "hi\n",
    "socketpair": "x",
    "interfaces": True,
    "personality(query)": True,
}


@needs_host_arch
def test_strict_lets_ordinary_work_run(strict_bpf):
    assert in_child(ordinary_work, strict_bpf) == ORDINARY


@needs_root
@needs_host_arch
@pytest.mark.parametrize("name", sorted({**PROBES, **PER_RUN_ONLY_PROBES}))
def test_per_run_filter_refuses_on_this_host(name):
    assert_refused({**PROBES, **PER_RUN_ONLY_PROBES}[name], user_filter_bpf(host_arch()))


@needs_host_arch
def test_per_run_filter_lets_ordinary_work_run():
    assert in_child(ordinary_work, user_filter_bpf(host_arch())) == {**ORDINARY, "personality(query)": False}


# The program user code would be: it reports what it is and what the filter lets it do.
_USER_PROGRAM = """
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(result):
    return 0 if result >= 0 else ctypes.get_errno()
out = {"ids": [os.getuid(), os.getgid(), os.getgroups()]}
for name, call in (("setuid", lambda: os.setuid(os.getuid())), ("setgid", lambda: os.setgid(os.getgid()))):
    try:
        call()
        out[name] = 0
    except OSError as exc:
        out[name] = exc.errno
out["ptrace"] = errno_of(libc.ptrace(0, 0, None, None))  # PTRACE_TRACEME
out["personality"] = errno_of(libc.personality(0xffffffff))
print(json.dumps(out))
"""


@needs_root
@needs_host_arch
@pytest.mark.skipif(not os.access("/usr/bin/python3", os.X_OK), reason="needs /usr/bin/python3 for uid 1000")
def test_agent_style_spawn_drops_to_uid_1000_then_filters():
    """What the agent does: subprocess switches to the sandbox user, then ``preexec_fn`` installs the
    filter prepared beforehand, then exec. The switch happens before the filter, so it works."""
    prepared = seccomp_filter.prepare(user_filter_bpf(host_arch()))
    done = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", _USER_PROGRAM],
        user=1000,
        group=1000,
        extra_groups=[],
        preexec_fn=functools.partial(seccomp_filter.install_prepared, prepared),
        capture_output=True,
        text=True,
        cwd="/",
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "ids": [1000, 1000, []],
        "setuid": errno.EPERM,
        "setgid": errno.EPERM,
        "ptrace": errno.EPERM,
        "personality": errno.EPERM,
    }


def test_prepare_refuses_what_cannot_be_a_program():
    for bad in (b"", b"1234567", bytes(8 * 4097)):
        with pytest.raises(ValueError, match="not a seccomp BPF program"):
            seccomp_filter.prepare(bad)


def test_agent_module_needs_only_the_standard_library():
    source = Path(seccomp_filter.__file__).read_text()
    imported = {line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imported <= {"__future__", "ctypes", "os"}


# --------------------------------------------------------------------------------------------------
# in Docker: runc loading the JSON


TEST_LABELS = {"isol8rt.test": "seccomp"}


@pytest.fixture
@needs_docker
async def docker():
    client = DockerClient()
    try:
        yield client
    finally:
        for container in await client.list_containers(labels=TEST_LABELS):
            with contextlib.suppress(NotFound):
                await client.remove_container(container.id, force=True)
        await client.aclose()


async def run_container(
    docker: DockerClient,
    image: str,
    argv: list[str],
    *,
    seccomp: str | None,
    user: str = "1000:1000",
    cap_add: list[str] | None = None,
    env: list[str] | None = None,
) -> tuple[int, str, str]:
    """Run ``argv`` as the entrypoint of a locked-down container; its exit code, stdout and stderr."""
    try:
        await docker.inspect_image(image)
    except NotFound:
        pytest.fail(f"image {image} is not built: run `isol8rt setup`", pytrace=False)
    security_opt = ["no-new-privileges"] + ([seccomp] if seccomp else [])
    spec = ContainerSpec(
        image=image,
        entrypoint=argv[:1],
        cmd=argv[1:],
        user=user,
        env=env,
        labels=TEST_LABELS,
        attach_stdout=True,
        attach_stderr=True,
        host_config=HostConfig(
            security_opt=security_opt,
            network_mode="none",
            cap_drop=["ALL"],
            cap_add=cap_add,
            pids_limit=256,
            memory=512 * 1024 * 1024,
        ),
    )
    container = await docker.create_container(spec)
    try:
        with trio.fail_after(120):
            stream = await docker.attach_container(container, stdin=False)
            await docker.start_container(container)
            output = {1: bytearray(), 2: bytearray()}
            while events := await stream.receive():
                for which, data in events:
                    output[which] += data
            await stream.aclose()
            code = await docker.wait_container(container)
    finally:
        await docker.remove_container(container, force=True)
    return code, output[1].decode(), output[2].decode()


def strict_opt() -> str:
    return "seccomp=" + docker_json(load_profile("strict"))


_CONTAINER_PROBES = """
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(result):
    return 0 if result >= 0 else ctypes.get_errno()
out = {
    "mount": errno_of(libc.mount(b"none", b"/mnt", b"tmpfs", 0, None)),
    "clone3": errno_of(libc.syscall(435, None, 0)),
    "keyctl": errno_of(libc.syscall(250, 9999, 0, 0, 0, 0)),
    "unshare": errno_of(libc.unshare(0x10000000)),
    # Newer than anything strict names: runc answers ENOSYS, so libc falls back to fchmodat.
    "fchmodat2": errno_of(libc.syscall(452, -1, b"x", 0, 0)),
}
print("hello")
print(json.dumps(out))
"""


@pytest.mark.docker
@pytest.mark.skipif(host_arch() != "x86_64", reason="the probes use x86_64 syscall numbers")
async def test_docker_accepts_strict_and_refuses_mount(docker):
    """The reference system's case: mount() from user code fails, print works."""
    code, out, err = await run_container(
        docker, "isol8rt:python", ["/usr/bin/python3", "-c", _CONTAINER_PROBES], seccomp=strict_opt()
    )
    assert code == 0, err
    hello, probes = out.splitlines()
    assert hello == "hello"
    assert json.loads(probes) == {
        "mount": errno.EPERM,
        "clone3": errno.ENOSYS,
        "keyctl": errno.EPERM,
        "unshare": errno.EPERM,
        "fchmodat2": errno.ENOSYS,
    }


# getpid through the 32-bit ABI (int 0x80), from an executable page.
_INT80_GETPID = """
import ctypes, mmap
page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3]))  # mov eax, 20; int 0x80; ret
getpid = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
print(getpid())
"""


@pytest.mark.docker
@pytest.mark.skipif(host_arch() != "x86_64", reason="x86 machine code")
async def test_strict_has_no_32_bit_abi(docker):
    """Docker's default lets x86 syscalls through (and this kernel runs them); strict's filter has no
    x86 architecture, so the first one kills the process (SIGSYS)."""
    argv = ["/usr/bin/python3", "-c", _INT80_GETPID]
    if await run_container(docker, "isol8rt:python", argv, seccomp=None) != (0, "1\n", ""):
        pytest.skip("this kernel runs no 32-bit x86 syscalls (no IA32 emulation)")
    code, _, _ = await run_container(docker, "isol8rt:python", argv, seccomp=strict_opt())
    assert code == 128 + 31


@pytest.mark.docker
@pytest.mark.skipif(host_arch() != "x86_64", reason="the probes use x86_64 syscall numbers")
async def test_strict_refuses_mount_even_to_root_with_cap_sys_admin(docker):
    """With CAP_SYS_ADMIN Docker's default profile allows mount (and it works); strict still refuses."""
    argv = ["/usr/bin/python3", "-c", _CONTAINER_PROBES]
    code, out, err = await run_container(
        docker, "isol8rt:python", argv, seccomp=None, user="0:0", cap_add=["SYS_ADMIN"]
    )
    assert code == 0, err
    assert json.loads(out.splitlines()[1])["mount"] == 0
    code, out, err = await run_container(
        docker, "isol8rt:python", argv, seccomp=strict_opt(), user="0:0", cap_add=["SYS_ADMIN"]
    )
    assert code == 0, err
    assert json.loads(out.splitlines()[1])["mount"] == errno.EPERM


@pytest.mark.docker
async def test_custom_profile_denying_mkdir(docker, tmp_path):
    path = write_profile(tmp_path, denying("mkdir", "mkdirat", errnoRet=errno.EPERM))
    script = "import os\ntry:\n    os.mkdir('/tmp/d')\n    print('made')\nexcept OSError as exc:\n    print(exc.errno)"
    code, out, err = await run_container(
        docker, "isol8rt:python", ["/usr/bin/python3", "-c", script], seccomp=docker_security_opt(load_profile(path))
    )
    assert (code, out) == (0, f"{errno.EPERM}\n"), err


_PYTHON_WORKLOAD = """
import asyncio, json, multiprocessing, os, socket, subprocess, tempfile, threading
out = {}
with tempfile.TemporaryDirectory() as directory:
    path = os.path.join(directory, "f")
    with open(path, "w") as file:
        file.write("x")
    os.mkfifo(os.path.join(directory, "fifo"))
    out["file"] = open(path).read()
results = []
threads = [threading.Thread(target=results.append, args=(n,)) for n in range(4)]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
out["threads"] = len(results)
out["subprocess"] = subprocess.run(["sh", "-c", "echo hi | cat"], capture_output=True, text=True).stdout
for method in ("fork", "spawn", "forkserver"):
    with multiprocessing.get_context(method).Pool(2) as pool:
        out[method] = pool.map(abs, [-1, -2])
async def child():
    process = await asyncio.create_subprocess_exec("true")
    return await process.wait()
out["asyncio"] = asyncio.run(child())
out["interfaces"] = [name for _, name in socket.if_nameindex()]
print(json.dumps(out))
"""

RUNTIMES = {
    "node": ("isol8rt:node", ["node", "-e", "console.log(1)"], "1\n"),
    "bun": ("isol8rt:bun", ["bun", "-e", "console.log(1)"], "1\n"),
    "deno": ("isol8rt:deno", ["deno", "eval", "console.log(1)"], "1\n"),
    "bash": ("isol8rt:bash", ["bash", "-c", "echo 1 | cat"], "1\n"),
    "python": (
        "isol8rt:python",
        ["/usr/bin/python3", "-c", _PYTHON_WORKLOAD],
        json.dumps({
            "file": "x", "threads": 4, "subprocess": "hi\n", "fork": [1, 2], "spawn": [1, 2],
            "forkserver": [1, 2], "asyncio": 0, "interfaces": ["lo"],
        }) + "\n",
    ),
}  # fmt: skip


@pytest.mark.docker
@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
async def test_runtimes_work_under_strict(docker, runtime):
    image, argv, expected = RUNTIMES[runtime]
    code, out, err = await run_container(
        docker, image, argv, seccomp=strict_opt(), env=["HOME=/tmp", "DENO_DIR=/tmp/deno"]
    )
    assert (code, out) == (0, expected), err


@pytest.mark.docker
@pytest.mark.skipif(host_arch() not in ARCHES, reason="isol8rt compiles for x86_64 and aarch64")
async def test_agent_style_per_run_filter_inside_a_strict_container(docker):
    """The agent's path for real: root in the container with CAP_SETUID/CAP_SETGID, the container
    Python with only the standard library, the host-compiled BPF, the child dropped to 1000:1000."""
    agent = Path(seccomp_filter.__file__).read_text()
    script = (
        f"{agent}\n"
        "import functools, subprocess, sys\n"
        f"prepared = prepare(bytes.fromhex({user_filter_bpf(host_arch()).hex()!r}))\n"
        f"done = subprocess.run([sys.executable, '-I', '-c', {_USER_PROGRAM!r}], user=1000, group=1000,\n"
        "    extra_groups=[], preexec_fn=functools.partial(install_prepared, prepared))\n"
        "sys.exit(done.returncode)\n"
    )
    code, out, err = await run_container(
        docker, "isol8rt:python", ["/usr/bin/python3", "-c", script], seccomp=strict_opt(), user="0:0",
        cap_add=["SETUID", "SETGID", "KILL"],
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out) == {
        "ids": [1000, 1000, []],
        "setuid": errno.EPERM,
        "setgid": errno.EPERM,
        "ptrace": errno.EPERM,
        "personality": errno.EPERM,
    }
