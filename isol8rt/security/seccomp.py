"""Seccomp profiles in Docker's JSON format: loading, validating, compiling with libseccomp, describing.

A profile is what Docker accepts through ``SecurityOpt: ["seccomp=<json>"]``. ``strict`` (every sandbox's
default), ``unconfined`` and ``per-run`` (the second filter the agent puts on user code, see
:func:`user_filter_bpf`) ship in the ``profiles/`` data directory; any other name is the path of a user's
file. Loading refuses whatever Docker or runc would refuse or silently ignore: a typo in a key, an action
or a syscall name is an error naming it, not a rule that quietly never applies. (A name libseccomp knows
for some other architecture passes, as in Docker's own profile: each filter keeps its architecture's.)
The last check of a load is a compile with libseccomp, the library runc builds the filter with.

Docker chooses the rules of a profile for the host it runs on: ``includes``/``excludes`` name Docker's
architecture tokens (``amd64``, ``arm64``), capabilities of the container, a minimum kernel. The same
choice is made here for an ``arch`` (``x86_64`` or ``aarch64``) and a capability set, so what is compiled,
described and tested is what runc would load.
"""

from __future__ import annotations

import difflib
import errno
import functools
import os
import re
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Literal, NamedTuple

import msgspec

from .._resources import data_dir
from ..errors import EngineUnavailable, InvalidRequest

if TYPE_CHECKING:
    import pyseccomp

#: The profiles that ship with isol8rt, by name; anything else given to :func:`load_profile` is a path.
BUILTIN_PROFILES = ("strict", "unconfined", "per-run")

Action = Literal[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_LOG",
]
Operator = Literal[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
]
ArchName = Literal[
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_RISCV64",
]
#: The architecture names Docker compares ``includes.arches``/``excludes.arches`` with (its host's
#: libseccomp name); a name outside this list would never match anything.
DockerArch = Literal[
    "x86", "amd64", "x32", "arm", "arm64", "mips", "mipsel", "mips64", "mips64n32", "mipsel64",
    "mipsel64n32", "mips3l64n32", "ppc", "ppc64", "ppc64le", "s390", "s390x", "riscv64",
]  # fmt: skip

# Docker takes uint64 values; msgspec bounds only int64, so values past 2**64 - 1 are refused in _validate.
_Uint64 = Annotated[int, msgspec.Meta(ge=0)]
# The kernel hands back at most MAX_ERRNO from a filter.
_Errno = Annotated[int, msgspec.Meta(ge=0, le=4095)]
_Capability = Annotated[str, msgspec.Meta(pattern=r"^CAP_[A-Z_]+$")]
_KernelVersion = Annotated[str, msgspec.Meta(pattern=r"^[0-9]+\.[0-9]+(\.[0-9]+)?$")]


class _DockerJSON(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True, frozen=True):
    pass


class ArgCondition(_DockerJSON, kw_only=True):
    """A comparison of one syscall argument: ``arg[index] <op> value``; for ``SCMP_CMP_MASKED_EQ``,
    ``arg[index] & value == value_two``."""

    index: Annotated[int, msgspec.Meta(ge=0, le=5)]
    value: _Uint64
    op: Operator
    value_two: _Uint64 = 0


class RuleScope(_DockerJSON, kw_only=True):
    """Where a rule applies (``includes``: all of these hold) or does not (``excludes``: any holds)."""

    arches: list[DockerArch] | None = None
    caps: list[_Capability] | None = None
    min_kernel: _KernelVersion | None = None


class SyscallRule(_DockerJSON, kw_only=True):
    """One entry of ``syscalls``: ``action`` for the named syscalls when every ``args`` condition holds."""

    names: list[str] | None = None
    #: Docker's older spelling of a one-name rule.
    name: str | None = None
    action: Action
    args: list[ArgCondition] | None = None
    errno_ret: _Errno | None = None
    comment: str | None = None
    includes: RuleScope | None = None
    excludes: RuleScope | None = None

    @property
    def syscalls(self) -> list[str]:
        return list(self.names or ()) if self.name is None else [self.name]


class ArchMapEntry(_DockerJSON, kw_only=True):
    architecture: ArchName
    sub_architectures: list[ArchName] | None = None


class SeccompProfile(_DockerJSON, kw_only=True):
    """A seccomp profile as Docker reads it."""

    default_action: Action
    default_errno_ret: _Errno | None = None
    #: Every architecture listed goes into the filter, whatever the host.
    architectures: list[ArchName] | None = None
    #: Only the host's entry counts: its architecture and sub-architectures go into the filter.
    arch_map: list[ArchMapEntry] | None = None
    syscalls: list[SyscallRule] | None = None

    @property
    def is_denylist(self) -> bool:
        """True when what no rule names is permitted: the rules list what is refused."""
        return self.default_action in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG")

    @property
    def is_unconfined(self) -> bool:
        """True when the profile filters nothing (Docker's ``seccomp=unconfined`` does the same)."""
        return self.default_action == "SCMP_ACT_ALLOW" and not self.syscalls


class _Platform(NamedTuple):
    """A host architecture isol8rt runs on, in each vocabulary it has."""

    name: str  # what uname says
    arch: ArchName  # libseccomp's
    docker: DockerArch  # Docker's includes/excludes token
    compat: ArchName  # the 32-bit ABI its kernel also runs


_PLATFORMS = {
    "x86_64": _Platform("x86_64", "SCMP_ARCH_X86_64", "amd64", "SCMP_ARCH_X86"),
    "aarch64": _Platform("aarch64", "SCMP_ARCH_AARCH64", "arm64", "SCMP_ARCH_ARM"),
}

_OPERATORS = {
    "SCMP_CMP_NE": "NE",
    "SCMP_CMP_LT": "LT",
    "SCMP_CMP_LE": "LE",
    "SCMP_CMP_EQ": "EQ",
    "SCMP_CMP_GE": "GE",
    "SCMP_CMP_GT": "GT",
    "SCMP_CMP_MASKED_EQ": "MASKED_EQ",
}
_OPERATOR_SYMBOLS = {
    "SCMP_CMP_NE": "!=",
    "SCMP_CMP_LT": "<",
    "SCMP_CMP_LE": "<=",
    "SCMP_CMP_EQ": "==",
    "SCMP_CMP_GE": ">=",
    "SCMP_CMP_GT": ">",
}
_FIXED_ACTIONS = {
    "SCMP_ACT_ALLOW": "ALLOW",
    "SCMP_ACT_KILL": "KILL",
    "SCMP_ACT_KILL_THREAD": "KILL_THREAD",
    "SCMP_ACT_KILL_PROCESS": "KILL_PROCESS",
    "SCMP_ACT_TRAP": "TRAP",
    "SCMP_ACT_LOG": "LOG",
}
_ERRNO_ACTIONS = {"SCMP_ACT_ERRNO": "ERRNO", "SCMP_ACT_TRACE": "TRACE"}


#: Said when libseccomp cannot be loaded; exported for the tests and the CLI, which name the remedy too.
LIBSECCOMP_MISSING = (
    "libseccomp is needed to run sandboxes on this machine (it compiles their seccomp filters) and cannot be "
    "loaded: {reason}. Install it (Debian/Ubuntu: apt-get install libseccomp2; Fedora: dnf install "
    "libseccomp), or use an isol8rt server through RemoteIsol8, which needs none")


@functools.cache
def _lib() -> ModuleType:
    """pyseccomp, imported on first use: it loads libseccomp when imported, and only a local engine (or a
    profile being compiled) needs that. A client-only machine, using RemoteIsol8, may not have it."""
    try:
        import pyseccomp
    except (ImportError, OSError, RuntimeError) as exc:  # RuntimeError: pyseccomp's "Unable to find libseccomp"
        raise EngineUnavailable(LIBSECCOMP_MISSING.format(reason=exc)) from None
    return pyseccomp


def require_libseccomp() -> None:
    """Raise :class:`~isol8rt.errors.EngineUnavailable`, saying what to install, when libseccomp cannot be
    loaded. A local engine calls it before it talks to Docker, so the error comes first and plainly."""
    _lib()

# libseccomp's answer for a name it has never heard of; names it knows for other architectures only
# resolve to negative "pseudo" numbers below this.
_NR_SCMP_ERROR = -1


def _native_number(name: str) -> int:
    """``name``'s number for this machine, a negative "pseudo" number when only other architectures
    have it (libseccomp translates those by name for each filter), or _NR_SCMP_ERROR."""
    lib = _lib()
    return lib.resolve_syscall(lib.Arch.NATIVE, name)


_DECODER = msgspec.json.Decoder(SeccompProfile)
_ENCODER = msgspec.json.Encoder()
_BPF_CACHE: dict[tuple[bytes, str, tuple[str, ...]], bytes] = {}


# --------------------------------------------------------------------------------------------------
# loading


def load_profile(name_or_path: str) -> SeccompProfile:
    """The profile ``name_or_path`` names: a builtin (:data:`BUILTIN_PROFILES`) or a JSON file.

    Raises :class:`InvalidRequest` naming the profile and the first thing wrong with it.
    """
    if name_or_path in BUILTIN_PROFILES:
        path = data_dir("profiles") / f"{name_or_path}.json"
    else:
        path = Path(name_or_path).expanduser()
    try:
        return _load(path)
    except InvalidRequest as exc:
        raise InvalidRequest(f"profile {name_or_path}: {exc}") from None


@functools.lru_cache(maxsize=32)
def _load_cached(path: Path, mtime_ns: int, size: int) -> SeccompProfile:
    return parse_profile(path.read_bytes())


def _load(path: Path) -> SeccompProfile:
    try:
        stat = path.stat()
        if not path.is_file():
            raise InvalidRequest("not a regular file")
        return _load_cached(path.resolve(), stat.st_mtime_ns, stat.st_size)
    except OSError as exc:
        hint = f" (builtin profiles: {', '.join(BUILTIN_PROFILES)})" if isinstance(exc, FileNotFoundError) else ""
        raise InvalidRequest(f"cannot read it: {exc.strerror}{hint}") from None


def parse_profile(text: bytes | str) -> SeccompProfile:
    """Decode and validate a profile's JSON text (see :func:`load_profile`)."""
    try:
        profile = _DECODER.decode(text)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid profile: {exc}") from None
    except msgspec.DecodeError as exc:
        message = str(exc).removeprefix("JSON is malformed: ")
        raise InvalidRequest(f"invalid JSON: {_with_line_and_column(message, text)}") from None
    _validate(profile)
    host = _PLATFORMS.get(host_arch())
    if host is not None:
        compile_profile(profile, host.name)
    return profile


def _with_line_and_column(message: str, text: bytes | str) -> str:
    """msgspec reports the byte offset of a syntax error; people look for lines."""
    found = re.search(r"\(byte (\d+)\)$", message)
    if found is None:
        return message
    data = text.encode() if isinstance(text, str) else text
    before = data[: int(found.group(1))]
    line = before.count(b"\n") + 1
    column = len(before) - (before.rfind(b"\n") + 1) + 1
    return f"{message[: found.start()].rstrip()} at line {line}, column {column}"


def _validate(profile: SeccompProfile) -> None:
    if profile.architectures and profile.arch_map:
        raise InvalidRequest("both 'architectures' and 'archMap' are given (Docker takes one or the other)")
    if profile.default_errno_ret is not None and profile.default_action not in _ERRNO_ACTIONS:
        raise InvalidRequest("'defaultErrnoRet' needs defaultAction SCMP_ACT_ERRNO or SCMP_ACT_TRACE")
    for index, rule in enumerate(profile.syscalls or ()):
        where = f"$.syscalls[{index}]"
        if rule.name is not None and rule.names:
            raise InvalidRequest(f"both 'name' and 'names' are given at `{where}`")
        if not rule.syscalls:
            raise InvalidRequest(f"the rule at `{where}` names no syscall")
        if rule.errno_ret is not None and rule.action not in _ERRNO_ACTIONS:
            raise InvalidRequest(f"'errnoRet' needs action SCMP_ACT_ERRNO or SCMP_ACT_TRACE at `{where}`")
        for position, arg in enumerate(rule.args or ()):
            if arg.value >= 2**64 or arg.value_two >= 2**64:
                raise InvalidRequest(f"an argument value does not fit in 64 bits at `{where}.args[{position}]`")
        for position, name in enumerate(rule.syscalls):
            if _native_number(name) == _NR_SCMP_ERROR:
                at = f"{where}.name" if rule.name is not None else f"{where}.names[{position}]"
                raise InvalidRequest(_unknown_syscall(name, _reach(profile, rule), at))


def _reach(profile: SeccompProfile, rule: SyscallRule) -> list[ArchName]:
    """The architectures a rule's syscalls go into a filter for, on the hosts isol8rt runs on."""
    reach: list[ArchName] = []
    for platform in _PLATFORMS.values():
        if _scope_allows_arch(rule, platform.docker):
            reach.extend(arch for arch in _filter_arches(profile, platform) if arch not in reach)
    return reach


def _unknown_syscall(name: str, arches: list[ArchName], where: str) -> str:
    readable = [arch.removeprefix("SCMP_ARCH_").lower() for arch in arches] or ["any architecture"]
    listed = readable[0] if len(readable) == 1 else f"{', '.join(readable[:-1])} and {readable[-1]}"
    close = difflib.get_close_matches(name, _known_names(), n=1)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    return f'unknown syscall "{name}" for {listed} (at `{where}`){hint}'


@functools.cache
def _known_names() -> tuple[str, ...]:
    names = set()
    for platform in _PLATFORMS.values():
        for arch in (platform.arch, platform.compat):
            for number in range(1024):
                try:
                    names.add(_lib().resolve_syscall(_arch_token(arch), number).decode())
                except ValueError:
                    continue
    return tuple(sorted(names))


# --------------------------------------------------------------------------------------------------
# choosing the rules for a host, as Docker does


def host_arch() -> str:
    """This machine's architecture, as :func:`compile_profile` names it."""
    machine = os.uname().machine
    return "aarch64" if machine == "arm64" else machine


def _platform(arch: str) -> _Platform:
    try:
        return _PLATFORMS[arch]
    except KeyError:
        raise InvalidRequest(f"unsupported architecture {arch!r} (supported: {', '.join(_PLATFORMS)})") from None


def _arch_token(arch: ArchName) -> int:
    return getattr(_lib().Arch, arch.removeprefix("SCMP_ARCH_"))


def _filter_arches(profile: SeccompProfile, platform: _Platform) -> list[ArchName]:
    """The architectures in the filter runc builds on ``platform``: its own, plus what the profile adds."""
    arches: list[ArchName] = [platform.arch]
    if profile.architectures:
        extra = profile.architectures
    else:
        entry = next((e for e in profile.arch_map or () if e.architecture == platform.arch), None)
        extra = (entry.sub_architectures or []) if entry is not None else []
    arches.extend(arch for arch in extra if arch not in arches)
    return arches


def _scope_allows_arch(rule: SyscallRule, docker_arch: str) -> bool:
    if rule.excludes is not None and docker_arch in (rule.excludes.arches or ()):
        return False
    return not (rule.includes is not None and rule.includes.arches and docker_arch not in rule.includes.arches)


def _kernel_at_least(version: str) -> bool:
    def numbers(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", text)[:3])

    return numbers(os.uname().release) >= numbers(version)


def _applies(rule: SyscallRule, platform: _Platform, caps: frozenset[str]) -> bool:
    if not _scope_allows_arch(rule, platform.docker):
        return False
    excludes, includes = rule.excludes, rule.includes
    if excludes is not None:
        if any(cap in caps for cap in excludes.caps or ()):
            return False
        if excludes.min_kernel and _kernel_at_least(excludes.min_kernel):
            return False
    if includes is not None:
        if any(cap not in caps for cap in includes.caps or ()):
            return False
        if includes.min_kernel and not _kernel_at_least(includes.min_kernel):
            return False
    return True


def _applicable(profile: SeccompProfile, platform: _Platform, caps: Iterable[str]) -> Iterator[tuple[int, SyscallRule]]:
    granted = frozenset(caps)
    for index, rule in enumerate(profile.syscalls or ()):
        if _applies(rule, platform, granted):
            yield index, rule


def rules_for(profile: SeccompProfile, arch: str = "x86_64", caps: Iterable[str] = ()) -> list[SyscallRule]:
    """The rules Docker keeps on an ``arch`` host for a container whose capabilities are ``caps``
    (names like ``CAP_SYS_ADMIN``; a sandbox's user code has none)."""
    return [rule for _, rule in _applicable(profile, _platform(arch), caps)]


# --------------------------------------------------------------------------------------------------
# compiling


def _action(name: str, errno_ret: int | None) -> int:
    if name in _ERRNO_ACTIONS:
        # runc's choice when a profile gives no errno.
        return getattr(_lib(), _ERRNO_ACTIONS[name])(errno.EPERM if errno_ret is None else errno_ret)
    return getattr(_lib(), _FIXED_ACTIONS[name])


def _condition_groups(rule: SyscallRule) -> list[list[pyseccomp.Arg]]:
    """The conditions to add a rule with. libseccomp takes one comparison per argument in a rule; runc
    splits a rule that compares one argument twice into one rule per comparison (any may match), and
    so does this."""
    lib = _lib()
    conditions = [lib.Arg(arg.index, getattr(lib, _OPERATORS[arg.op]), arg.value, arg.value_two) for arg in rule.args or ()]
    indexes = [arg.index for arg in rule.args or ()]
    if len(set(indexes)) < len(indexes):
        return [[condition] for condition in conditions]
    return [conditions]


def compile_profile(profile: SeccompProfile, arch: str = "x86_64", caps: Iterable[str] = ()) -> bytes:
    """The classic-BPF program libseccomp makes of ``profile`` for an ``arch`` host (``x86_64`` or
    ``aarch64``) and a container with capabilities ``caps``: what ``prctl(PR_SET_SECCOMP)`` loads.

    Rules whose action is the default action are left out, as runc does (libseccomp refuses them).
    Cached by the profile's content.
    """
    platform = _platform(arch)
    granted = tuple(sorted(set(caps)))
    key = (_ENCODER.encode(profile), platform.name, granted)
    bpf = _BPF_CACHE.get(key)
    if bpf is None:
        bpf = _BPF_CACHE[key] = _compile(profile, platform, granted)
    return bpf


def _compile(profile: SeccompProfile, platform: _Platform, caps: tuple[str, ...]) -> bytes:
    default = _action(profile.default_action, profile.default_errno_ret)
    seccomp_filter = _lib().SyscallFilter(default)
    wanted = [_arch_token(arch) for arch in _filter_arches(profile, platform)]
    for token in wanted:
        if not seccomp_filter.exist_arch(token):
            seccomp_filter.add_arch(token)
    native = _lib().system_arch()
    if native not in wanted:
        seccomp_filter.remove_arch(native)
    for index, rule in _applicable(profile, platform, caps):
        action = _action(rule.action, rule.errno_ret)
        if action == default:
            continue
        groups = _condition_groups(rule)
        for name in rule.syscalls:
            number = _native_number(name)
            if number == _NR_SCMP_ERROR:
                raise InvalidRequest(_unknown_syscall(name, [], f"$.syscalls[{index}]"))
            for conditions in groups:
                try:
                    seccomp_filter.add_rule(action, number, *conditions)
                except OSError as exc:
                    raise InvalidRequest(
                        f'libseccomp refuses the rule for "{name}" at `$.syscalls[{index}]`: {exc.strerror}'
                    ) from None
    return _export_bpf(seccomp_filter)


def _export_bpf(seccomp_filter: pyseccomp.SyscallFilter) -> bytes:
    fd = os.memfd_create("isol8rt-seccomp-bpf", os.MFD_CLOEXEC)
    with open(fd, "w+b", buffering=0) as file:
        seccomp_filter.export_bpf(file)
        file.seek(0)
        return file.read()


def user_filter_bpf(arch: str = "x86_64") -> bytes:
    """The second filter, put on user code by the agent just before exec (on top of the container's
    profile): the ``per-run`` profile compiled for ``arch``. Load it with
    :mod:`isol8rt.agent.seccomp_filter`."""
    return compile_profile(load_profile("per-run"), arch)


# --------------------------------------------------------------------------------------------------
# handing it to Docker


def docker_json(profile: SeccompProfile) -> str:
    """The profile as compact JSON for ``SecurityOpt: ["seccomp=<json>"]`` (comments left out: Docker
    ignores them, and the text is stored with every container)."""
    rules = [msgspec.structs.replace(rule, comment=None) for rule in profile.syscalls or ()]
    return _ENCODER.encode(msgspec.structs.replace(profile, syscalls=rules)).decode()


def docker_security_opt(profile: SeccompProfile) -> str:
    """The ``SecurityOpt`` entry for ``profile``: Docker's own ``seccomp=unconfined`` for a profile that
    filters nothing (no filter at all rather than one that allows everything), the JSON otherwise."""
    return "seccomp=unconfined" if profile.is_unconfined else f"seccomp={docker_json(profile)}"


# --------------------------------------------------------------------------------------------------
# describing


def _errno_name(number: int) -> str:
    return errno.errorcode.get(number, str(number))


def _action_text(name: str, errno_ret: int | None) -> str:
    if name not in _ERRNO_ACTIONS:
        return name
    return f"{name}({_errno_name(errno.EPERM if errno_ret is None else errno_ret)})"


def _condition_text(arg: ArgCondition) -> str:
    if arg.op == "SCMP_CMP_MASKED_EQ":
        return f"arg{arg.index} & {arg.value:#x} == {arg.value_two:#x}"
    return f"arg{arg.index} {_OPERATOR_SYMBOLS[arg.op]} {arg.value:#x}"


def _wrapped(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, width=100, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def describe(profile: SeccompProfile, arch: str | None = None, caps: Iterable[str] = ()) -> str:
    """The rules of ``profile`` that apply on an ``arch`` host (default: this one) to a container with
    capabilities ``caps``, for people: the default, the architectures, each rule with its syscalls
    (sorted) and argument conditions, and counts."""
    platform = _platform(arch or host_arch())
    caps = tuple(caps)
    default = _action_text(profile.default_action, profile.default_errno_ret)
    kind = "denylist: what no rule names is allowed" if profile.is_denylist else "allowlist: what no rule names fails"
    all_rules = profile.syscalls or []
    applicable = list(_applicable(profile, platform, caps))
    lines = [
        f"default action: {default} ({kind})",
        f"architectures in the filter on {platform.name}: {', '.join(_filter_arches(profile, platform))}",
        f"rules on {platform.name}: {len(applicable)} of {len(all_rules)}"
        + (f" (capabilities: {', '.join(sorted(caps))})" if caps else ""),
    ]
    unconditional: dict[str, set[str]] = {}
    conditional: dict[str, set[str]] = {}
    for index, rule in applicable:
        action = _action_text(rule.action, rule.errno_ret)
        names = sorted(rule.syscalls)
        conditions = [_condition_text(arg) for arg in rule.args or ()]
        joiner = " or " if len(_condition_groups(rule)) > 1 else " and "
        when = f" when {joiner.join(conditions)}" if conditions else ""
        lines.append("")
        dropped = " (the default action: runc drops the rule)" if action == default else ""
        lines.append(f"[{index}] {action}, {_count(len(names), 'syscall')}{when}{dropped}")
        if rule.comment:
            lines.extend(_wrapped(rule.comment, "    # "))
        lines.extend(_wrapped(" ".join(names), "    "))
        (conditional if conditions else unconditional).setdefault(action, set()).update(names)
    lines.append("")
    for action in sorted(set(unconditional) | set(conditional)):
        always = unconditional.get(action, set())
        sometimes = conditional.get(action, set()) - always
        extra = f", {len(sometimes)} more only under argument conditions" if sometimes else ""
        lines.append(f"{action}: {_count(len(always), 'syscall')}{extra}")
    lines.append(f"anything else: {default}")
    return "\n".join(lines)
