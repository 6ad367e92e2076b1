"""The asyncio face: isol8rt.aio.Isol8 on real containers. The loop never blocks, cancellation goes both ways
(a cancelled task kills the run and frees its container; an engine-side failure is raised by the
awaitable). Tests are plain functions driving asyncio.run: pytest-trio owns the async ones."""

from __future__ import annotations

import asyncio
import threading

import pytest

import isol8rt
from isol8rt import EngineClosed, EngineUnavailable, ExecutionRequest, InvalidRequest, SessionError
from isol8rt.aio import Isol8

from .test_faces import assert_freed, child_sleeper, new_marker, seconds_until_dead, sleeper, wait_running


async def running(marker: str) -> str:
    """The marked program's container, once it runs (watched from a thread: the loop stays free)."""
    return await asyncio.to_thread(wait_running, marker)


@pytest.mark.docker
def test_execute_stream_files_and_sessions():
    async def main() -> None:
        async with isol8rt.aio.Isol8(pool_size=1) as engine:
            assert (await engine.execute(ExecutionRequest(code="print(6 * 7)"))).stdout == "42\n"
            assert (await engine.execute("print('text')")).stdout == "text\n"
            result = await engine.execute(code="echo $X; exit 4", runtime="bash", env={"X": "kw"})
            assert (result.stdout, result.exit_code) == ("kw\n", 4)

            events = [event async for event in engine.execute_stream(code="echo a; echo b >&2", runtime="bash")]
            assert "".join(e.data for e in events if e.type == "stdout") == "a\n"
            assert "".join(e.data for e in events if e.type == "stderr") == "b\n"
            assert (events[-1].type, events[-1].data) == ("exit", "0")

            async with engine.session() as session:
                await session.put_file("in.txt", b"\x00binary")
                assert (await session.execute("data = open('in.txt', 'rb').read()")).exit_code == 0
                assert (await session.execute("print(len(data))")).stdout == "7\n"
                assert await session.get_file("in.txt") == b"\x00binary"
                stream = session.execute_stream("print(data[1:])")
                assert "binary" in "".join([e.data async for e in stream])
                assert session.id in [info.id for info in await engine.sessions()]
            assert await engine.close_session(session.id) is False

    asyncio.run(main())


@pytest.mark.docker
def test_engine_side_failures_are_raised():
    async def main() -> None:
        async with Isol8(pool_size=0) as engine:
            with pytest.raises(InvalidRequest):
                await engine.execute(code="x", runtime="cobol")  # type: ignore[typeddict-item]
            with pytest.raises(SessionError):
                await engine.put_file("a.txt", "x")
            with pytest.raises(InvalidRequest):
                async for _ in engine.execute_stream(code="x", runtime="cobol"):  # type: ignore[typeddict-item]
                    pass
        with pytest.raises(EngineClosed):
            await engine.execute("print(1)")

    asyncio.run(main())


def test_no_docker_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")

    async def main() -> None:
        with pytest.raises(EngineUnavailable, match="Docker is not running"):
            async with Isol8():
                pass

    asyncio.run(main())


@pytest.mark.docker
def test_the_loop_never_blocks():
    async def main() -> float:
        async with Isol8(pool_size=1) as engine:
            await engine.execute("print(0)")
            gaps: list[float] = []
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()

            async def tick() -> None:
                last = loop.time()
                while not stop.is_set():
                    await asyncio.sleep(0.002)
                    now = loop.time()
                    gaps.append(now - last)
                    last = now

            ticker = asyncio.create_task(tick())
            for _ in range(3):
                await engine.execute("import time; time.sleep(0.25)")
                async for _ in engine.execute_stream("print('x' * 100000)"):
                    pass
            stop.set()
            await ticker
            return max(gaps)

    # The loop only awaits futures: a gap is scheduling noise on a busy machine (a few ms), never a run's 250.
    assert asyncio.run(main()) < 0.125


@pytest.mark.docker
def test_a_cancelled_task_kills_the_run_and_frees_the_container():
    async def main() -> None:
        async with Isol8(pool_size=1) as engine:
            marker = new_marker()
            task = asyncio.create_task(engine.execute(sleeper(marker)))
            container = await running(marker)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # CancelledError only came once the run was over: the container is out of the engine's hands.
            assert container not in engine.engine.containers
            await asyncio.to_thread(assert_freed, marker, container, engine.engine)
            assert (await engine.execute("print('next')")).stdout == "next\n"

            marker = new_marker()
            watcher = asyncio.create_task(running(marker))
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(1.5):
                    await engine.execute(sleeper(marker))
            await asyncio.to_thread(assert_freed, marker, await watcher, engine.engine)

    asyncio.run(main())


@pytest.mark.docker
def test_a_cancelled_session_run_is_killed_and_the_session_lives_on():
    async def main() -> None:
        async with Isol8(pool_size=0) as engine:
            async with engine.session() as session:
                await session.execute("x = 1")
                marker = new_marker()
                task = asyncio.create_task(session.execute(child_sleeper(marker)))
                await running(marker)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert await asyncio.to_thread(seconds_until_dead, marker) < 1.0
                assert (await session.execute("print(x)")).stdout == "1\n"

    asyncio.run(main())


@pytest.mark.docker
def test_leaving_a_stream_kills_the_run():
    async def main() -> None:
        async with Isol8(pool_size=1) as engine:
            marker = new_marker()
            async with engine.execute_stream(f"print('ready', flush=True)\n{sleeper(marker)}") as events:
                async for event in events:
                    assert event.data.startswith("ready")
                    container = await running(marker)
                    break
            await asyncio.to_thread(assert_freed, marker, container, engine.engine)

            # A task consuming a stream, cancelled.
            marker = new_marker()

            async def consume() -> None:
                async for _ in engine.execute_stream(sleeper(marker)):
                    pass

            task = asyncio.create_task(consume())
            container = await running(marker)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.to_thread(assert_freed, marker, container, engine.engine)

    asyncio.run(main())


@pytest.mark.docker
def test_interactive_stream():
    async def main() -> None:
        async with Isol8(pool_size=1) as engine:
            code = "import sys\nprint('ready', flush=True)\nprint(sys.stdin.readline().upper(), end='')"
            async with engine.execute_stream(code, interactive=True) as run:
                out = ""
                async for event in run:
                    out += event.data if event.type == "stdout" else ""
                    if out == "ready\n":
                        assert await run.write_stdin("shout\n")
                assert out == "ready\nSHOUT\n"

    asyncio.run(main())


@pytest.mark.docker
def test_stop_ends_calls_in_flight():
    async def main() -> None:
        engine = Isol8(pool_size=0)
        await engine.start()
        marker = new_marker()
        task = asyncio.create_task(engine.execute(sleeper(marker)))
        container = await running(marker)
        await engine.stop()
        with pytest.raises(EngineClosed):
            await task
        await asyncio.to_thread(assert_freed, marker, container, engine.engine)

    asyncio.run(main())
    assert not [t for t in threading.enumerate() if t.name == "isol8rt-aio-engine"]
