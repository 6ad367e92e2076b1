"""Run the agent as a local process (no container) and talk to it over pipes, as the engine does over the
container's attach stream. User processes run as SANDBOX_UID in a temporary sandbox directory.

Not uid 1000: on the host there is no PID namespace around the agent, and its reset kills every process of
its sandbox uid, which for 1000 would include the user processes of every container on this machine (and
a real user's). Not a fixed uid either: test sessions run side by side on one machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import trio

from isol8rt.agent import protocol

_MAIN = Path(protocol.__file__).with_name("main.py")
#: A uid nothing else on a test machine runs as: not even another test session's local agents, whose resets
#: kill every process of their sandbox uid (two sessions sharing one killed each other's runs).
SANDBOX_UID = 47_000_000 + os.getpid() % 1_000_000


class LocalAgent:
    def __init__(self, process: trio.Process, sandbox: str) -> None:
        self.process = process
        self.sandbox = sandbox
        self.uid = SANDBOX_UID
        self.decoder = protocol.host_decoder()
        self.encoder = protocol.FrameEncoder()
        self.pending: list = []

    async def send(self, *messages) -> None:
        await self.process.stdin.send_all(self.encoder.encode_many(list(messages)))

    async def receive(self):
        while not self.pending:
            data = await self.process.stdout.receive_some(65536)
            if not data:
                raise EOFError("agent closed its stdout")
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0)

    async def until(self, predicate, *, timeout: float = 10.0) -> list:
        """Every message up to and including the first that satisfies ``predicate``."""
        seen = []
        with trio.move_on_after(timeout):
            while True:
                message = await self.receive()
                seen.append(message)
                if predicate(message):
                    return seen
        raise AssertionError(f"no matching message within {timeout} s; got {seen!r}")

    async def run(self, run: protocol.Run, *before, timeout: float = 10.0):
        """Send ``before`` messages and ``run``; returns (stdout, stderr, exit, all messages)."""
        await self.send(*before, run)
        seen = await self.until(lambda m: isinstance(m, (protocol.Exit, protocol.Failed)) and m.id == run.id,
                                timeout=timeout)
        out = b"".join(m.data for m in seen if isinstance(m, protocol.Output) and m.fd == 1)
        err = b"".join(m.data for m in seen if isinstance(m, protocol.Output) and m.fd == 2)
        return out, err, seen[-1], seen


@pytest.fixture
def sandbox_dir():
    # Not under pytest's tmp_path: its parents are private to root, and the sandbox uid must reach it.
    root = tempfile.mkdtemp(prefix="isol8rt-agent-")
    os.chmod(root, 0o755)
    os.chown(root, SANDBOX_UID, SANDBOX_UID)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def agent(sandbox_dir):
    if os.getuid() != 0:
        pytest.skip("the local agent tests drop to another uid and so need root")
    process = await trio.lowlevel.open_process(
        # The image's entry point, isolated as there, so the greeting it sends before loading the agent is
        # the one tested (not -S: msgspec comes from this interpreter's site here, not the image's).
        [sys.executable, "-I", "-B", str(_MAIN),
         "--sandbox", sandbox_dir, "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--wipe", sandbox_dir],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    local = LocalAgent(process, sandbox_dir)
    ready = await local.until(lambda m: isinstance(m, protocol.Ready))
    assert ready[-1].version == protocol.PROTOCOL_VERSION
    try:
        yield local
    finally:
        with trio.move_on_after(5):
            await local.send(protocol.Shutdown())
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
def core():
    """An agent core, started (its greeting taken), on a clock the test turns: see core_kit.py."""
    from .core_kit import CoreHarness

    harness = CoreHarness()
    harness.start()
    return harness
