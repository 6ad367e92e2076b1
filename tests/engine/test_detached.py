"""Detached sessions: the container outlives the engine (the CLI's --persistent between invocations),
is found again by name, and ends by itself when idle."""

from __future__ import annotations

import uuid

import pytest
import trio

from isol8rt import DockerIsol8, ExecutionRequest, Isol8Options
from isol8rt.docker import DockerClient, NotFound

from ..conftest import managed_containers

pytestmark = pytest.mark.docker


def engine(**kwargs) -> DockerIsol8:
    return DockerIsol8(Isol8Options(pool_size=0), detached_sessions=True, **kwargs)


async def test_state_survives_the_engine_and_close_ends_it():
    name = f"test-{uuid.uuid4().hex[:8]}"
    async with engine() as first:
        await first.execute(ExecutionRequest(code="kept = 41"), session_id=name)
        await first.put_file("note.txt", "from the first", session_id=name)
    async with engine() as second:
        result = await second.execute(ExecutionRequest(code="print(kept + 1, open('note.txt').read())"),
                                      session_id=name)
        assert result.stdout == "42 from the first\n", result.stderr
        assert name in [info.id for info in await second.detached_sessions()]
        assert await second.close_session(name)
        assert name not in [info.id for info in await second.detached_sessions()]
    async with engine() as third:  # a fresh session of the same name: nothing left
        result = await third.execute(ExecutionRequest(code="print('kept' in globals())"), session_id=name)
        assert result.stdout == "False\n"
        await third.close_session(name)


async def test_an_idle_session_ends_by_itself():
    name = f"test-{uuid.uuid4().hex[:8]}"
    async with engine(session_idle_timeout_s=1.0) as first:
        result = await first.execute(ExecutionRequest(code="print('up')"), session_id=name)
        container = result.container_id
    # The agent exits after 1 s with nobody talking to it; Docker then removes the container.
    async with DockerClient() as client:
        with trio.fail_after(20):
            try:
                await client.wait_container(container, condition="removed")
            except NotFound:
                pass  # already gone
    assert container not in await managed_containers()
