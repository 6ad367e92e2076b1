"""Rich outputs: the figures and displayed values a run leaves in ``/sandbox/.isol8rt/outputs.jsonl``.

The data image's matplotlib backend (images/preset/data/isol8rt_figures.py) and the session drivers
(isol8rt/agent/interpreters.py) append one JSON record a line: ``{"kind": "image", "mime": "image/png",
"data": <base64>}`` or ``{"kind": "display", "text": str, "html": str?}``. The engine asks for the file as
one more output path of every Python run (and of Node session runs that display), and takes it out of the
result's ``files`` before the caller sees them.

The file is written by the sandbox's own user, so it is the program's output like any other: a line that
is not a well-formed record is skipped, never an error of the run. What it may hold is bounded by the
output-file budget, as every output file is, and by RICH_MAX_BYTES when the run asked for no files itself;
and in number by RICH_MAX_RECORDS, since 32 MiB of empty displays is a million objects to hold, mask,
encode and send (3.7 s and 200 MB in the engine to parse alone), where a person looks at tens.
"""

from __future__ import annotations

import base64
import binascii
import json

from ..types import DisplayData, ExecutionResult, StreamEvent

#: Relative to /sandbox, as output paths are. The writers spell it out in full.
RICH_OUTPUTS = ".isol8rt/outputs.jsonl"
#: The most a run that asked for no output files brings back of its rich outputs (over it: none of them).
RICH_MAX_BYTES = 32 * 1024 * 1024
#: The env variable by which the engine asks a session driver to display the last expression.
DISPLAY_ENV = "ISOL8RT_DISPLAY"
#: The most figures and displayed values one run brings back; the rest are left out (and said so).
RICH_MAX_RECORDS = 1000
_PNG = b"\x89PNG\r\n\x1a\n"


def parse_rich(data: bytes) -> tuple[list[bytes], list[DisplayData], int]:
    """The PNG images and displayed values in a rich outputs file, in order (the first RICH_MAX_RECORDS),
    and how many lines were left out after them."""
    images: list[bytes] = []
    displays: list[DisplayData] = []
    lines = data.splitlines()
    for number, line in enumerate(lines):
        if len(images) + len(displays) == RICH_MAX_RECORDS:
            return images, displays, len(lines) - number
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the decoder's stack
            continue
        if not isinstance(record, dict):
            continue
        if record.get("kind") == "image" and record.get("mime") == "image/png" and isinstance(record.get("data"), str):
            try:
                png = base64.b64decode(record["data"], validate=True)
            except (binascii.Error, ValueError):
                continue
            if png.startswith(_PNG):
                images.append(png)
        elif record.get("kind") == "display" and isinstance(record.get("text"), str):
            html = record.get("html")
            displays.append(DisplayData(text=record["text"], html=html if isinstance(html, str) else None))
    return images, displays, 0


def rich_events(result: ExecutionResult) -> list[StreamEvent]:
    """A streamed run's rich outputs, as the events sent just before its ``exit``."""
    events = [StreamEvent(type="image", data=base64.b64encode(png).decode(), phase="code")
              for png in result.images or ()]
    events += [StreamEvent(type="display", data=shown.text, phase="code", html=shown.html)
               for shown in result.displays or ()]
    return events
