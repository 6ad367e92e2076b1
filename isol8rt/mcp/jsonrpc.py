"""JSON-RPC 2.0 as MCP's stdio transport uses it: one message per line, UTF-8 JSON, no batches.

No I/O here: splitting bytes into lines, and turning a line into a request, a notification or an error
answer.
"""

from __future__ import annotations

from typing import Any

import msgspec

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

#: A message longer than this is refused (files travel base64 inside messages, so it is generous).
MAX_LINE = 64 * 1024 * 1024

RequestId = str | int

_encoder = msgspec.json.Encoder()


class RpcError(Exception):
    """An error answered to the peer: ``{"code", "message", "data"?}``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class Request(msgspec.Struct, frozen=True):
    method: str
    params: dict[str, Any]
    #: None for a notification (no answer is sent).
    id: RequestId | None


class Lines:
    """Split a byte stream into lines; a line over MAX_LINE raises RpcError (the stream cannot go on)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes | bytearray) -> list[bytes]:
        self._buffer += data
        lines = []
        start = 0
        while True:
            end = self._buffer.find(b"\n", start)
            if end < 0:
                break
            lines.append(bytes(self._buffer[start:end]))
            start = end + 1
        del self._buffer[:start]
        if len(self._buffer) > MAX_LINE:
            raise RpcError(INVALID_REQUEST, f"message longer than {MAX_LINE} bytes")
        return [line for line in lines if line.strip()]

    def rest(self) -> bytes | None:
        """What was left without a final newline when the stream ended."""
        return bytes(self._buffer) if self._buffer.strip() else None


def parse(line: bytes) -> Request | None:
    """A request or notification; None for a message we need not answer (a response to us). Raises
    RpcError, whose answer goes to ``error_id(line)``."""
    try:
        message = msgspec.json.decode(line)
    except msgspec.DecodeError:
        raise RpcError(PARSE_ERROR, "parse error: not valid JSON") from None
    if isinstance(message, list):
        raise RpcError(INVALID_REQUEST, "batches are not supported (MCP 2025-06-18 removed them)")
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'not a JSON-RPC 2.0 message (expected an object with "jsonrpc": "2.0")')
    method = message.get("method")
    if method is None:
        return None  # a response or an error: we send no requests, so nothing waits for one
    has_id = "id" in message
    request_id = message.get("id")
    if has_id and (isinstance(request_id, bool) or not isinstance(request_id, (str, int))):
        raise RpcError(INVALID_REQUEST, "id must be a string or an integer")
    if not isinstance(method, str):
        raise RpcError(INVALID_REQUEST, "method must be a string")
    params = message.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "params must be an object")
    return Request(method=method, params=params, id=request_id if has_id else None)


def error_id(line: bytes) -> RequestId | None:
    """The id to answer a malformed message with, when one can be read from it."""
    try:
        message = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return None
    request_id = message.get("id") if isinstance(message, dict) else None
    return request_id if isinstance(request_id, (str, int)) and not isinstance(request_id, bool) else None


def result(request_id: RequestId, value: Any) -> bytes:
    return _encoder.encode({"jsonrpc": "2.0", "id": request_id, "result": value}) + b"\n"


def error(request_id: RequestId | None, exc: RpcError) -> bytes:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.data is not None:
        body["data"] = exc.data
    return _encoder.encode({"jsonrpc": "2.0", "id": request_id, "error": body}) + b"\n"


def notification(method: str, params: dict[str, Any]) -> bytes:
    return _encoder.encode({"jsonrpc": "2.0", "method": method, "params": params}) + b"\n"
