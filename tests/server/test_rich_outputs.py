"""Rich outputs through the server, on the data image: figures as base64 PNGs in /execute, as `image` events
over SSE and WebSocket (decoded here), and a session's displayed value."""

from __future__ import annotations

import base64
import json

import pytest

from isol8rt import ExecutionRequest, Isol8Options

from ..data_image import assert_png
from .test_websocket import WsClient

CHART = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nprint('drawn')"


@pytest.fixture
async def live_data(start_server, data_image):
    return await start_server(options=Isol8Options(image=data_image, pool_size=1))


async def test_execute_returns_base64_pngs_which_the_client_gives_as_bytes(live_data):
    answer = await live_data.request("POST", "/execute", {"request": {"code": CHART}})
    assert answer.status == 200
    (png,) = answer.json()["images"]
    assert_png(base64.b64decode(png, validate=True))
    async with live_data.client() as client:
        (png,) = (await client.execute(ExecutionRequest(code=CHART))).images
    assert isinstance(png, bytes) and assert_png(png) == (640, 480)


async def test_sse_streams_an_image_event_before_exit(live_data):
    answer = await live_data.request("POST", "/execute/stream", {"request": {"code": CHART}})
    events = [json.loads(frame[6:]) for frame in answer.body.split(b"\n\n")[:-1]]
    kinds = [event["type"] for event in events]
    assert kinds[-2:] == ["image", "exit"] and "stdout" in kinds
    assert_png(base64.b64decode(events[-2]["data"]))


async def test_websocket_streams_an_image_event_before_exit(live_data):
    client, _ = await WsClient.connect(live_data.port)
    await client.send({"type": "execute", "request": {"code": CHART}})
    items = await client.run_to_close()
    assert [item["type"] for item in items[-3:-1]] == ["image", "exit"]
    assert_png(base64.b64decode(items[-3]["data"]))


async def test_a_session_display_over_sse_and_in_the_result(live_data):
    body = {"request": {"code": "import pandas as pd\ndf = pd.DataFrame({'x': [7]})\ndf",
                        "displayLastExpression": True}, "sessionId": "rich"}
    result = (await live_data.request("POST", "/execute", body)).json()
    (shown,) = result["displays"]
    assert shown["text"].split() == ["x", "0", "7"] and "<table" in shown["html"]
    body["request"]["code"] = "df.x * 6"
    answer = await live_data.request("POST", "/execute/stream", body)
    events = [json.loads(frame[6:]) for frame in answer.body.split(b"\n\n")[:-1]]
    assert {"type": "display", "data": "0    42\nName: x, dtype: int64", "phase": "code"} in events
