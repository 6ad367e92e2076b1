"""Reaching out from the default ``network="none"`` sandbox: raw and packet sockets, DNS, UDP and TCP to
the internet, the Docker host, the Docker socket, and this VM's host over vsock.

Stopped by: Docker's ``none`` network (a namespace with only ``lo``: no route anywhere), the strict
seccomp profile (socket families other than unix, inet, inet6 and route-netlink are EPERM), and no
CAP_NET_RAW. The filtered mode (proxy and firewall) has its own tests under tests/network/."""

from __future__ import annotations

import json

import trio

from isol8rt import ExecutionRequest

from .conftest import after_attack, stop_and_verify

PROBE = r"""
import errno, json, os, socket
results = {}
def attempt(name, action):
    try:
        action()
        results[name] = 'ok'
    except socket.gaierror as exc:
        results[name] = 'gaierror'
    except OSError as exc:
        results[name] = errno.errorcode.get(exc.errno, exc.errno)
def make(family, kind, proto=0):
    return lambda: socket.socket(family, kind, proto).close()
attempt('packet_raw', make(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)))    # ETH_P_ALL
attempt('packet_dgram', make(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(3)))
attempt('inet_raw_icmp', make(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt('inet_raw_tcp', make(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP))
attempt('inet6_raw', make(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6))
attempt('vsock', make(40, socket.SOCK_STREAM))                  # AF_VSOCK: a VM's way to its host
attempt('alg', make(38, socket.SOCK_SEQPACKET))                 # AF_ALG: kernel crypto, a classic exploit path
attempt('netlink_audit', make(socket.AF_NETLINK, socket.SOCK_RAW, 9))
attempt('netlink_uevent', make(socket.AF_NETLINK, socket.SOCK_RAW, 15))
attempt('dns', lambda: socket.getaddrinfo('pypi.org', 443))
def udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b'\x00' * 32, ('8.8.8.8', 53))
attempt('udp_out', udp)
def tcp(address):
    def connect():
        with socket.create_connection(address, timeout=3):
            pass
    return connect
attempt('tcp_out', tcp(('1.1.1.1', 443)))
attempt('tcp_docker_host', tcp(('172.17.0.1', 2375)))
attempt('tcp6_out', tcp(('2606:4700:4700::1111', 443)))
results['interfaces'] = sorted(os.listdir('/sys/class/net'))
results['docker_socket'] = [path for path in ('/var/run/docker.sock', '/run/docker.sock', '/run/containerd/containerd.sock')
                            if os.path.exists(path)]
print(json.dumps(results))
"""


async def test_no_way_out(attack_engine):
    """Raw/packet/vsock/AF_ALG sockets, DNS for pypi.org, UDP to 8.8.8.8, TCP to 1.1.1.1, the Docker
    host's bridge address and an IPv6 address; look for the Docker socket. Stopped by: seccomp (EPERM
    for the socket families), the empty network namespace (no interface but lo: DNS fails, every
    destination is unreachable), and nothing of the host mounted in."""
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(code=PROBE, timeout_ms=20_000))
    assert attack.exit_code == 0, attack.stderr
    results = json.loads(attack.stdout)
    for name in ("packet_raw", "packet_dgram", "inet_raw_icmp", "inet_raw_tcp", "inet6_raw", "vsock", "alg",
                 "netlink_audit", "netlink_uevent"):
        assert results[name] == "EPERM", (name, results[name])
    assert results["dns"] == "gaierror"
    for name in ("udp_out", "tcp_out", "tcp_docker_host", "tcp6_out"):
        assert results[name] in ("ENETUNREACH", "EHOSTUNREACH", "EADDRNOTAVAIL"), (name, results[name])
    assert results["interfaces"] == ["lo"]
    assert results["docker_socket"] == []
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)
