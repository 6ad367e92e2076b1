"""Policy decisions, sans-io: host lists, ports, resolved addresses."""

from __future__ import annotations

import ipaddress

import pytest

from isol8rt_proxy.policy import Policy, PolicyError


def test_empty_allow_list_allows_every_host():
    policy = Policy()
    assert policy.check_host("example.com") is None
    assert policy.check_host("anything.test") is None


def test_allow_list_limits_hosts():
    policy = Policy(allow=[r"(^|\.)example\.com$"])
    assert policy.check_host("example.com") is None
    assert policy.check_host("api.example.com") is None
    assert policy.check_host("example.org") == "not in allow list"
    assert policy.check_host("notexample.com") == "not in allow list"


def test_deny_beats_allow():
    policy = Policy(allow=[r"example\.com$"], deny=[r"^secret\.example\.com$"])
    assert policy.check_host("www.example.com") is None
    assert policy.check_host("secret.example.com") == "blocked by deny list"


def test_deny_alone():
    policy = Policy(deny=[r"evil"])
    assert policy.check_host("evil.net") == "blocked by deny list"
    assert policy.check_host("good.net") is None


def test_patterns_use_search_so_anchoring_is_up_to_the_pattern():
    unanchored = Policy(allow=[r"example\.com"])
    assert unanchored.check_host("example.com.evil.net") is None  # documented: search, not fullmatch
    anchored = Policy(allow=[r"^example\.com$"])
    assert anchored.check_host("example.com.evil.net") == "not in allow list"
    assert anchored.check_host("www.example.com") == "not in allow list"


def test_case_insensitive_patterns():
    # Hosts arrive lowercased; a pattern written in capitals still means the name.
    assert Policy(deny=[r"^Evil\.COM$"]).check_host("evil.com") == "blocked by deny list"
    assert Policy(allow=[r"^Example\.com$"]).check_host("example.com") is None


def test_ports():
    policy = Policy()
    assert policy.check_port(443, tunnel=True) is None
    assert policy.check_port(80, tunnel=True) is None
    assert policy.check_port(22, tunnel=True) == "port 22 not allowed"
    assert policy.check_port(8080, tunnel=False) == "port 8080 not allowed"
    custom = Policy(connect_ports=[8443])
    assert custom.check_port(443, tunnel=True) == "port 443 not allowed"  # replaces the defaults
    assert custom.check_port(8443, tunnel=True) is None
    # Plain HTTP: 80 and 443 always, plus the configured ports.
    assert custom.check_port(80, tunnel=False) is None
    assert custom.check_port(443, tunnel=False) is None
    assert custom.check_port(8443, tunnel=False) is None
    assert custom.check_port(8080, tunnel=False) == "port 8080 not allowed"


def ip(text):
    return ipaddress.ip_address(text)


def test_private_addresses_refused_with_reason():
    policy = Policy()
    assert policy.check_address(ip("10.0.0.1")) == "private address 10.0.0.1 not allowed (RFC 1918)"
    assert policy.check_address(ip("127.0.0.1")) == "private address 127.0.0.1 not allowed (loopback)"
    assert policy.check_address(ip("169.254.169.254")).startswith("private address 169.254.169.254 not allowed")
    assert policy.check_address(ip("::ffff:127.0.0.1")).startswith("private address ::ffff:7f00:1 not allowed")
    assert policy.check_address(ip("93.184.216.34")) is None
    assert policy.check_address(ip("2606:4700::1")) is None


def test_allow_private():
    policy = Policy(allow_private=["127.0.0.1/32", "10.1.0.0/16", "fd00::/8"])
    assert policy.check_address(ip("127.0.0.1")) is None
    assert policy.check_address(ip("::ffff:127.0.0.1")) is None  # the same destination
    assert policy.check_address(ip("127.0.0.2")) is not None
    assert policy.check_address(ip("10.1.200.3")) is None
    assert policy.check_address(ip("10.2.0.1")) is not None
    assert policy.check_address(ip("fd00::5")) is None
    assert policy.check_address(ip("::1")) is not None
    # Host bits are tolerated (10.1.2.3/8 is 10.0.0.0/8), a bare address is a /32.
    assert Policy(allow_private=["10.9.9.9/8"]).check_address(ip("10.200.0.1")) is None
    assert Policy(allow_private=["192.168.1.1"]).check_address(ip("192.168.1.2")) is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"allow": ["("]}, "invalid regex '('"),
        ({"deny": ["[a-"]}, "invalid regex '[a-'"),
        ({"allow_private": ["10.0.0.0/33"]}, "invalid CIDR '10.0.0.0/33'"),
        ({"allow_private": ["localhost"]}, "invalid CIDR 'localhost'"),
        ({"connect_ports": [0]}, "invalid port 0"),
        ({"connect_ports": [70000]}, "invalid port 70000"),
    ],
)
def test_invalid_policies(kwargs, message):
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("(", r"\(")):
        Policy(**kwargs)
