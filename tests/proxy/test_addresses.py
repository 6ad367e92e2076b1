"""Address classification, sans-io: what is public and what is not, IPv6 forms of IPv4 included."""

from __future__ import annotations

import ipaddress

import pytest

from isol8rt_proxy.addresses import classify, embedded_ipv4, parse

NOT_PUBLIC = {
    "127.0.0.1": "loopback",
    "127.255.0.9": "loopback",
    "10.0.0.1": "RFC 1918",
    "172.16.0.1": "RFC 1918",
    "172.31.255.254": "RFC 1918",
    "192.168.1.1": "RFC 1918",
    "169.254.169.254": "link-local",
    "100.64.0.1": "shared address space",
    "100.127.255.255": "shared address space",
    "0.0.0.0": "unspecified",
    "0.1.2.3": "unspecified",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "198.18.0.1": "benchmarking",
    "::1": "loopback",
    "::": "unspecified",
    "fc00::1": "unique-local",
    "fd12:3456::1": "unique-local",
    "fe80::1": "link-local",
    "fec0::1": "site-local",
    "ff02::1": "multicast",
    "2001::1": "reserved",  # Teredo
    "100::1": "discard-only",
    "::127.0.0.1": "reserved",  # IPv4-compatible, long deprecated
    "4000::1": "reserved",  # outside global unicast 2000::/3
    # IPv6 spellings of IPv4 destinations are judged by the IPv4 address.
    "::ffff:127.0.0.1": "loopback, in IPv6",
    "::ffff:10.1.2.3": "RFC 1918, in IPv6",
    "::ffff:169.254.169.254": "link-local, in IPv6",
    "64:ff9b::a9fe:a9fe": "link-local, in IPv6",  # NAT64 169.254.169.254
    "2002:7f00:1::1": "loopback, in IPv6",  # 6to4 127.0.0.1
}

PUBLIC = ["93.184.216.34", "8.8.8.8", "203.0.113.80", "2001:db8::1", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1",
          "2a00:1450:4001::200e", "::ffff:93.184.216.34", "64:ff9b::808:808"]  # fmt: skip


@pytest.mark.parametrize(("address", "kind"), sorted(NOT_PUBLIC.items()))
def test_not_public(address, kind):
    assert classify(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize("address", PUBLIC)
def test_public(address):
    assert classify(ipaddress.ip_address(address)) is None


def test_embedded_ipv4():
    assert embedded_ipv4(ipaddress.ip_address("::ffff:1.2.3.4")) == ipaddress.IPv4Address("1.2.3.4")
    assert embedded_ipv4(ipaddress.ip_address("64:ff9b::102:304")) == ipaddress.IPv4Address("1.2.3.4")
    assert embedded_ipv4(ipaddress.ip_address("2002:102:304::1")) == ipaddress.IPv4Address("1.2.3.4")
    assert embedded_ipv4(ipaddress.ip_address("2606:4700::1")) is None
    assert embedded_ipv4(ipaddress.ip_address("1.2.3.4")) is None


def test_parse_drops_zone():
    assert parse("fe80::1%eth0") == ipaddress.ip_address("fe80::1")
    assert parse("10.0.0.1") == ipaddress.ip_address("10.0.0.1")
