"""Answers that carry files (a result's ``files``, ``GET /file``'s ``content``), encoded in pieces: the
JSON around them, then their base64 a slice at a time, of a length known in advance. The file's bytes are
the only whole copy the server holds while it sends them.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Iterator

import msgspec

from ..types import ExecutionResult
from ..wire.api import encode, utc_z


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
    """A result's JSON: whole bytes, or :class:`Pieces` when it carries files. Its timestamp is written
    as the reference writes it (a Z, not +00:00)."""
    stamp = utc_z(result.timestamp)
    if stamp is not result.timestamp:
        result = msgspec.structs.replace(result, timestamp=stamp)
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
