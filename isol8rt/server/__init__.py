"""The isol8rt HTTP server: the reference system's REST API (plus a WebSocket, key management and an
OpenAPI document) on trio and h11, with no web framework.

Layers, bottom up: ``_http``, ``_sse`` and ``_websocket`` are sans-io protocol code (bytes in, events
out); ``server`` does the I/O and the lifecycle; ``app`` holds the routes; ``auth``, ``keys``, ``limits``,
``policy``, ``engines``, ``sessions`` and ``orphans`` are the rules the routes follow.

    trio.run(Server(ServerConfig(api_key="...")).run)
"""

from .server import Server, ServerConfig

__all__ = ["Server", "ServerConfig"]
