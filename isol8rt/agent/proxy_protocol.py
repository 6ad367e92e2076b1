"""The lines between the agent and the egress proxy it starts for filtered networking: one JSON object a
line, tagged by ``type``. Both programs use these definitions: the agent to write the proxy's stdin and
read its stdout, the proxy (``proxy/``, its own program) the other way round.

They live here, in the agent's package, because the agent may import nothing but the standard library,
msgspec and its own package, while the proxy is started by the agent in the same image and can be given
the agent's package: the image puts it in ``/opt/isol8rt/lib`` with an empty ``isol8rt/__init__.py``
(see ``isol8rt/images/catalog.py`` and ``proxy/main.py``). Like :mod:`.protocol`, this module does no I/O.

stdin (from the agent)::

    {"type": "policy", "run": "<id>", "allow": [...], "deny": [...], "allow_private": [...],
     "connect_ports": [...]}      replace the policy; omitted lists are empty, omitted connect_ports
                                  is [443, 80]; answered by policy_ok, or by error (old policy stays).
                                  What the fields mean: see the proxy's ``policy``. It applies to every
                                  request that arrives after policy_ok; tunnels already open are not
                                  re-judged.
    {"type": "reset"}             refuse every connection waiting to be accepted, close every client
                                  connection and tunnel; answered by reset_ok (or reset_failed)

stdout (to the agent)::

    {"type": "listening", "port": N}                 first line, once the port is bound
    {"type": "policy_ok", "run": "<id>"}             the policy is in force for every later request
    {"type": "reset_ok", "closed": N, "refused": M}  every connection open or waiting at the reset is
                                                     closed (counts omitted when 0)
    {"type": "reset_failed", "message": "..."}       the backlog could not be emptied (no descriptors)
    {"type": "error", "message": "...", "run": ...}  a control line was refused (run: if known)
    {"type": "request", ...}                         one per request: see RequestLog

Encoded with msgspec, so quotes, newlines and control characters in what a client sent are escaped.
"""

from __future__ import annotations

from typing import Literal, Union

import msgspec

#: The ports CONNECT may reach when a policy names none.
DEFAULT_CONNECT_PORTS = (443, 80)

# --------------------------------------------------------------------------------------------------
# stdin: agent -> proxy


class _In(msgspec.Struct, frozen=True, tag_field="type", forbid_unknown_fields=True):
    # Unknown fields are refused: a misspelt "alow" silently ignored would open the sandbox up.
    pass


class SetPolicy(_In, tag="policy"):
    run: str | None = None
    allow: list[str] = []
    deny: list[str] = []
    allow_private: list[str] = []
    connect_ports: list[int] = msgspec.field(default_factory=lambda: list(DEFAULT_CONNECT_PORTS))


class ResetConnections(_In, tag="reset"):
    """Refuse what waits in the backlog, close every connection: the run that made them is over."""


Control = Union[SetPolicy, ResetConnections]

# --------------------------------------------------------------------------------------------------
# stdout: proxy -> agent


class _Out(msgspec.Struct, frozen=True, tag_field="type", omit_defaults=True):
    pass


class Listening(_Out, tag="listening"):
    port: int


class PolicyOk(_Out, tag="policy_ok"):
    run: str | None


class ResetOk(_Out, tag="reset_ok"):
    #: Connections that were open, and connections refused unread from the listening backlog.
    closed: int = 0
    refused: int = 0


class ResetFailed(_Out, tag="reset_failed"):
    """The answer to a reset that could not empty the listening backlog: the agent retires the container.
    A line of its own, so that an unrelated error printed meanwhile is never taken for it."""

    message: str


class Error(_Out, tag="error"):
    message: str
    run: str | None = None


class RequestLog(_Out, tag="request", kw_only=True):
    """One request: a plain-HTTP exchange, a CONNECT tunnel (logged when it closes) or a refusal.

    ``action`` is the policy's verdict: BLOCK with a ``reason`` when the proxy refused the destination
    (or could not parse the request: status 400), ALLOW otherwise, even when the origin then could not
    be reached (``status`` 502/504 and an ``error``). ``bytes_in`` counts bytes from the origin to the
    client and ``bytes_out`` from the client to the origin: body bytes for plain HTTP, every byte
    through the tunnel for CONNECT. ``status`` is what the client got (200 for an established tunnel).
    """

    timestamp: str  # ISO 8601, UTC, milliseconds: when the request head arrived
    run: str | None  # the run id of the policy in force when the request arrived
    method: str | None  # None only when the request line itself was unreadable
    host: str | None
    port: int | None
    path: str | None = None  # plain HTTP only
    action: Literal["ALLOW", "BLOCK"]
    reason: str | None = None  # BLOCK only
    status: int | None  # None if the client never got a status line (cut short)
    bytes_in: int
    bytes_out: int
    duration_ms: float
    error: str | None = None  # ALLOW whose origin failed


Out = Union[Listening, PolicyOk, ResetOk, ResetFailed, Error, RequestLog]

#: What the proxy decodes its stdin with, and the agent the proxy's stdout.
control_decoder = msgspec.json.Decoder(Control)
output_decoder = msgspec.json.Decoder(Out)
encoder = msgspec.json.Encoder()


class LineSplitter:
    """Cuts a byte stream into lines. A line longer than ``limit`` is dropped whole, reported as None."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes | None]:
        lines: list[bytes | None] = []
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end == -1:
                break
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._discarding:
                self._discarding = False
            else:
                lines.append(line if len(line) <= self._limit else None)
        if len(self._buffer) > self._limit:
            if not self._discarding:
                lines.append(None)
            self._discarding = True
            self._buffer.clear()
        return lines
