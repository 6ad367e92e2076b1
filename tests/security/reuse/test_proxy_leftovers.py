"""A run leaves the filtering proxy busy for the next one: tunnels held open, a request half sent, and a
process that sends complete requests as fast as it can, right up to the reset (some of them still waiting
in the proxy's listening backlog when their sender dies). Were any served after the reset, it would be
under the next run's policy and in the next run's network log.

Stopped by: the reset kills the sender first, then has the proxy refuse everything in its backlog and
close every connection before it answers; the next run's log holds its own requests only."""

from __future__ import annotations

import pytest

from isol8rt import DockerIsol8, ExecutionRequest, Isol8Options
from isol8rt.runtimes import PROXY_PORT
from isol8rt.types import NetworkFilter

from ...conftest import needs_docker
from .conftest import assert_same_container, run

FLOOD = rf"""
import os, socket, time
ready_read, ready_write = os.pipe()
if os.fork() == 0:
    os.setsid()
    held = []
    for _ in range(3):   # tunnels that never finish their head
        connection = socket.create_connection(('127.0.0.1', {PROXY_PORT}))
        connection.sendall(b'CONNECT leftover.invalid:443 HTTP/1.1\r\n')
        held.append(connection)
    os.write(ready_write, b'1')
    for fd in (0, 1, 2):
        os.close(fd)
    while True:           # complete requests, sent right up to the reset
        try:
            connection = socket.create_connection(('127.0.0.1', {PROXY_PORT}))
            connection.sendall(b'GET http://leftover.invalid/ HTTP/1.1\r\nHost: leftover.invalid\r\n\r\n')
            held.append(connection)
            del held[3:-50]
        except OSError:
            time.sleep(0.001)
os.read(ready_read, 1)
time.sleep(0.2)
print('flooding')
"""

QUIET = "print('quiet')"


@pytest.fixture
@needs_docker
async def filtered_engine(strategy):
    options = Isol8Options(pool_strategy=strategy, pool_size=0, network="filtered", log_network=True,
                           network_filter=NetworkFilter(whitelist=[r"^allowed\.invalid$"]))
    async with DockerIsol8(options) as engine:
        yield engine


async def test_library(filtered_engine, strategy):
    attack = await run(filtered_engine, FLOOD)
    assert attack.stdout == "flooding\n", attack.stderr
    assert any("leftover.invalid" in str(entry) for entry in attack.network_logs or []), "the flood reached no proxy"
    for _ in range(3):
        later = await run(filtered_engine, QUIET)
        assert later.stdout == "quiet\n", later.stderr
        assert later.network_logs == [], later.network_logs
        assert_same_container(strategy, attack, later)
