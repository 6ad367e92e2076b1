"""Cancellation and lifecycle: a client that walks away frees its container; SIGTERM drains and removes
everything; after a kill -9, the next server removes what the dead one left, and nothing else."""

from __future__ import annotations

import json
import os
import re
import signal

import msgspec
import trio

from isol8rt import DockerIsol8, ExecutionRequest, Isol8Options

from .conftest import MASTER, engine_containers, raw_request

SLOW = {"request": {"code": "import socket, time\nprint('started', socket.gethostname(), flush=True)\ntime.sleep(60)"}}


def post(path: str, body: dict) -> bytes:
    payload = msgspec.json.encode(body)
    return (f"POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {MASTER}\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload


def sse_stdout(raw: bytes) -> str:
    """The stdout text in the SSE frames of a raw (chunked) HTTP answer received so far."""
    return "".join(json.loads(m)["data"] for m in re.findall(rb"data: (\{.*?\})\n\n", raw)
                   if json.loads(m)["type"] == "stdout")


async def wait_until(predicate, timeout: float = 20.0) -> None:
    with trio.fail_after(timeout):
        while not await predicate():
            await trio.sleep(0.1)


async def docker_has(container_prefix: str) -> bool:
    from isol8rt.docker import DockerClient

    async with DockerClient() as client:
        return any(c.id.startswith(container_prefix) for c in await client.list_containers(all=True))


async def test_http_client_leaving_cancels_its_run(live):
    engines = live.server.engines
    [warm] = engines.containers  # the one prewarmed python container: the run will take it
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    await stream.send_all(post("/execute", SLOW))

    async def running():
        return engines.active == 1

    await wait_until(running)
    await trio.sleep(0.3)
    await stream.aclose()

    async def freed():
        return engines.active == 0 and not await docker_has(warm)

    await wait_until(freed, 10)


async def test_sse_client_leaving_cancels_its_run(live):
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    await stream.send_all(post("/execute/stream", SLOW))
    seen = b""
    with trio.fail_after(20):
        while not (match := re.search(r"started (\w+)\n", sse_stdout(seen))):
            seen += await stream.receive_some(65536)
    assert seen.startswith(b"HTTP/1.1 200") and b"text/event-stream" in seen
    hostname = match.group(1)
    assert await docker_has(hostname)
    await stream.aclose()

    async def freed():
        return live.server.engines.active == 0 and not await docker_has(hostname)

    await wait_until(freed, 10)


async def test_sigterm_drains_then_removes_every_container(spawn_server):
    server = spawn_server("--prewarm", "python", "--pool-size", "1")
    engine_ids = server.engine_ids()
    answers = []

    async def short_run():
        code = "import time\ntime.sleep(1.5)\nprint('finished')"
        answers.append(await raw_request(server.port, "POST", "/execute", {"request": {"code": code}}))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(short_run)
        await trio.sleep(0.7)
        assert await engine_containers(engine_ids)
        server.proc.send_signal(signal.SIGTERM)
    # The run in flight was let finish; then the process ended cleanly with nothing left behind.
    assert answers[0].status == 200 and answers[0].json()["stdout"] == "finished\n"
    assert server.proc.wait(30) == 0
    assert await engine_containers(engine_ids) == []
    assert list(server.state_dir.glob("*.json")) == []


async def test_kill_9_orphans_are_removed_by_the_next_server(spawn_server):
    # A library engine of someone else's: it must survive the clean-up.
    async with DockerIsol8(Isol8Options(pool_size=0)) as bystander:
        await bystander.execute(ExecutionRequest(code="kept = 1"), session_id="keep")
        bystanders = await engine_containers([bystander.engine_id])
        assert len(bystanders) == 1

        first = spawn_server("--prewarm", "python", "--pool-size", "1")
        stream = await trio.open_tcp_stream("127.0.0.1", first.port)
        await stream.send_all(post("/execute/stream", SLOW))
        seen = b""
        with trio.fail_after(20):
            while b"started" not in seen:
                seen += await stream.receive_some(65536)
        orphaned_engines = first.engine_ids()
        assert await engine_containers(orphaned_engines)
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(10)
        await stream.aclose()
        assert await engine_containers(orphaned_engines), "kill -9 leaves the containers behind"

        second = spawn_server("--prewarm", "")
        # Once the new server is up, the dead one's containers are gone; the bystander's are not.
        assert await engine_containers(orphaned_engines) == []
        assert set(bystanders) <= set(await engine_containers([bystander.engine_id]))
        assert (await bystander.execute(ExecutionRequest(code="print(kept)"), session_id="keep")).stdout == "1\n"
        health = await raw_request(second.port, "GET", "/health", key=None)
        assert health.status == 200
        assert second.stop() == 0


async def test_a_stopping_server_refuses_new_connections_while_its_runs_finish(live):
    """A load balancer's next connection to a draining node is refused at once (and HAProxy retries it
    on another node), rather than waiting in the backlog, unanswered, until the drain ends: the listeners
    close when accepting stops (trio's serve_listeners closes them)."""
    answers = []

    async def run():
        code = "import time\ntime.sleep(1.5)\nprint('finished')"
        answers.append(await raw_request(live.port, "POST", "/execute", {"request": {"code": code}}))

    async def running():
        return live.server.engines.active == 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await wait_until(running)
        live.server.stop()
        with trio.fail_after(5):
            while True:
                try:
                    probe = await trio.open_tcp_stream("127.0.0.1", live.port)
                except OSError:
                    break  # refused
                await probe.aclose()  # accepted before the listener closed: try again
                await trio.sleep(0.01)
        assert not answers  # refused while the run was still going...
    assert answers[0].status == 200 and answers[0].json()["stdout"] == "finished\n"  # ...which finished
