"""The firewall of filtered networking, inside the container: it leaves the sandbox user nothing but
loopback (where the proxy listens).

The rules live in the container's own network namespace, written with nft while the agent still holds
CAP_NET_ADMIN; the agent then drops that capability for good. Rules match the socket's owner, so they
hold for every process of the sandbox user, whatever it does with HTTP_PROXY: no TCP or UDP (so no DNS),
no ICMP, IPv4 and IPv6 alike, except to loopback. Nothing may reach in from the bridge either.
"""

from __future__ import annotations

import ctypes
import subprocess

_CAP_NET_ADMIN = 12
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def firewall_rules(sandbox_uid: int) -> str:
    return f"""
table inet isol8rt {{
    chain output {{
        type filter hook output priority 0; policy accept;
        oifname "lo" accept
        meta skuid {sandbox_uid} counter reject
        meta skuid 0 counter reject
    }}
    chain input {{
        type filter hook input priority 0; policy drop;
        iifname "lo" accept
        ct state established,related accept
    }}
}}
"""


def apply_firewall(sandbox_uid: int) -> None:
    """Install the rules (needs CAP_NET_ADMIN); raises OSError with nft's message when it cannot."""
    done = subprocess.run(["nft", "-f", "-"], input=firewall_rules(sandbox_uid).encode(), capture_output=True,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    if done.returncode != 0:
        raise OSError(f"nft failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capability(capability: int = _CAP_NET_ADMIN) -> None:
    """Remove a capability from this process's effective, permitted and inheritable sets: once gone from
    the permitted set, nothing we start later can have it either."""
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    word, bit = divmod(capability, 32)
    mask = ~(1 << bit) & 0xFFFFFFFF
    data[word].effective &= mask
    data[word].permitted &= mask
    data[word].inheritable &= mask
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
