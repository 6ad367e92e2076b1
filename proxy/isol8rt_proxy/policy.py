"""The egress policy: which destinations the sandbox may reach. Pure decisions, no I/O.

A request passes four checks, in this order, and the first that fails refuses it with a reason:

1. the hostname against the deny list, then the allow list. Each entry is a Python ``re`` pattern applied
   with ``re.search`` to the hostname, lowercased, without port, brackets or a trailing dot
   (``api.example.com``, ``93.184.216.34``, ``::1``), and compiled with ``re.IGNORECASE`` so that a
   pattern written in capitals still means the name. ``re.search`` finds a match anywhere, so anchor the
   pattern to mean a whole name: ``(^|\\.)example\\.com$`` is example.com and its subdomains, while a bare
   ``example\\.com`` also matches ``example.com.evil.net``. Deny wins over allow; an empty allow list
   allows every host the deny list does not refuse.
2. the port: CONNECT tunnels only to ``connect_ports`` (443 and 80 unless set), plain HTTP to 80, 443
   and every port in ``connect_ports``.
3. (after resolution) every address the name resolved to: loopback, RFC 1918, link-local (cloud metadata
   at 169.254.169.254 included), CGNAT, multicast, unspecified, reserved, IPv6 unique-local and link-local
   addresses, and IPv6 forms of any of these, are refused unless a CIDR of ``allow_private`` holds them.
   The proxy connects only to addresses that passed, so DNS cannot switch the answer between check and
   connect. IP-literal hosts are checked the same way.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from isol8rt.agent.proxy_protocol import DEFAULT_CONNECT_PORTS
from isol8rt_proxy import addresses
from isol8rt_proxy.addresses import IPAddress, IPNetwork


#: Plain-HTTP requests may always use these, whatever ``connect_ports`` says.
HTTP_PORTS = frozenset({80, 443})


class PolicyError(ValueError):
    """A policy that cannot be put in force: its message names the offending entry."""


class Policy:
    """A compiled policy. Immutable: a change of policy is a new instance swapped in whole."""

    __slots__ = ("_allow", "_deny", "_allow_private", "connect_ports", "http_ports")

    def __init__(
        self,
        allow: Iterable[str] = (),
        deny: Iterable[str] = (),
        allow_private: Iterable[str] = (),
        connect_ports: Iterable[int] = DEFAULT_CONNECT_PORTS,
    ) -> None:
        self._allow = tuple(_compile(pattern) for pattern in allow)
        self._deny = tuple(_compile(pattern) for pattern in deny)
        self._allow_private = tuple(_network(cidr) for cidr in allow_private)
        self.connect_ports = frozenset(_port(port) for port in connect_ports)
        self.http_ports = HTTP_PORTS | self.connect_ports

    def check_host(self, host: str) -> str | None:
        """Why ``host`` (normalised as in the module docstring) is refused, or None if it may go on."""
        if any(pattern.search(host) for pattern in self._deny):
            return "blocked by deny list"
        if self._allow and not any(pattern.search(host) for pattern in self._allow):
            return "not in allow list"
        return None

    def check_port(self, port: int, *, tunnel: bool) -> str | None:
        """Why ``port`` is refused for a CONNECT tunnel (``tunnel``) or a plain-HTTP request, or None."""
        allowed = self.connect_ports if tunnel else self.http_ports
        return None if port in allowed else f"port {port} not allowed"

    def check_address(self, address: IPAddress) -> str | None:
        """Why connecting to ``address`` is refused, or None if it is public or explicitly allowed."""
        kind = addresses.classify(address)
        if kind is None or self._private_allowed(address):
            return None
        return f"private address {address} not allowed ({kind})"

    def _private_allowed(self, address: IPAddress) -> bool:
        # An allowed 127.0.0.1/32 also allows ::ffff:127.0.0.1: it is the same destination.
        inner = addresses.embedded_ipv4(address)
        return any(address in network or (inner is not None and inner in network) for network in self._allow_private)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise PolicyError(f"invalid regex {pattern!r}: {exc}") from None


def _network(cidr: str) -> IPNetwork:
    try:
        # Not strict: "10.1.2.3/8" means 10.0.0.0/8, as ip route would take it; a bare address is a /32.
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError as exc:
        raise PolicyError(f"invalid CIDR {cidr!r}: {exc}") from None


def _port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise PolicyError(f"invalid port {port!r}")
    return port
