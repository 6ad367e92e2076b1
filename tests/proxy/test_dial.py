"""Resolve, check, connect, in-process with a fake resolver: the address checked is the one dialled."""

from __future__ import annotations

import socket

import pytest
import trio

from isol8rt_proxy.dial import DialError, candidates, dial
from isol8rt_proxy.policy import Policy


def info(address, port=443):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
    return (family, socket.SOCK_STREAM, 6, "", sockaddr)


def resolver(*addresses):
    async def resolve(host, port, **kwargs):
        return [info(address, port) for address in addresses]

    return resolve


def test_candidates_ipv4_first_private_dropped():
    infos = [info("2606:4700::1"), info("10.0.0.1"), info("93.184.216.34"), info("93.184.216.34"), info("::1")]
    allowed, refusal = candidates(infos, Policy())
    assert allowed == [(socket.AF_INET, ("93.184.216.34", 443)), (socket.AF_INET6, ("2606:4700::1", 443, 0, 0))]
    assert refusal == "private address 10.0.0.1 not allowed (RFC 1918)"


async def test_connects_only_to_checked_addresses():
    tried = []

    async def connect(family, sockaddr):
        tried.append(sockaddr[0])
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(DialError) as failure:
        await dial(
            "rebind.test",
            443,
            Policy(),
            5,
            resolve=resolver("169.254.169.254", "93.184.216.34", "8.8.8.8"),
            connect=connect,
        )
    assert tried == ["93.184.216.34", "8.8.8.8"]  # every allowed address in order; never the metadata one
    assert (failure.value.status, failure.value.message) == (502, "connect failed: Connection refused")
    assert not failure.value.blocked


async def test_all_private_is_a_block():
    with pytest.raises(DialError) as failure:
        await dial("localhost", 443, Policy(), 5, resolve=resolver("127.0.0.1", "::1"))
    assert failure.value.status == 403 and failure.value.blocked
    assert failure.value.message == "private address 127.0.0.1 not allowed (loopback)"


async def test_unresolvable_is_502():
    async def resolve(host, port, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(DialError) as failure:
        await dial("nowhere.invalid", 443, Policy(), 5, resolve=resolve)
    assert (failure.value.status, failure.value.message) == (502, "cannot resolve nowhere.invalid")


async def test_connect_timeout_is_504():
    async def connect(family, sockaddr):
        await trio.sleep_forever()

    with trio.fail_after(5):
        with pytest.raises(DialError) as failure:
            await dial("slow.test", 443, Policy(), 0.2, resolve=resolver("93.184.216.34"), connect=connect)
    assert (failure.value.status, failure.value.message) == (504, "connect timeout")


async def test_falls_through_to_an_address_that_connects():
    with socket.create_server(("127.0.0.1", 0)) as server:  # connect() completes in its backlog
        port = server.getsockname()[1]
        policy = Policy(allow_private=["127.0.0.0/8"])
        # 127.0.0.2 refuses (nothing listens there), 127.0.0.1 answers.
        stream = await dial("two.test", port, policy, 5, resolve=resolver("127.0.0.2", "127.0.0.1"))
        with stream.socket:
            assert stream.socket.getpeername() == ("127.0.0.1", port)
