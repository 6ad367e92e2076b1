"""The server's own wire types: the envelopes around the library's requests and results, camelCase on the
wire like :mod:`isol8rt.types`. Encoders and decoders are built once, here.

``options`` stays raw JSON in the envelopes: the policy needs to know which options a client actually
wrote (a default filled in by decoding is not a request to loosen anything), so it decodes them itself.

Answers that carry files (a result's ``files``, ``GET /file``'s ``content``) are encoded in pieces
(:class:`Pieces`): the JSON around them, then their base64 a slice at a time, of a length known in
advance. The file's bytes are the only whole copy the server holds while it sends them.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Any, Iterator, Union

import msgspec

from ..types import ExecutionRequest, ExecutionResult, SessionInfo, StreamEvent


class _Wire(msgspec.Struct, rename="camel", omit_defaults=True):
    pass


class ErrorBody(_Wire):
    error: str


class OkBody(_Wire, omit_defaults=False):
    ok: bool = True


class HealthBody(_Wire):
    status: str
    version: str


class ExecuteBody(_Wire):
    """``POST /execute`` and ``POST /execute/stream``."""

    request: ExecutionRequest
    options: dict[str, Any] | None = None
    session_id: str | None = None


class FileUpload(_Wire):
    """``POST /file``: ``content`` is base64."""

    session_id: str | None = None
    path: str | None = None
    content: str | None = None


class FileContent(_Wire):
    content: str


class SessionsBody(_Wire):
    sessions: list[SessionInfo]


class CleanupRequest(_Wire):
    images: bool = False


class CleanupBody(_Wire):
    ok: bool
    sessions: int
    containers: int
    images: int | None = None


class KeyCreate(_Wire):
    name: str
    tenant_id: str | None = None
    ttl_ms: int | None = None


class KeyCreated(_Wire, omit_defaults=False):
    """The one answer that carries a key: ``POST /auth/keys`` (201)."""

    id: str
    key: str
    name: str
    key_prefix: str
    tenant_id: str | None
    expires_at: str | None


class KeyInfo(_Wire, omit_defaults=False):
    """A key as ``GET /auth/keys`` lists it: never the key, never its hash."""

    id: str
    name: str
    key_prefix: str
    tenant_id: str | None
    created_at: str
    expires_at: str | None


class KeysBody(_Wire):
    keys: list[KeyInfo]


# WebSocket messages from the client, told apart by "type". The envelope is decoded first, so an
# unknown type is answered by name rather than as a schema error.
class WsEnvelope(msgspec.Struct):
    type: str


class WsExecute(_Wire, tag="execute", tag_field="type"):
    request: ExecutionRequest
    options: dict[str, Any] | None = None
    session_id: str | None = None


class WsStdin(_Wire, tag="stdin", tag_field="type"):
    data: str = ""
    #: Close the program's stdin after ``data`` (an extension: the reference has no way to send EOF).
    eof: bool = False


class WsSignal(_Wire, tag="signal", tag_field="type"):
    signal: Union[int, str]


WsMessage = Union[WsExecute, WsStdin, WsSignal]
WS_TYPES = ("execute", "stdin", "signal")

ENCODER = msgspec.json.Encoder()
encode = ENCODER.encode

decode_execute = msgspec.json.Decoder(ExecuteBody).decode
decode_file_upload = msgspec.json.Decoder(FileUpload).decode
decode_cleanup = msgspec.json.Decoder(CleanupRequest).decode
decode_key_create = msgspec.json.Decoder(KeyCreate).decode
decode_ws_envelope = msgspec.json.Decoder(WsEnvelope).decode
decode_ws_message = msgspec.json.Decoder(WsMessage).decode

# The client's side of the same shapes.
decode_result = msgspec.json.Decoder(ExecutionResult).decode
decode_event = msgspec.json.Decoder(StreamEvent).decode
decode_error = msgspec.json.Decoder(ErrorBody).decode
decode_health = msgspec.json.Decoder(HealthBody).decode
decode_sessions = msgspec.json.Decoder(SessionsBody).decode
decode_file_content = msgspec.json.Decoder(FileContent).decode
decode_cleanup_body = msgspec.json.Decoder(CleanupBody).decode

OK = encode(OkBody())

#: Raw bytes base64-encoded per piece: a multiple of 3 (no padding until the end), 64 KiB of text.
_B64_STEP = 48 * 1024


@dataclass(frozen=True, slots=True)
class Pieces:
    """A JSON answer of ``length`` bytes, as the pieces that make it up."""

    length: int
    pieces: Iterator[bytes]


def _b64_length(size: int) -> int:
    return 4 * ((size + 2) // 3)


def _b64(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), _B64_STEP):
        yield binascii.b2a_base64(view[start:start + _B64_STEP], newline=False)


def _files_pieces(head: bytes, files: dict[str, bytes]) -> Iterator[bytes]:
    yield head
    for index, (path, data) in enumerate(files.items()):
        yield (b"," if index else b"") + encode(path) + b':"'
        yield from _b64(data)
        yield b'"'
    yield b"}}"


def encode_result(result: ExecutionResult) -> bytes | Pieces:
    """A result's JSON: whole bytes, or :class:`Pieces` when it carries files."""
    if not result.files:
        return encode(result)
    files = result.files
    # The result without its files ends in "}": reopen it for them.
    head = encode(msgspec.structs.replace(result, files=None))[:-1] + b',"files":{'
    length = len(head) + len(files) - 1 + 2 + sum(len(encode(path)) + 3 + _b64_length(len(data))
                                                   for path, data in files.items())
    return Pieces(length, _files_pieces(head, files))


def _content_pieces(data: bytes) -> Iterator[bytes]:
    yield b'{"content":"'
    yield from _b64(data)
    yield b'"}'


def encode_file_content(data: bytes) -> Pieces:
    """``GET /file``'s answer, ``{"content": base64}``."""
    return Pieces(len(b'{"content":""}') + _b64_length(len(data)), _content_pieces(data))
