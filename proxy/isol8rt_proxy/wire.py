"""Every line the proxy reads on stdin and writes on stdout: one JSON object each, tagged by ``type``.

stdin (from the agent)::

    {"type": "policy", "run": "<id>", "allow": [...], "deny": [...], "allow_private": [...],
     "connect_ports": [...]}      replace the policy; omitted lists are empty, omitted connect_ports
                                  is [443, 80]; answered by policy_ok, or by error (old policy stays).
                                  What the fields mean: see ``policy``. It applies to every request
                                  that arrives after policy_ok; tunnels already open are not re-judged.
    {"type": "reset"}             refuse every connection waiting to be accepted, close every client
                                  connection and tunnel; answered by reset_ok

stdout (to the agent)::

    {"type": "listening", "port": N}                 first line, once the port is bound
    {"type": "policy_ok", "run": "<id>"}             the policy is in force for every later request
    {"type": "reset_ok", "closed": N, "refused": M}  every connection open or waiting at the reset is
                                                     closed (counts omitted when 0)
    {"type": "reset_failed", "message": "..."}       the backlog could not be emptied (no descriptors)
    {"type": "error", "message": "...", "run": ...}  a control line was refused (run: if known)
    {"type": "request", ...}                         one per request: see RequestLog

Encoded with msgspec, so quotes, newlines and control characters in what a client sent are escaped, and
text that was not valid UTF-8 reaches the log as ``\\xNN`` escapes (see :func:`text`).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from isol8rt_proxy.policy import DEFAULT_CONNECT_PORTS

# --------------------------------------------------------------------------------------------------
# stdin


class _In(msgspec.Struct, frozen=True, tag_field="type", forbid_unknown_fields=True):
    # Unknown fields are refused: a misspelt "alow" silently ignored would open the sandbox up.
    pass


class SetPolicy(_In, tag="policy"):
    run: str | None = None
    allow: list[str] = []
    deny: list[str] = []
    allow_private: list[str] = []
    connect_ports: list[int] = msgspec.field(default_factory=lambda: list(DEFAULT_CONNECT_PORTS))


class Reset(_In, tag="reset"):
    pass


Control = SetPolicy | Reset

# --------------------------------------------------------------------------------------------------
# stdout


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


Out = Listening | PolicyOk | ResetOk | ResetFailed | Error | RequestLog

control_decoder = msgspec.json.Decoder(Control)
encoder = msgspec.json.Encoder()


def text(raw: bytes) -> str:
    """Bytes from the wire as a loggable str: UTF-8 where valid, ``\\xNN`` for every other byte."""
    return raw.decode("utf-8", "backslashreplace")


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
