"""DockerIsol8's lifecycle on the in-memory backend: start()/stop() for callers without a nursery, and
run() in the caller's own nursery, which owns the service task (no Docker, no sleeps)."""

from __future__ import annotations

import pytest
import trio

from isol8rt import DockerIsol8, EngineClosed, EngineUnavailable, ExecutionRequest, Isol8Options
from isol8rt.testing import AgentScript, RunReply, open_memory_backend

HELLO = ExecutionRequest(code="print('hi')", runtime="python")


def script() -> AgentScript:
    return AgentScript(run=lambda run: RunReply(stdout=b"hi\n"))


async def test_run_serves_in_the_callers_nursery_until_stop():
    async with open_memory_backend(script()) as backend:
        engine = DockerIsol8(Isol8Options(pool_size=1), backend=backend)
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)  # returns once the engine takes runs
            assert (await engine.execute(HELLO)).stdout == "hi\n"
            assert backend.running()
            await engine.stop()
        assert backend.running() == []  # stop() removed what it made, and run() returned
        with pytest.raises(EngineClosed):
            await engine.execute(HELLO)


async def test_cancelling_the_callers_nursery_stops_the_engine_and_removes_its_containers():
    async with open_memory_backend(script()) as backend:
        engine = DockerIsol8(Isol8Options(pool_size=1), backend=backend)
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            await engine.execute(HELLO)
            nursery.cancel_scope.cancel()
        assert backend.running() == []
        with pytest.raises(EngineClosed):
            await engine.execute(HELLO)


async def test_run_refuses_an_engine_already_started_or_stopped():
    async with open_memory_backend(script()) as backend:
        engine = DockerIsol8(Isol8Options(pool_size=1), backend=backend)
        await engine.start()
        with pytest.raises(RuntimeError, match="started already"):
            await engine.run()
        await engine.stop()
        with pytest.raises(EngineClosed):
            await engine.run()


async def test_a_platform_that_does_not_answer_fails_run_before_it_is_ready_and_the_engine_can_try_again():
    class Unreachable:
        answers = False

        async def check(self) -> None:
            await trio.lowlevel.checkpoint()
            if not self.answers:
                raise EngineUnavailable("Docker is not running")

    async with open_memory_backend(script()) as memory:
        backend = Unreachable()
        for name in ("create", "attach", "start", "kill", "remove", "list", "find_running", "out_of_memory",
                     "find_baked_image", "image_preload", "aclose"):
            setattr(backend, name, getattr(memory, name))
        engine = DockerIsol8(Isol8Options(pool_size=0), backend=backend)  # type: ignore[arg-type]
        async with trio.open_nursery() as nursery:
            with pytest.raises(EngineUnavailable):
                await nursery.start(engine.run)
            backend.answers = True
            await nursery.start(engine.run)
            assert (await engine.execute(HELLO)).exit_code == 0
            await engine.stop()


async def test_start_and_stop_are_safe_twice_and_async_with_is_start_and_stop():
    async with open_memory_backend(script()) as backend:
        engine = DockerIsol8(Isol8Options(pool_size=1), backend=backend)
        await engine.start()
        await engine.start()
        assert (await engine.execute(HELLO)).stdout == "hi\n"
        await engine.stop()
        await engine.stop()
        assert backend.running() == []
        async with DockerIsol8(Isol8Options(pool_size=1), backend=backend) as other:
            assert (await other.execute(HELLO)).stdout == "hi\n"
        assert backend.running() == []
