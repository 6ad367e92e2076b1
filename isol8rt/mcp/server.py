"""An MCP server session: the lifecycle (initialize, initialized, ping), tools/list and tools/call, and
cancellation, over any pair of trio byte streams (stdio in ``isol8rt mcp``; memory streams in tests).

Each tools/call runs in a task of its own, so a ping or a cancellation is answered while a long run goes on;
``notifications/cancelled`` cancels that task, which kills the run and frees its container. A call that
carries a ``progressToken`` (in ``params._meta``) gets a ``notifications/progress`` every
:data:`PROGRESS_INTERVAL_S` while it runs, so a client can show that a long run is alive (and not time it
out). Every other
request is answered in order, at once. When the client closes its end (MCP's stdio shutdown), whatever is
still running is cancelled the same way.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import msgspec
import trio

from .._version import __version__
from ..errors import Isol8Error
from . import jsonrpc
from .jsonrpc import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, RpcError
from .tools import TOOLS, Context, Tool, WithImages, describe, parse_args

log = logging.getLogger("isol8rt.mcp")

#: Newest first; the answer to an initialize is the client's version when it is one of these, else ours.
PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
#: structuredContent and outputSchema exist from this version on.
STRUCTURED_SINCE = "2025-06-18"

INSTRUCTIONS = ("Runs code in isolated, locked-down containers. Use execute_code for any computation; "
                "print what you need to see.")
PERSISTENT_INSTRUCTIONS = (" State persists between calls in one session (files in /sandbox, Python and Node "
                           "variables); reset_session starts over.")

RECEIVE_SIZE = 64 * 1024

#: Seconds between progress notifications of a running call (none for a call shorter than this).
PROGRESS_INTERVAL_S = 1.0


class McpServer:
    """One client's MCP session against a started engine."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.protocol_version: str | None = None
        self.client_info: dict[str, Any] = {}
        self._tools = {tool.name: tool for tool in TOOLS if context.persistent or not tool.session_only}
        self._running: dict[jsonrpc.RequestId, trio.CancelScope] = {}
        self._send_lock = trio.Lock()
        self._send: trio.abc.SendStream | None = None

    # ------------------------------------------------------------------------------------ transport

    async def serve(self, receive: trio.abc.ReceiveStream, send: trio.abc.SendStream) -> None:
        """Answer messages from ``receive`` on ``send`` until the client closes its end."""
        self._send = send
        lines = jsonrpc.Lines()
        async with trio.open_nursery() as nursery:
            while True:
                data = await receive.receive_some(RECEIVE_SIZE)
                if not data:
                    break
                try:
                    batch = lines.feed(data)
                except RpcError as exc:
                    await self._write(jsonrpc.error(None, exc))
                    break
                for line in batch:
                    await self._dispatch(line, nursery)
            rest = lines.rest()
            if rest is not None:
                await self._dispatch(rest, nursery)
            # The client is gone (or done): nobody can read what is still running.
            nursery.cancel_scope.cancel()

    async def _write(self, data: bytes) -> None:
        assert self._send is not None
        async with self._send_lock:
            try:
                await self._send.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                log.debug("the client went away before an answer could be sent")

    async def _dispatch(self, line: bytes, nursery: trio.Nursery) -> None:
        try:
            request = jsonrpc.parse(line)
        except RpcError as exc:
            await self._write(jsonrpc.error(jsonrpc.error_id(line), exc))
            return
        if request is None:
            return
        if request.id is None:
            self._notification(request)
        elif request.id in self._running:
            await self._write(jsonrpc.error(request.id, RpcError(INVALID_REQUEST, "a request with this id is "
                                                                                  "still running")))
        else:
            scope = trio.CancelScope()
            self._running[request.id] = scope
            if request.method == "tools/call":
                nursery.start_soon(self._answer, request, scope)
            else:
                # Quick and in order: tools/list must see what initialize negotiated.
                await self._answer(request, scope)

    async def _answer(self, request: jsonrpc.Request, scope: trio.CancelScope) -> None:
        assert request.id is not None
        try:
            with scope:
                try:
                    answer = jsonrpc.result(request.id, await self.handle(request.method, request.params))
                except RpcError as exc:
                    answer = jsonrpc.error(request.id, exc)
                except Exception as exc:  # noqa: BLE001 - a bug answers an error, it does not end the session
                    log.exception("%s failed", request.method)
                    answer = jsonrpc.error(request.id, RpcError(jsonrpc.INTERNAL_ERROR, f"internal error: {exc}"))
            if not scope.cancelled_caught:
                await self._write(answer)
            # A cancelled request gets no answer (the MCP spec's rule for notifications/cancelled).
        finally:
            self._running.pop(request.id, None)

    def _notification(self, request: jsonrpc.Request) -> None:
        if request.method == "notifications/cancelled":
            request_id = request.params.get("requestId")
            scope = self._running.get(request_id) if isinstance(request_id, (str, int)) else None
            if scope is not None:
                log.debug("request %r cancelled: %s", request_id, request.params.get("reason"))
                scope.cancel()
        # notifications/initialized and anything else need no action.

    # ------------------------------------------------------------------------------------ methods

    async def handle(self, method: str, params: dict[str, Any]) -> Any:
        """The result of one request; RpcError for a protocol error."""
        if method == "initialize":
            return self._initialize(params)
        if method == "ping":
            return {}
        if method == "tools/list":
            return {"tools": [self._describe(tool) for tool in self._tools.values()]}
        if method == "tools/call":
            return await self._call(params)
        raise RpcError(METHOD_NOT_FOUND, f"method not found: {method}")

    def _initialize(self, params: dict[str, Any]) -> dict[str, Any]:
        requested = params.get("protocolVersion")
        self.protocol_version = requested if requested in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
        info = params.get("clientInfo")
        self.client_info = info if isinstance(info, dict) else {}
        instructions = INSTRUCTIONS + (PERSISTENT_INSTRUCTIONS if self.context.persistent else "")
        return {
            "protocolVersion": self.protocol_version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "isol8rt", "title": "isol8rt code sandbox", "version": __version__},
            "instructions": instructions,
        }

    @property
    def structured(self) -> bool:
        version = self.protocol_version or PROTOCOL_VERSIONS[0]
        return version >= STRUCTURED_SINCE  # the versions are ISO dates

    async def _run(self, tool: Tool, args: Any, token: str | int | None) -> msgspec.Struct:
        """The tool's output; with a progress token, progress notifications while it runs."""
        if token is None:
            return await tool.run(self.context, args)
        output: msgspec.Struct | None = None
        error: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._report_progress, token, tool.name)
            try:
                output = await tool.run(self.context, args)
            except Exception as exc:  # noqa: BLE001 - raised again below, outside the nursery's group
                error = exc
            finally:
                nursery.cancel_scope.cancel()
        if error is not None:
            raise error
        assert output is not None
        return output

    async def _report_progress(self, token: str | int, name: str) -> None:
        # progress must grow with each notification: it is the seconds the call has been running.
        started = trio.current_time()
        while True:
            await trio.sleep(PROGRESS_INTERVAL_S)
            elapsed = trio.current_time() - started
            await self._write(jsonrpc.notification("notifications/progress", {
                "progressToken": token, "progress": round(elapsed, 1),
                "message": f"{name}: running for {elapsed:.0f} s"}))

    def _describe(self, tool: Tool) -> dict[str, Any]:
        return describe(tool, structured=self.structured, open_world=self.context.engine.options.network != "none")

    async def _call(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("name")
        tool = self._tools.get(name) if isinstance(name, str) else None
        if tool is None:
            hint = "" if self.context.persistent or name not in {t.name for t in TOOLS} else \
                " (session tools need the server started with --persistent)"
            raise RpcError(INVALID_PARAMS, f"unknown tool: {name!r}{hint}")
        meta = params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        try:
            args = parse_args(tool, params.get("arguments"))
            await self.context.ensure_started()
            output = await self._run(tool, args, token if isinstance(token, (str, int)) else None)
        except (Isol8Error, FileNotFoundError) as exc:
            # A failure the model can act on is a tool result, not a protocol error.
            return {"content": [{"type": "text", "text": str(exc)}], "isError": True}
        images: list[bytes] = []
        if isinstance(output, WithImages):
            images = output.images
            output = output.output
        data = msgspec.to_builtins(output)
        answer: dict[str, Any] = {"content": [{"type": "text", "text": msgspec.json.encode(data).decode()}],
                                  "isError": False}
        answer["content"] += [{"type": "image", "data": base64.b64encode(png).decode(), "mimeType": "image/png"}
                              for png in images]
        if self.structured:
            answer["structuredContent"] = data
        return answer
