"""Which IP addresses are not on the public internet, and what they are instead.

The documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are left out on
purpose: nothing of the operator's lives there, and some sites' intercepting proxies answer DNS with
them (this project's CI machines resolve the package registries to 203.0.113.x), which would otherwise
make filtered mode unusable there.

An explicit table rather than ``ipaddress``'s ``is_private``/``is_global``: those changed meaning between
Python releases (3.11.10 and 3.12.4 fixed how they treat IPv4-mapped and several reserved blocks), and the
container's python3 is whatever Debian ships. Here the answer cannot move under us.

IPv6 forms that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d`` and 6to4
``2002:AABB:CCDD::``) are judged by the IPv4 address they lead to: ``::ffff:127.0.0.1`` is loopback.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _table(*rows: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), kind) for cidr, kind in rows)


_IPV4 = _table(
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "RFC 1918"),
    ("100.64.0.0/10", "shared address space"),  # carrier-grade NAT
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),  # 169.254.169.254 is the cloud metadata service
    ("172.16.0.0/12", "RFC 1918"),
    ("192.0.0.0/24", "reserved"),
    ("192.88.99.0/24", "reserved"),  # the retired 6to4 relay anycast
    ("192.168.0.0/16", "RFC 1918"),
    ("198.18.0.0/15", "benchmarking"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),  # with 255.255.255.255, the broadcast address
)

# Looked up after the embedded-IPv4 forms below, so ``::/8`` does not swallow ``::ffff:0:0/96``.
_IPV6 = _table(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/8", "reserved"),  # IPv4-compatible and other early assignments
    ("64:ff9b:1::/48", "reserved"),  # local-use NAT64: leads wherever the local translator says
    ("100::/64", "discard-only"),
    ("2001::/23", "reserved"),  # IETF protocol assignments, Teredo among them
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)

_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64 or 6to4), if any."""
    if address.version == 4:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def classify(address: IPAddress) -> str | None:
    """What kind of non-public address this is (``"loopback"``, ``"RFC 1918"``...), or None if public."""
    inner = embedded_ipv4(address)
    if inner is not None:
        kind = classify(inner)
        return None if kind is None else f"{kind}, in IPv6"
    table = _IPV4 if address.version == 4 else _IPV6
    for network, kind in table:
        if address in network:
            return kind
    if address.version == 6 and address not in _GLOBAL_UNICAST:
        return "reserved"
    return None


def parse(text: str) -> IPAddress:
    """An address as getaddrinfo reports it; an IPv6 zone (``fe80::1%eth0``) is dropped, not kept."""
    return ipaddress.ip_address(text.partition("%")[0])
