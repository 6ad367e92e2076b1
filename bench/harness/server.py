"""``isol8rt serve`` in a subprocess, for the server-vs-library variant.

The server gets the same pool settings as the library engine it is compared with, listens on a free
loopback port, and is called through :class:`isol8rt.client.RemoteIsol8` (HTTP/1.1 keep-alive). When this
checkout has no server (or it does not start), :func:`available` / :func:`start` say why and the variant
is reported "not available".
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from collections import deque

import trio

STARTUP_TIMEOUT_S = 90


def available() -> str | None:
    """None when the server and its client can be imported, else the reason they cannot."""
    try:
        import isol8rt.client  # noqa: F401
        import isol8rt.server  # noqa: F401
        from isol8rt.cli import serve  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means: not available here
        return f"isol8rt.server / isol8rt.client cannot be imported ({type(exc).__name__}: {exc})"
    return None


class ServerProcess:
    def __init__(self, process: trio.Process, url: str, key: str, state_dir: tempfile.TemporaryDirectory,
                 log: deque[str]) -> None:
        self.process = process
        self.url = url
        self.key = key
        self._state_dir = state_dir
        self.log = log

    def client(self):
        from isol8rt.client import RemoteIsol8

        return RemoteIsol8(self.url, self.key)

    async def stop(self) -> None:
        with trio.CancelScope(shield=True):
            if self.process.returncode is None:
                self.process.terminate()
                with trio.move_on_after(30):
                    await self.process.wait()
                if self.process.returncode is None:
                    self.process.kill()
                    await self.process.wait()
            self._state_dir.cleanup()


async def start(nursery: trio.Nursery, *, pool_size: int, max_concurrent: int, runtime: str = "python") -> ServerProcess:
    """Start the server and wait until it says where it listens (its pool is warm by then)."""
    key = secrets.token_hex(16)
    state_dir = tempfile.TemporaryDirectory(prefix="isol8rt-bench-server-")
    command = [sys.executable, "-m", "isol8rt", "serve", "--port", "0", "--no-keys-db", "--prewarm", runtime,
               "--pool-size", str(pool_size), "--max-concurrent", str(max_concurrent), "--key-concurrency", "0",
               "--state-dir", state_dir.name]
    process = await trio.lowlevel.open_process(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "ISOL8_API_KEY": key, "PYTHONUNBUFFERED": "1"},
    )
    log: deque[str] = deque(maxlen=50)
    found = trio.Event()
    url: list[str] = []

    stderr = process.stderr
    assert stderr is not None

    async def read_stderr() -> None:
        buffer = b""
        async with stderr:
            while True:
                try:
                    data = await stderr.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if not data:
                    found.set()
                    return
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace")
                    log.append(line)
                    if "serving on " in line and not url:
                        url.append(line.split("serving on ", 1)[1].strip())
                        found.set()

    nursery.start_soon(read_stderr)
    server = ServerProcess(process, "", key, state_dir, log)
    with trio.move_on_after(STARTUP_TIMEOUT_S):
        await found.wait()
    if not url:
        await server.stop()
        tail = " | ".join(list(log)[-3:]) or "no output"
        raise RuntimeError(f"isol8rt serve did not start within {STARTUP_TIMEOUT_S} s: {tail}")
    server.url = url[0]
    return server
