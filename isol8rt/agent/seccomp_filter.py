"""Putting the per-run seccomp filter on a user process, inside the container, with the standard library
only: the image has no libseccomp. The host compiles the filter (``isol8rt.security.seccomp.
user_filter_bpf``) and the agent loads the resulting BPF program as it is.

The filter goes on in the forked child just before exec (``preexec_fn``), after subprocess has dropped
the child to the sandbox user: everything that can allocate or fail for a reason other than the kernel
refusing the filter happens once, in the parent, in :func:`prepare`. The child only makes two prctl
calls (:func:`install_prepared`). Filters stack and are inherited across fork and exec, so nothing the
user's program starts can shed it.
"""

from __future__ import annotations

import ctypes
import os

PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2

# struct sock_filter is 8 bytes (u16 code, u8 jt, u8 jf, u32 k); the kernel takes at most BPF_MAXINSNS.
_INSTRUCTION_SIZE = 8
_MAX_INSTRUCTIONS = 4096


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class PreparedFilter:
    """A BPF program laid out for the kernel, and the prctl function to hand it over with. Keep it
    alive until the child has exec'd: the kernel reads the program from this object's memory."""

    __slots__ = ("_program", "_fprog", "fprog_address", "prctl")

    def __init__(self, bpf: bytes) -> None:
        if not bpf or len(bpf) % _INSTRUCTION_SIZE or len(bpf) // _INSTRUCTION_SIZE > _MAX_INSTRUCTIONS:
            raise ValueError(
                f"not a seccomp BPF program: {len(bpf)} bytes (want 1 to {_MAX_INSTRUCTIONS} "
                f"instructions of {_INSTRUCTION_SIZE} bytes)"
            )
        self._program = ctypes.create_string_buffer(bpf, len(bpf))
        self._fprog = _SockFprog(len(bpf) // _INSTRUCTION_SIZE, ctypes.addressof(self._program))
        self.fprog_address = ctypes.addressof(self._fprog)
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
        prctl.restype = ctypes.c_int
        self.prctl = prctl


def prepare(bpf: bytes) -> PreparedFilter:
    """Lay ``bpf`` (libseccomp's exported program) out for :func:`install_prepared`; done once, in the
    parent. Raises ValueError when ``bpf`` cannot be a filter program."""
    return PreparedFilter(bpf)


def install_prepared(prepared: PreparedFilter) -> None:
    """Put the filter on the calling process (and every process it starts). Raises OSError when the
    kernel refuses: under a ``preexec_fn`` that fails the spawn, so no user code runs unfiltered.

    No-new-privileges comes first: the kernel requires it of a process without CAP_SYS_ADMIN (Docker's
    ``no-new-privileges`` has set it already).
    """
    prctl = prepared.prctl
    if (
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
        or prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prepared.fprog_address, 0, 0) != 0
    ):
        code = ctypes.get_errno()
        raise OSError(code, f"installing the seccomp filter failed: {os.strerror(code)}")


def install(bpf: bytes) -> None:
    """Prepare and install ``bpf`` on the calling process in one go."""
    install_prepared(prepare(bpf))
