"""The isol8rt HTTP server: the reference system's REST API (plus a WebSocket, key management and an
OpenAPI document) on trio and h11, with no web framework.

Layers, bottom up: ``_http_server`` is the server's side of HTTP, sans-io (bytes in, requests out); what
the server and its client both speak, also sans-io, is :mod:`isol8rt.wire`'s (SSE, WebSocket, the API's
bodies, error bodies). ``server`` does the I/O and the lifecycle (``settings`` configures it); ``app``
holds the routes, and ``pieces`` streams the answers that carry files; ``auth``, ``keys`` (and
``keys_pg``, the keys several nodes share), ``limits``, ``policy``, ``origins``, ``engines``, ``sessions``,
``slots`` and ``orphans`` are the rules the routes follow; ``openapi`` describes the API.

    trio.run(Server(ServerConfig(api_key="...")).run)
"""

from .server import Server, ServerConfig

__all__ = ["Server", "ServerConfig"]
