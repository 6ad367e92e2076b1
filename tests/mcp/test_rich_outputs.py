"""`isol8rt mcp` on the data image, through the official SDK client: a figure comes back as MCP image content
(decoded as a PNG here) and a displayed DataFrame in the structured result."""

from __future__ import annotations

import base64
import os
import sys

import pytest

mcp = pytest.importorskip("mcp", reason="the test extra installs the MCP SDK")

from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

from ..data_image import assert_png  # noqa: E402


async def test_figures_are_image_content_and_displays_are_structured(data_image):
    # The SDK gives the server an environment of its own: pass ours, so it runs this checkout's isol8rt.
    params = StdioServerParameters(command=sys.executable, env={**os.environ},
                                   args=["-m", "isol8rt", "mcp", "--prewarm", "", "--persistent", "--image", data_image])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            drawn = await session.call_tool("execute_code", {
                "code": "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()\nprint('ok')"})
            assert not drawn.is_error and drawn.structured_content["figures"] == 1
            text, image = drawn.content
            assert (text.type, image.type, image.mime_type) == ("text", "image", "image/png")
            assert_png(base64.b64decode(image.data))

            shown = await session.call_tool("execute_code", {
                "code": "import pandas as pd\npd.DataFrame({'n': [1, 2]})", "display": True})
            (table,) = shown.structured_content["displays"]
            assert table["text"].split() == ["n", "0", "1", "1", "2"] and "<table" in table["html"]
