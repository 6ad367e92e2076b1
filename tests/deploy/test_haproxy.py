"""deploy/haproxy.cfg in front of two real `isol8rt serve` nodes: every request of a session reaches the
node that holds it (from RemoteIsol8 and from the reference's request shapes), binary files and
streams (SSE, WebSocket) pass through, a drained node keeps its sessions while new ones go elsewhere, and
a node killed with SIGKILL fails its runs in flight cleanly, leaves new sessions to the other node and,
started again, removes what it left behind."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import time
from urllib.parse import quote

import pytest
import trio

from isol8rt import EngineUnavailable, ExecutionRequest, Isol8Error, SandboxError
from isol8rt.client import RemoteControl, RemoteIsol8

from ..server.conftest import MASTER, engine_containers, raw_request
from .cluster import BACKEND, HAPROXY_CFG, HAProxy, free_port, haproxy_config

pytestmark = [pytest.mark.cluster, pytest.mark.docker]


def client(cluster, session_id: str | None = None) -> RemoteIsol8:
    """RemoteIsol8 through HAProxy, leaving its sessions for the test to end."""
    return RemoteIsol8(cluster.url, MASTER, session_id=session_id, keep_session=True)


async def reference_run(cluster, session_id: str, code: str) -> dict:
    """POST /execute as the reference's clients send it: the session id in the JSON body only."""
    answer = await raw_request(cluster.haproxy.port, "POST", "/execute",
                               {"request": {"code": code, "runtime": "python"}, "sessionId": session_id})
    assert answer.status == 200, answer.body
    return answer.json()


async def holders(cluster) -> dict[str, list[str]]:
    """Each session id, and the nodes that hold it (asked of each node directly)."""
    held: dict[str, list[str]] = {}
    for name, node in cluster.nodes.items():
        answer = await raw_request(node.port, "GET", "/sessions")
        for session in answer.json()["sessions"]:
            held.setdefault(session["id"], []).append(name)
    return held


async def sessions_of(cluster, session_id: str) -> list[dict]:
    """What the nodes say of one session (one entry per node holding it)."""
    found = []
    for node in cluster.nodes.values():
        answer = await raw_request(node.port, "GET", "/sessions")
        found += [s for s in answer.json()["sessions"] if s["id"] == session_id]
    return found


async def end_sessions(cluster, ids) -> None:
    for session_id in ids:
        answer = await raw_request(cluster.haproxy.port, "DELETE", f"/session/{quote(session_id, safe='')}")
        assert answer.status == 200, answer.body


async def test_the_config_is_the_shipped_file_with_only_addresses_changed(cluster):
    check = subprocess.run(["haproxy", "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    shipped = HAPROXY_CFG.read_text()
    ours = cluster.haproxy.config.read_text()
    changed = {line.strip() for line in set(shipped.splitlines()) ^ set(ours.splitlines())}
    assert all(line.startswith(("bind ", "stats socket ", "server ", "chroot ", "user ", "group "))
               for line in changed), changed
    with pytest.raises(AssertionError, match="bind"):
        haproxy_config(1, cluster.directory / "s", {"n": 2}, text=shipped.replace("bind :3000", "bind :3000\n    bind :80"))


async def test_with_no_node_up_haproxy_answers_in_the_api_s_error_shape(tmp_path):
    """Its own errors are JSON with a kind, so RemoteIsol8 raises what it raises for a node's."""
    haproxy = HAProxy(tmp_path, {"node1": free_port(), "node2": free_port()})  # nothing listens there
    try:
        haproxy.wait_for({"node1": "DOWN", "node2": "DOWN"})
        with pytest.raises(EngineUnavailable, match="No isol8rt node is available"):
            await RemoteIsol8(haproxy.url, MASTER).execute(ExecutionRequest(code="print(1)"))
    finally:
        haproxy.stop()


async def test_every_request_of_a_session_reaches_the_node_that_holds_it(cluster):
    # Escapes in the path, the query and JSON must hash alike (the same id through each route).
    ids = [f"s{i}" for i in range(8)] + ["a b/é", "100%", "x+y?z&w=1", 'say "hi"\\']
    async with trio.open_nursery() as nursery:
        for i, session_id in enumerate(ids):
            code = f"x = {session_id!r}; open('/sandbox/id', 'w').write(x)"
            if i % 2:
                async def make(session_id=session_id, code=code) -> None:
                    async with client(cluster, session_id) as remote:
                        assert (await remote.execute(ExecutionRequest(code=code))).exit_code == 0
                nursery.start_soon(make)
            else:
                nursery.start_soon(reference_run, cluster, session_id, code)
    held = await holders(cluster)
    assert {session_id: len(held.get(session_id, [])) for session_id in ids} == {s: 1 for s in ids}
    assert {nodes[0] for nodes in held.values()} == set(cluster.nodes)  # both nodes hold some

    for session_id in ids:  # each through every route, on fresh connections
        assert (await reference_run(cluster, session_id, "print(x)"))["stdout"] == f"{session_id}\n"
        async with client(cluster, session_id) as remote:
            assert (await remote.execute(ExecutionRequest(code="print(x)"))).stdout == f"{session_id}\n"
            assert await remote.get_file("/sandbox/id") == session_id.encode()
        query = f"sessionId={quote(session_id, safe='')}&path=/sandbox/id"
        answer = await raw_request(cluster.haproxy.port, "GET", f"/file?{query}")
        assert answer.status == 200 and answer.json()["content"]
        upload = {"sessionId": session_id, "path": "/sandbox/up", "content": "dXA="}
        assert (await raw_request(cluster.haproxy.port, "POST", "/file", upload)).status == 200
        streamed = await raw_request(cluster.haproxy.port, "POST", "/execute/stream",
                                     {"request": {"code": "print(x)"}, "sessionId": session_id})
        events = [json.loads(line[6:]) for line in streamed.body.splitlines() if line.startswith(b"data: ")]
        assert "".join(e["data"] for e in events if e["type"] == "stdout") == f"{session_id}\n"
    for session_id in ids:  # DELETE /session/<id> finds it: a node without it would answer removed: false
        answer = await raw_request(cluster.haproxy.port, "DELETE", f"/session/{quote(session_id, safe='')}")
        assert answer.json() == {"ok": True, "removed": True}, session_id
    assert await holders(cluster) == {}


async def test_binary_files_through_the_proxy(cluster):
    data = os.urandom(1024 * 1024) + bytes(range(256))  # past HAProxy's buffer: routed by the query
    async with client(cluster, "binary") as remote:
        await remote.execute(ExecutionRequest(code="pass"))
        await remote.put_file("/sandbox/blob", data)
        result = await remote.execute(ExecutionRequest(
            code="import hashlib; print(hashlib.sha256(open('/sandbox/blob', 'rb').read()).hexdigest())"))
        assert result.stdout == hashlib.sha256(data).hexdigest() + "\n"
        assert await remote.get_file("/sandbox/blob") == data
    # The reference's clients name the session in the body only: HAProxy finds it within its buffer, here
    # before content of twice the buffer.
    upload = {"sessionId": "binary", "path": "/sandbox/ref", "content": base64.b64encode(data[:200_000]).decode()}
    assert (await raw_request(cluster.haproxy.port, "POST", "/file", upload)).status == 200
    await end_sessions(cluster, ["binary"])


async def test_sse_and_websocket_stream_through_the_proxy(cluster):
    await reference_run(cluster, "streams", "x = 'kept'")
    async with client(cluster, "streams") as remote:
        # An event arrives while its run is still going (HAProxy does not hold the stream back); leaving
        # the stream ends the run.
        with trio.fail_after(30):
            async for event in remote.execute_stream(ExecutionRequest(
                    code="print('first', flush=True); import time; time.sleep(60)")):
                assert (event.type, event.data[:5]) == ("stdout", "first")
                break
        # ... and HAProxy passes the client's leaving on (option abortonclose): the node ends the run at
        # once, not at the run's timeout (30 s).
        with trio.fail_after(20):
            while any(s["isActive"] for s in await sessions_of(cluster, "streams")):
                await trio.sleep(0.05)  # polling the node's state, not a synchronisation by sleep
        # A WebSocket's session id is in its first message: HAProxy routes it by the query.
        events = [e async for e in remote.execute_stream(ExecutionRequest(code="print(x)"), transport="ws")]
        assert "".join(e.data for e in events if e.type == "stdout") == "kept\n"
    assert list(await holders(cluster)) == ["streams"]  # every run was in the one session
    await end_sessions(cluster, ["streams"])
    # Both ways over a WebSocket: stdin is sent once the program's first line came back.
    control = RemoteControl()
    code = "import sys\nprint('ready', flush=True)\nprint(sys.stdin.read().upper())"
    stdout, last = "", None
    async with client(cluster) as remote:
        with trio.fail_after(30):
            async for event in remote.execute_stream(ExecutionRequest(code=code), control=control):
                if event.type == "stdout":
                    stdout += event.data
                    if stdout == "ready\n":
                        await control.write_stdin("hello")
                        await control.close_stdin()
                last = event
    assert (stdout, last.type, last.data) == ("ready\nHELLO\n", "exit", "0")


async def test_a_drained_node_keeps_its_sessions_and_new_ones_go_elsewhere(cluster):
    haproxy = cluster.haproxy
    old = [f"d{i}" for i in range(8)]
    for i, session_id in enumerate(old):
        await reference_run(cluster, session_id, f"x = {i}")
    held = await holders(cluster)
    drained = [s for s in old if held[s] == ["node1"]]
    assert drained, held
    assert haproxy.runtime(f"set server {BACKEND}/node1 state drain").strip() == ""
    try:
        haproxy.wait_for({"node1": "DRAIN"})
        for i, session_id in enumerate(old):  # node1's sessions too, through the drain
            assert (await reference_run(cluster, session_id, "print(x)"))["stdout"] == f"{i}\n"
        new = [f"n{i}" for i in range(8)]
        for session_id in new:
            await reference_run(cluster, session_id, "pass")
        held = await holders(cluster)
        assert all(held[s] == ["node2"] for s in new), held
        assert all(held[s] == ["node1"] for s in drained)
        # The restart (docs/scaling.md): node1's sessions are ended, then SIGTERM lets its run in flight
        # finish while every other request is served by node2.
        await end_sessions(cluster, drained[1:])
        answers = []

        async def in_flight() -> None:
            code = "import time; time.sleep(2); print(x)"
            answers.append(await reference_run(cluster, drained[0], code))

        node1 = cluster.nodes["node1"]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(in_flight)
            await wait_until_running(node1.port, drained[0])
            node1.proc.send_signal(signal.SIGTERM)
            for session_id in new:
                assert (await reference_run(cluster, session_id, "print('on')"))["stdout"] == "on\n"
        assert answers[0]["stdout"] == f"{old.index(drained[0])}\n"
        assert node1.proc.wait(30) == 0
        cluster.start("node1")
    finally:
        haproxy.runtime(f"set server {BACKEND}/node1 state ready")
    haproxy.wait_for({"node1": "UP"})
    await end_sessions(cluster, old + new)


async def test_a_killed_node_fails_its_runs_cleanly_and_leaves_nothing_behind(cluster):
    ids = [f"k{i}" for i in range(12)]
    for session_id in ids:
        await reference_run(cluster, session_id, f"x = {session_id!r}")
    held = await holders(cluster)
    lost = [s for s in ids if held[s] == ["node1"]]
    kept = [s for s in ids if held[s] == ["node2"]]
    assert len(lost) >= 3 and kept, held  # three runs in flight on node1, each in a session of its own
    victim = cluster.nodes["node1"]
    errors: dict[str, BaseException] = {}
    streaming, on_ws = trio.Event(), trio.Event()

    async def plain_run() -> None:
        try:
            await reference_run_raising(cluster, lost[0], "import time; time.sleep(120)")
        except Isol8Error as exc:
            errors["plain"] = exc

    async def ws_run() -> None:
        try:
            async with client(cluster, lost[1]) as remote:
                async for event in remote.execute_stream(ExecutionRequest(
                        code="print('started', flush=True); import time; time.sleep(120)"), transport="ws"):
                    on_ws.set()
            errors["ws"] = AssertionError(f"the WebSocket ended without an error: last event {event}")
        except Isol8Error as exc:
            errors["ws"] = exc

    async def streamed_run() -> None:
        try:
            async with client(cluster, lost[-1]) as remote:
                async for event in remote.execute_stream(ExecutionRequest(
                        code="print('started', flush=True); import time; time.sleep(120)")):
                    streaming.set()
            errors["stream"] = AssertionError(f"the stream ended without an error: last event {event}")
        except Isol8Error as exc:
            errors["stream"] = exc

    with trio.fail_after(60):  # no hang
        async with trio.open_nursery() as nursery:
            nursery.start_soon(plain_run)
            nursery.start_soon(streamed_run)
            nursery.start_soon(ws_run)
            await streaming.wait()
            await on_ws.wait()
            await wait_until_running(victim.port, lost[0])
            engine_ids = victim.engine_ids()
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait()
    assert isinstance(errors["plain"], SandboxError), errors
    assert "went away" in str(errors["plain"])
    assert isinstance(errors["stream"], Isol8Error), errors
    assert isinstance(errors["ws"], Isol8Error), errors

    # New sessions succeed at once (on node2), before HAProxy's checks have noticed node1 is gone.
    fresh = [f"f{i}" for i in range(6)]
    for session_id in fresh:
        assert (await reference_run(cluster, session_id, "x = 'fresh'"))["exitCode"] == 0
    for session_id in kept:
        assert (await reference_run(cluster, session_id, "print(x)"))["stdout"] == f"{session_id}\n"
    for session_id in lost:  # gone with node1: the id starts afresh on node2
        answer = await reference_run(cluster, session_id, "print('x' in globals()); x = 'fresh'")
        assert answer["stdout"] == "False\n"
    cluster.haproxy.wait_for({"node1": "DOWN"})

    # Started again on its state directory, node1 removes the containers its killed self left.
    assert await engine_containers(engine_ids)
    cluster.start("node1")
    assert await engine_containers(engine_ids) == []
    cluster.haproxy.wait_for({"node1": "UP"})
    # The sessions made on node2 while node1 was down stay there.
    for session_id in fresh + lost:
        assert (await reference_run(cluster, session_id, "print(x)"))["stdout"] == "fresh\n"
    held = await holders(cluster)
    await end_sessions(cluster, list(held))


async def reference_run_raising(cluster, session_id: str, code: str) -> dict:
    """A reference-shaped run whose error answer becomes the exception RemoteIsol8 would raise."""
    from isol8rt.client import error_for

    answer = await raw_request(cluster.haproxy.port, "POST", "/execute",
                               {"request": {"code": code, "runtime": "python"}, "sessionId": session_id})
    if answer.status != 200:
        raise error_for(answer.status, answer.body)
    return answer.json()


async def wait_until_running(port: int, session_id: str, timeout: float = 30) -> None:
    """Until the node says a run is executing in the session (its `isActive`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = await raw_request(port, "GET", "/sessions")
        if any(s["id"] == session_id and s["isActive"] for s in answer.json()["sessions"]):
            return
        await trio.sleep(0.05)  # polling the node's state, not a synchronisation by sleep
    raise AssertionError(f"no run started in session {session_id}")

