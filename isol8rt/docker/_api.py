"""The Docker Engine API's conventions, sans-io: request targets, path quoting, the hijack request's
headers, error answers to exceptions, and the JSON lines of progress bodies.

HTTP itself is :mod:`isol8rt.wire.http_client`'s; this module knows only what Docker adds to it.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

import msgspec

from ._errors import APIError, Conflict, NotFound

#: What asks the daemon to hijack a connection for attach and exec (it answers ``101 UPGRADED``).
UPGRADE_TCP = ((b"Connection", b"Upgrade"), (b"Upgrade", b"tcp"))


def target(prefix: str, path: str, params: dict[str, object] | None = None) -> str:
    """The request target ``prefix + path + ?query``.

    Query values: ``None`` is left out, ``True``/``False`` become ``1``/``0``, a list repeats the
    parameter, anything else is ``str()``-ed.
    """
    if not params:
        return prefix + path
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else (value,)
        for item in values:
            if isinstance(item, bool):
                item = "1" if item else "0"
            pairs.append((key, str(item)))
    if not pairs:
        return prefix + path
    return f"{prefix}{path}?{urlencode(pairs, quote_via=quote)}"


def quote_path(segment: str) -> str:
    """Quote a container id, exec id or image reference for a path. Slashes and colons stay: Docker's
    image routes take the whole reference (``registry:5000/repo:tag``) as one path parameter."""
    return quote(segment, safe="/:@")


class _ErrorBody(msgspec.Struct):
    message: str = ""


_decode_error_body = msgspec.json.Decoder(_ErrorBody).decode


def error_message(body: bytes, fallback: str) -> str:
    """Docker's message from an error body ``{"message": "..."}``; the body text itself when it is not
    JSON (some routes answer ``404 page not found`` as text); ``fallback`` when it is empty."""
    try:
        message = _decode_error_body(body).message
    except msgspec.DecodeError:
        message = body.decode("utf-8", "replace")
    return message.strip() or fallback


def api_error(status: int, reason: bytes, body: bytes, method: str, path: str) -> APIError:
    """The exception for an error answer: :class:`NotFound` for 404, :class:`Conflict` for 409,
    :class:`APIError` for any other status."""
    cls = NotFound if status == 404 else Conflict if status == 409 else APIError
    return cls(status, error_message(body, reason.decode("latin-1") or f"HTTP {status}"), method, path)


class JSONLines:
    """Split a progress body (build, import, pull) into its JSON messages.

    Docker writes one JSON object per line, but the chunks of the body cut lines anywhere; a line is
    handed out only once complete.
    """

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> list[bytes]:
        """Complete, non-blank lines that ``data`` finishes."""
        if self._tail:
            data = self._tail + data
        lines = data.split(b"\n")
        self._tail = lines.pop()
        return [line for line in lines if line.strip()]

    def close(self) -> list[bytes]:
        """The last line, if the body did not end with a newline."""
        tail, self._tail = self._tail, b""
        return [tail] if tail.strip() else []
