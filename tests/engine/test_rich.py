"""The rich outputs file: figures and displayed values, read back from what the sandbox wrote."""

from __future__ import annotations

import base64
import json

from isol8rt.engine.rich import RICH_MAX_BYTES, RICH_MAX_RECORDS, parse_rich, rich_events
from isol8rt.types import DisplayData, ExecutionResult

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17)


def _line(record) -> bytes:
    return json.dumps(record).encode() + b"\n"


def test_images_and_displays_in_order():
    data = (_line({"kind": "image", "mime": "image/png", "data": base64.b64encode(PNG).decode()})
            + _line({"kind": "display", "text": "   a\n0  1", "html": "<table/>"})
            + _line({"kind": "display", "text": "10"}))
    images, displays, left_out = parse_rich(data)
    assert images == [PNG]
    assert displays == [DisplayData(text="   a\n0  1", html="<table/>"), DisplayData(text="10")]
    assert left_out == 0


def test_what_is_not_a_well_formed_record_is_skipped():
    # The sandbox user writes this file: whatever it holds is output, never a failure of the run.
    data = b"".join([
        b"not json\n", b"[1, 2]\n", _line({"kind": "image", "mime": "image/png", "data": "%%%"}),
        _line({"kind": "image", "mime": "image/png", "data": base64.b64encode(b"GIF89a").decode()}),
        _line({"kind": "image", "mime": "image/svg+xml", "data": ""}), _line({"kind": "display", "text": 3}),
        _line({"kind": "display", "text": "ok", "html": 5}), b"\xff\xfe\n",
        b"[" * 100_000 + b"\n",  # deeper than the JSON decoder's stack: RecursionError, not ValueError
    ])
    assert parse_rich(data) == ([], [DisplayData(text="ok")], 0)


def test_a_million_tiny_records_are_not_a_million_objects():
    # Attack: the budget bounds the file's bytes, not its records. 32 MiB of empty displays was 1.15 million
    # DisplayData (then masked, encoded and streamed one event each): 3.7 s and 200 MB of engine memory.
    line = _line({"kind": "display", "text": ""})
    data = line * (RICH_MAX_BYTES // len(line))
    images, displays, left_out = parse_rich(data)
    assert (images, len(displays)) == ([], RICH_MAX_RECORDS)
    assert left_out == RICH_MAX_BYTES // len(line) - RICH_MAX_RECORDS


def test_stream_events_carry_base64_images_then_displays():
    result = ExecutionResult(stdout="", stderr="", exit_code=0, duration_ms=1, truncated=False, execution_id="x",
                             runtime="python", timestamp="t", images=[PNG], displays=[DisplayData("v", "<b>v</b>")])
    image, shown = rich_events(result)
    assert (image.type, base64.b64decode(image.data)) == ("image", PNG)
    assert (shown.type, shown.data, shown.html) == ("display", "v", "<b>v</b>")
