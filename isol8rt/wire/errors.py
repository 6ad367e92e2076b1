"""Error bodies: what every error answer of the API carries, ``{"error": message, "kind": kind}``.

``error`` is the reference system's field, a message for a person, which the reference's clients read
and show. ``kind`` is isol8rt's addition: a name from the closed set :data:`KINDS`, for programs. A client
decides what went wrong by ``kind`` (or, from a server that sends none, by the status alone), never by
reading the message. :class:`~isol8rt.RemoteIsol8` maps kinds to the library's exceptions.
"""

from __future__ import annotations

from typing import Final

import msgspec

# The kinds, each with its status. A new kind is a new entry in KINDS (docs/server.md lists them, and
# a test checks that the two agree).
INVALID_REQUEST: Final = "invalid_request"
METHOD_NOT_ALLOWED: Final = "method_not_allowed"
TOO_LARGE: Final = "too_large"
REQUEST_TIMEOUT: Final = "request_timeout"
UNAUTHORIZED: Final = "unauthorized"
FORBIDDEN: Final = "forbidden"
OPTION_NOT_ALLOWED: Final = "option_not_allowed"
NOT_FOUND: Final = "not_found"
SESSION_NOT_FOUND: Final = "session_not_found"
FILE_NOT_FOUND: Final = "file_not_found"
SESSION_CONFLICT: Final = "session_conflict"
RATE_LIMITED: Final = "rate_limited"
SANDBOX_FAILED: Final = "sandbox_failed"
INTERNAL_ERROR: Final = "internal_error"
UNAVAILABLE: Final = "unavailable"
SHUTTING_DOWN: Final = "shutting_down"

#: Every kind: its status, and when the server answers with it.
KINDS: Final[dict[str, tuple[int, str]]] = {
    INVALID_REQUEST: (400, "a malformed body, request or WebSocket handshake (the message names the field); "
                           "a missing parameter; an option below its floor; a file over the budget"),
    UNAUTHORIZED: (401, "no `Authorization` header"),
    FORBIDDEN: (403, "a wrong or expired key; the master key required; an `Origin` or `Host` not allowed"),
    OPTION_NOT_ALLOWED: (403, "an option or request field above the server's ceiling (the message names it)"),
    NOT_FOUND: (404, "an unknown path or API key; key management not enabled"),
    SESSION_NOT_FOUND: (404, "no such session for this key"),
    FILE_NOT_FOUND: (404, "no such file in the session"),
    METHOD_NOT_ALLOWED: (405, "the path has no such method (`Allow` lists those it has)"),
    REQUEST_TIMEOUT: (408, "a request's head or body slower than `--header-timeout` / `--body-timeout`"),
    SESSION_CONFLICT: (409, "a runtime switch or other options in a session; a session quota (count, memory, "
                            "server total)"),
    TOO_LARGE: (413, "a body over `--max-body` (413), or a head over 16 KiB (431)"),
    RATE_LIMITED: (429, "over `--rate-limit`, `--key-concurrency`, `--max-engines(-per-key)` or a connection "
                        "cap (`Retry-After` says when to try again)"),
    SANDBOX_FAILED: (500, "the sandbox failed: its container died or its agent broke; the run's outcome is "
                          "unknown"),
    INTERNAL_ERROR: (500, "a bug in the server (it is logged; the answer never carries a traceback)"),
    UNAVAILABLE: (503, "Docker unavailable, the runtime's image not built, or the shared key store (PostgreSQL) "
                       "unreadable for longer than `--keys-max-stale`"),
    SHUTTING_DOWN: (503, "the server is stopping (`Retry-After`)"),
}

#: The kind an answer of a status has when nothing more precise is known: the server's default for a
#: status, and how a client reads a body without a kind (the reference server's, a proxy's).
STATUS_KINDS: Final[dict[int, str]] = {
    400: INVALID_REQUEST, 401: UNAUTHORIZED, 403: FORBIDDEN, 404: NOT_FOUND, 405: METHOD_NOT_ALLOWED,
    408: REQUEST_TIMEOUT, 409: SESSION_CONFLICT, 413: TOO_LARGE, 429: RATE_LIMITED, 431: TOO_LARGE,
    500: INTERNAL_ERROR, 503: UNAVAILABLE,
}


def kind_of_status(status: int) -> str:
    """The kind for ``status`` when the answer names none: :data:`STATUS_KINDS`, else by class (4xx an
    invalid request, 5xx an internal error)."""
    return STATUS_KINDS.get(status) or (INVALID_REQUEST if 400 <= status < 500 else INTERNAL_ERROR)


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every error answer's body: ``error`` for people, ``kind`` for programs."""

    error: str
    # Always sent; None only in what a client decodes from a server that sends none (the reference).
    kind: str | None = None


_encode = msgspec.json.Encoder().encode
decode_error = msgspec.json.Decoder(ErrorBody).decode


def encode_error(kind: str, message: str) -> bytes:
    """An error answer's body."""
    return _encode(ErrorBody(error=message, kind=kind))
