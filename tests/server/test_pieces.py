"""Answers that carry files, encoded in pieces: the length announced first is the length sent, and the
pieces together are the JSON a whole encoding would have made."""

from __future__ import annotations

import base64

import msgspec
import pytest

from isol8rt.server.pieces import Pieces, encode_file_content, encode_result
from isol8rt.types import ExecutionResult

RESULT = ExecutionResult(stdout="hi\n", stderr="", exit_code=0, duration_ms=1.0, truncated=False,
                         execution_id="e", runtime="python", timestamp="2026-12-03T00:00:00.000Z")


@pytest.mark.parametrize("files", [
    {"/sandbox/a": b""},
    {"/sandbox/a": b"x", "/sandbox/\u00e9\"q": bytes(range(256)) * 700},  # more than one base64 slice
])
def test_a_result_with_files_in_pieces_is_the_whole_encoding(files):
    answer = encode_result(msgspec.structs.replace(RESULT, files=files))
    assert isinstance(answer, Pieces)
    body = b"".join(answer.pieces)
    assert len(body) == answer.length
    decoded = msgspec.json.decode(body)
    assert {path: base64.b64decode(text) for path, text in decoded["files"].items()} == files
    assert decoded["stdout"] == "hi\n"


def test_a_result_without_files_is_one_piece_of_bytes():
    assert encode_result(RESULT) == msgspec.json.encode(RESULT)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 48 * 1024, 48 * 1024 + 1, 200_001])
def test_file_content_in_pieces(size):
    data = bytes(i % 251 for i in range(size))
    answer = encode_file_content(data)
    body = b"".join(answer.pieces)
    assert len(body) == answer.length
    assert base64.b64decode(msgspec.json.decode(body)["content"]) == data
