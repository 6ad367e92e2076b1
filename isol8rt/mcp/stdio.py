"""``isol8rt mcp``'s transport: the MCP server on this process's stdin and stdout.

stdout carries protocol messages only; logs go to stderr.
"""

from __future__ import annotations

import os

import trio

from ..engine import DockerIsol8
from ..types import Isol8Options
from .server import McpServer
from .tools import Context


async def serve_stdio(options: Isol8Options, *, persistent: bool = False, prewarm: list[str] | None = None) -> None:
    """Start an engine with ``options`` and serve MCP on stdin/stdout until the client closes stdin; then
    remove every container the engine made."""
    async with DockerIsol8(options) as engine:
        server = McpServer(Context(engine=engine, persistent=persistent, max_timeout_ms=options.timeout_ms))
        # Duplicates: closing the streams restores the descriptors' blocking mode and leaves 0 and 1 open.
        async with trio.lowlevel.FdStream(os.dup(0)) as stdin, trio.lowlevel.FdStream(os.dup(1)) as stdout:
            async with trio.open_nursery() as nursery:
                if prewarm and not persistent:
                    # In the background: the client's initialize is answered at once.
                    nursery.start_soon(_prewarm, engine, prewarm)
                await server.serve(stdin, stdout)
                nursery.cancel_scope.cancel()


async def _prewarm(engine: DockerIsol8, runtimes: list[str]) -> None:
    await engine.start(prewarm=runtimes)
