"""What confines user code beyond the container itself: seccomp profiles (:mod:`.seccomp`)."""

from .seccomp import (
    BUILTIN_PROFILES,
    SeccompProfile,
    SyscallRule,
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

__all__ = [
    "BUILTIN_PROFILES",
    "SeccompProfile",
    "SyscallRule",
    "compile_profile",
    "describe",
    "docker_json",
    "docker_security_opt",
    "host_arch",
    "load_profile",
    "parse_profile",
    "rules_for",
    "user_filter_bpf",
]
