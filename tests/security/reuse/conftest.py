"""Attacks on the fast pool's reuse of a container: each a pair of runs (the attacker, then a victim or a
probe) that land in the same pooled container, through the library and through the server.

The pool keeps no spare container (``pool_size=0``), so under ``fast`` the run after an attack gets the
attacked container back whenever its reset verified; under ``secure`` it gets a new one. Through the
server, the attacker and the victim hold two different API keys: there a container that ran one key's code
is never handed to another key (tenant-bound containers), so the pair can only meet through the reset of
the same key's container; tests that need that say so.
"""

from __future__ import annotations

import pytest
import trio

from isol8rt import DockerIsol8, ExecutionRequest, ExecutionResult, Isol8Options
from isol8rt.server import Server

from ...conftest import needs_docker
from ...server.conftest import MASTER, Live, config


@pytest.fixture(params=[False, True], ids=["fresh", "fork"])
def fork_server(request, strategy) -> bool:
    """Whether python runs are forks of the fork server (agent/zygote.py) rather than fresh interpreters:
    every attack on the reset is tried on both. Secure never reuses a container, so there it adds nothing."""
    if request.param and strategy != "fast":
        pytest.skip("secure never reuses a container: the fork server changes nothing to test there")
    return request.param


@pytest.fixture
@needs_docker
async def reuse_engine(strategy, fork_server):
    """A pool of at most one container of each kind: the attacker's and the victim's runs share it (fast)."""
    async with DockerIsol8(Isol8Options(pool_strategy=strategy, pool_size=0, fork_server=fork_server)) as engine:
        yield engine


async def run(engine, code: str | None = None, **fields) -> ExecutionResult:
    fields.setdefault("timeout_ms", 20_000)
    with trio.fail_after(60):
        # The last run's reset first: on a loaded machine a slow one would send this run to a new container.
        await engine._started_pool.wait_settled()
        return await engine.execute(ExecutionRequest(code=code, **fields))


def assert_same_container(strategy: str, first: ExecutionResult, second: ExecutionResult) -> None:
    """Under fast the second run must have reused the first one's container (else the pair proves nothing
    about the reset); under secure it must not have."""
    if strategy == "fast":
        assert second.container_id == first.container_id, "the reset did not verify: the container was retired"
    else:
        assert second.container_id != first.container_id, "secure reused a container"


class TwoKeys:
    """A server and two API keys of two tenants."""

    def __init__(self, live: Live, first: str, second: str) -> None:
        self.live = live
        self.first = live.client(first)
        self.second = live.client(second)

    async def settled(self) -> None:
        """Until the server's pool has finished its resets (see ``run``)."""
        with trio.fail_after(60):
            await self.live.server.engines.base._started_pool.wait_settled()


@pytest.fixture
@needs_docker
async def two_keys(tmp_path, strategy):
    async with trio.open_nursery() as nursery:
        server = Server(config(tmp_path, options=Isol8Options(pool_strategy=strategy, pool_size=0)))
        port = await nursery.start(server.run)
        live = Live(server, port)
        keys = []
        for name in ("attacker", "victim"):
            answer = await live.request("POST", "/auth/keys", {"name": name, "tenantId": f"tenant-{name}"},
                                        key=MASTER)
            assert answer.status == 201, answer.body
            keys.append(answer.json()["key"])
        yield TwoKeys(live, *keys)
        server.stop()
