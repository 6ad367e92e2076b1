"""The API's JSON bodies, both ways: the envelopes around the library's requests and results, the other
endpoints' bodies and the WebSocket's messages, camelCase on the wire like :mod:`isol8rt.types`.
Encoders and decoders are built once, here. (Error bodies: :mod:`.errors`.)

``options`` stays raw JSON in the envelopes: the server's policy needs to know which options a client
actually wrote (a default filled in by decoding is not a request to loosen anything), so it decodes them
itself.
"""

from __future__ import annotations

import base64
from typing import Any, Union

import msgspec

from ..types import ExecutionRequest, ExecutionResult, FileBlob, SessionInfo, StreamEvent


class _Wire(msgspec.Struct, rename="camel", omit_defaults=True):
    pass


class OkBody(_Wire, omit_defaults=False):
    ok: bool = True


class SessionDeleted(_Wire, omit_defaults=False):
    """``DELETE /session/{id}``: ``ok`` whether or not there was such a session (as the reference answers);
    ``removed`` says whether there was (an extension)."""

    ok: bool
    removed: bool


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
    #: As the reference: images are removed unless the client says ``false``.
    images: bool = True


class CleanupReport(_Wire, omit_defaults=False):
    """What one part of a clean-up did: how many things it removed, how many it could not, and why."""

    removed: int = 0
    failed: int = 0
    errors: list[str] = msgspec.field(default_factory=list)


class CleanupBody(_Wire):
    ok: bool
    sessions: CleanupReport
    containers: CleanupReport
    #: Only when images were cleaned up.
    images: CleanupReport | None = None


class KeyCreate(_Wire):
    name: str
    #: None: the reference's default tenant (:data:`DEFAULT_TENANT`).
    tenant_id: str | None = None
    #: None: the server's default lifetime for keys.
    ttl_ms: int | None = None


#: The tenant of a key made without one, as in the reference.
DEFAULT_TENANT = "default"


class LoginRequest(_Wire):
    """``POST /auth/login``: every field optional (a name is made up, the tenant and TTL are defaults)."""

    name: str | None = None
    tenant_id: str | None = None
    ttl_ms: int | None = None


class LoginBody(_Wire, omit_defaults=False):
    """A short-lived key for the caller of ``POST /auth/login``, as the reference names its fields."""

    token: str
    expires_at: str | None
    key_id: str


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
    #: Since this server started (not kept across restarts); None when not used since.
    last_used_at: str | None = None
    #: Always false: revoked keys are not listed.
    revoked: bool = False


class KeysBody(_Wire):
    keys: list[KeyInfo]


class KeyRevoked(_Wire, omit_defaults=False):
    """``DELETE /auth/keys/{id}``: the reference's answer names the key it revoked."""

    ok: bool
    id: str


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

encode = msgspec.json.Encoder().encode


def utc_z(stamp: str) -> str:
    """A UTC time as the reference writes it (JavaScript's toISOString): ``...T12:34:56.789Z``, not
    ``...+00:00``."""
    return stamp[:-6] + "Z" if stamp.endswith("+00:00") else stamp

decode_execute = msgspec.json.Decoder(ExecuteBody).decode
decode_file_upload = msgspec.json.Decoder(FileUpload).decode
decode_cleanup = msgspec.json.Decoder(CleanupRequest).decode
decode_key_create = msgspec.json.Decoder(KeyCreate).decode
decode_login = msgspec.json.Decoder(LoginRequest).decode
decode_ws_envelope = msgspec.json.Decoder(WsEnvelope).decode
decode_ws_message = msgspec.json.Decoder(WsMessage).decode

# The client's side of the same shapes.
decode_result = msgspec.json.Decoder(ExecutionResult).decode
decode_event = msgspec.json.Decoder(StreamEvent).decode
decode_health = msgspec.json.Decoder(HealthBody).decode
decode_sessions = msgspec.json.Decoder(SessionsBody).decode
decode_file_content = msgspec.json.Decoder(FileContent).decode
decode_cleanup_body = msgspec.json.Decoder(CleanupBody).decode

OK = encode(OkBody())


def wire_files(files: dict[str, Any]) -> dict[str, Any]:
    """A request's files as they go on the wire: text stays text; bytes go as ``{"base64": ...}``, which
    the server writes back as the same bytes (msgspec alone would send them as a base64 *string*, which
    the server, like the reference, takes for the file's text)."""
    return {path: FileBlob(base64=base64.b64encode(content).decode("ascii"))
            if isinstance(content, (bytes, bytearray, memoryview)) else content
            for path, content in files.items()}
