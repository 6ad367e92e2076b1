"""Figures and displayed values, on real containers: the data image's matplotlib backend returns figures as
PNGs (decoded here), and persistent sessions display their last expression when asked."""

from __future__ import annotations

import base64

import pytest

from isol8rt import DockerIsol8, ExecutionRequest, InvalidRequest, Isol8Options

from ..data_image import assert_png

pytestmark = pytest.mark.docker

CHART = """
import matplotlib.pyplot as plt
plt.plot([1, 2, 3], [1, 4, 9])
plt.show()
plt.figure(figsize=(2, 1))
plt.bar(["a", "b"], [3, 5])
print("drawn")
"""


async def test_shown_and_left_open_figures_come_back_as_pngs(data_image):
    async with DockerIsol8(Isol8Options(image=data_image, pool_size=1)) as engine:
        result = await engine.execute(ExecutionRequest(code=CHART))
        assert (result.exit_code, result.stdout) == (0, "drawn\n"), result.stderr
        assert [assert_png(png) for png in result.images] == [(640, 480), (200, 100)]
        assert result.files is None and result.file_errors is None  # the engine's own file stays its own

        events = [event async for event in engine.execute_stream(ExecutionRequest(code=CHART))]
        images = [event for event in events if event.type == "image"]
        assert [assert_png(base64.b64decode(event.data)) for event in images] == [(640, 480), (200, 100)]
        assert events[-1].type == "exit" and events.index(images[-1]) < len(events) - 1

        plain = await engine.execute(ExecutionRequest(code="print(1)", output_paths=["none.txt"]))
        assert plain.images is None and plain.displays is None and list(plain.file_errors) == ["none.txt"]


async def test_a_session_displays_its_last_expression_when_asked(data_image):
    async with DockerIsol8(Isol8Options(image=data_image, mode="persistent")) as engine:
        frame = ("import pandas as pd\nimport matplotlib.pyplot as plt\n"
                 "df = pd.DataFrame({'city': ['Oslo', 'Lima'], 'temp': [3, 19]})\ndf")
        silent = await engine.execute(ExecutionRequest(code=frame), session_id="s")
        assert (silent.exit_code, silent.stdout, silent.displays) == (0, "", None), silent.stderr

        shown = await engine.execute(ExecutionRequest(code="df.temp.sum()\ndf", display_last_expression=True),
                                     session_id="s")
        (table,) = shown.displays
        assert table.text.split() == ["city", "temp", "0", "Oslo", "3", "1", "Lima", "19"]
        assert "<table" in table.html and "<td>Oslo</td>" in table.html

        # A figure left open when a cell ends is the cell's, once.
        drawn = await engine.execute(ExecutionRequest(code="df.plot(x='city', y='temp')\nNone",
                                                      display_last_expression=True), session_id="s")
        assert len(drawn.images) == 1 and drawn.displays is None
        assert_png(drawn.images[0])
        again = await engine.execute(ExecutionRequest(code="x = 1", display_last_expression=True), session_id="s")
        assert again.images is None and again.displays is None

        # The driver's switch is not in the cell's environment.
        env = await engine.execute(ExecutionRequest(code="import os\n'ISOL8RT_DISPLAY' in os.environ",
                                                    display_last_expression=True), session_id="s")
        assert [shown.text for shown in env.displays] == ["False"]


async def test_a_node_session_displays_its_last_value(node_agent_image):
    async with DockerIsol8(Isol8Options(image=node_agent_image, mode="persistent")) as engine:
        first = await engine.execute(ExecutionRequest(code="const rows = [{a: 1}, {a: 2}];\nrows.map(r => r.a * 10)",
                                                      runtime="node", display_last_expression=True), session_id="n")
        assert [shown.text for shown in first.displays] == ["[ 10, 20 ]"], first.stderr
        quiet = await engine.execute(ExecutionRequest(code="rows.length", runtime="node"), session_id="n")
        assert quiet.displays is None and quiet.stdout == ""


async def test_display_outside_a_session_is_refused(data_image):
    async with DockerIsol8(Isol8Options(image=data_image, pool_size=0)) as engine:
        with pytest.raises(InvalidRequest, match="displayLastExpression"):
            await engine.execute(ExecutionRequest(code="1", display_last_expression=True))


async def test_rich_outputs_over_their_budget_are_left_out_with_a_note(data_image):
    async with DockerIsol8(Isol8Options(image=data_image, pool_size=0)) as engine:
        flood = ("import os\nos.makedirs('/sandbox/.isol8rt', exist_ok=True)\n"
                 "open('/sandbox/.isol8rt/outputs.jsonl', 'wb').truncate(40 << 20)")
        result = await engine.execute(ExecutionRequest(code=flood))
    assert result.exit_code == 0 and result.images is None and result.file_errors is None
    assert "figures and displayed values left out" in result.stderr and "limit for output files" in result.stderr
