"""``isol8rt mcp``'s transport: the MCP server on this process's stdin and stdout.

stdout carries protocol messages only; logs go to stderr.
"""

from __future__ import annotations

import logging
import os

import trio

from ..engine import DockerIsol8
from ..errors import Isol8Error
from ..types import Isol8Options
from .server import McpServer
from .tools import Context

log = logging.getLogger("isol8rt.mcp")


async def serve_stdio(options: Isol8Options, *, persistent: bool = False, prewarm: list[str] | None = None) -> None:
    """Serve MCP on stdin/stdout with an engine of ``options`` until the client closes stdin; then remove
    every container the engine made.

    The engine starts in the background and again at each tool call until it is up: with Docker down the
    handshake and tools/list are answered all the same, and each call fails with a message saying what to
    do (an MCP client shows it; one that lost its server shows only "disconnected")."""
    engine = DockerIsol8(options)
    try:
        server = McpServer(Context(engine=engine, persistent=persistent, max_timeout_ms=options.timeout_ms,
                                   start=engine.start))
        # Duplicates: closing the streams restores the descriptors' blocking mode and leaves 0 and 1 open.
        async with trio.lowlevel.FdStream(os.dup(0)) as stdin, trio.lowlevel.FdStream(os.dup(1)) as stdout:
            async with trio.open_nursery() as nursery:
                # In the background: the client's initialize is answered at once.
                nursery.start_soon(_start, engine, [] if persistent else (prewarm or []))
                await server.serve(stdin, stdout)
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await engine.stop()


async def _start(engine: DockerIsol8, runtimes: list[str]) -> None:
    try:
        await engine.start(prewarm=runtimes or False)
    except Isol8Error as exc:
        # Not fatal: each tool call tries again, and reports this to the client if it still holds.
        log.warning("the engine is not available yet: %s", exc)
