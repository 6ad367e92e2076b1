"""A Model Context Protocol server for isol8rt, written from the specification (no SDK): JSON-RPC 2.0 over
newline-delimited stdio, the tools an agent needs to run code in a sandbox.

    isol8rt mcp [--persistent] [--timeout MS] [--memory SIZE] [--net MODE] ...

``jsonrpc`` frames messages, ``server`` is the session (lifecycle, tools/list, tools/call, cancellation),
``tools`` the tools and their schemas, ``options`` the engine options, ``stdio`` the transport.
"""

from .options import Overrides, build_options
from .server import PROTOCOL_VERSIONS, McpServer
from .stdio import serve_stdio
from .tools import TOOLS, Context

__all__ = ["PROTOCOL_VERSIONS", "TOOLS", "Context", "McpServer", "Overrides", "build_options", "serve_stdio"]
