"""Resolve, check, connect: the only way the proxy opens a connection to an origin.

The name is resolved once, every address is checked against the policy, and the proxy connects to the
addresses that passed and to nothing else: there is no second lookup for DNS to answer differently
(rebinding). IPv4 addresses are tried before IPv6, each in the resolver's order, until one connects;
resolution and all attempts together get one deadline.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from isol8rt_proxy import addresses
from isol8rt_proxy.policy import Policy

Resolver = Callable[..., Awaitable[Sequence[tuple[Any, ...]]]]
Connector = Callable[[int, tuple[Any, ...]], Awaitable[trio.SocketStream]]


class DialError(Exception):
    """The origin cannot be reached: ``status`` for the client, ``message`` for it and the log, and
    ``blocked`` when the policy refused (every address was private) rather than the network failing."""

    def __init__(self, status: int, message: str, *, blocked: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.blocked = blocked


def candidates(
    infos: Sequence[tuple[Any, ...]], policy: Policy
) -> tuple[list[tuple[int, tuple[Any, ...]]], str | None]:
    """The (family, sockaddr) pairs of getaddrinfo's answer the policy allows, IPv4 first, without
    repeats; and why the first refused one was refused (None if none was)."""
    allowed: list[tuple[int, tuple[Any, ...]]] = []
    refusal = None
    seen = set()
    for family in (socket.AF_INET, socket.AF_INET6):
        for info_family, _type, _proto, _canonname, sockaddr in infos:
            if info_family != family or sockaddr in seen:
                continue
            seen.add(sockaddr)
            reason = policy.check_address(addresses.parse(sockaddr[0]))
            if reason is None:
                allowed.append((family, sockaddr))
            elif refusal is None:
                refusal = reason
    return allowed, refusal


async def dial(
    host: str,
    port: int,
    policy: Policy,
    timeout: float,
    *,
    resolve: Resolver = trio.socket.getaddrinfo,
    connect: Connector | None = None,
) -> trio.SocketStream:
    """A connected stream to ``host:port``, or :class:`DialError` (resolve and connect are for tests)."""
    connect = connect or _connect
    with trio.move_on_after(timeout):
        try:
            infos = _literal(host, port) or await resolve(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise DialError(502, f"cannot resolve {host}") from None
        allowed, refusal = candidates(infos, policy)
        if not allowed:
            raise DialError(403, refusal or f"cannot resolve {host}", blocked=refusal is not None)
        failure: OSError | None = None
        for family, sockaddr in allowed:
            try:
                return await connect(family, sockaddr)
            except OSError as exc:
                failure = exc
        raise DialError(502, f"connect failed: {failure.strerror or failure}")
    raise DialError(504, "connect timeout")


def _literal(host: str, port: int) -> list[tuple[Any, ...]]:
    """getaddrinfo's answer for an IP literal in canonical form, without asking it (and without the
    scheduling round trip trio's getaddrinfo costs even then); [] for anything else."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return []
    if str(address) != host:  # 010.0.0.1, say, means what the resolver says it means
        return []
    if address.version == 4:
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port))]
    return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port, 0, 0))]


async def _connect(family: int, sockaddr: tuple[Any, ...]) -> trio.SocketStream:
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        await sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)
