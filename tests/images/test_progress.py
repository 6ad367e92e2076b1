"""``isol8rt setup``'s progress: which image of how many, and a heartbeat in long steps. Driven by fake build
steps under trio's MockClock, never by a real build."""

from __future__ import annotations

import importlib
import re

import pytest
import trio

from isol8rt.docker import NotFound
from isol8rt.docker._models import ImageConfig, ImageInspect
from isol8rt.images.build import BuildFailed
from isol8rt.images.progress import BuildSteps, duration, with_heartbeat
from isol8rt.runtimes import LABEL_CONTENT_HASH

#: The module (the package exports its function of the same name).
image_setup = importlib.import_module("isol8rt.images.setup")


def test_durations():
    assert [duration(s) for s in (0, 42.9, 60, 125)] == ["0s", "42s", "1m00s", "2m05s"]


async def test_each_image_is_numbered_and_long_steps_have_a_heartbeat(autojump_clock):
    lines: list[str] = []
    steps = BuildSteps(2, lines.append, every_s=15)

    async def slow_build() -> str:
        await trio.sleep(50)
        return "built"

    async def quick_build() -> str:
        await trio.sleep(3)
        return "built"

    assert await steps.run("isol8rt:python", slow_build) == "built"
    await steps.run("isol8rt:node", quick_build)
    assert lines == [
        "[1/2] building isol8rt:python ...",
        "      ... still building isol8rt:python (15s)",
        "      ... still building isol8rt:python (30s)",
        "      ... still building isol8rt:python (45s)",
        "[1/2] isol8rt:python: done in 50s",
        "[2/2] building isol8rt:node ...",
        "[2/2] isol8rt:node: done in 3s",
    ]


async def test_a_failed_step_raises_itself_and_its_heartbeat_stops(autojump_clock):
    lines: list[str] = []

    async def failing() -> None:
        await trio.sleep(20)
        raise BuildFailed("isol8rt:bun", ["step 3 failed"])

    with pytest.raises(BuildFailed):  # as itself, not inside an exception group
        await with_heartbeat(lines.append, "building isol8rt:bun", failing, every_s=15)
    await trio.sleep(100)
    assert lines == ["      ... still building isol8rt:bun (15s)"]


class FakeDocker:
    """Just what setup() asks of Docker, with every image missing until the (fake) build makes it."""

    def __init__(self) -> None:
        self.images: dict[str, ImageInspect] = {"debian:bookworm-slim": ImageInspect(id="sha256:debian", size=1)}

    async def inspect_image(self, name: str) -> ImageInspect:
        try:
            return self.images[name]
        except KeyError:
            raise NotFound(404, f"no such image: {name}", "GET", f"/images/{name}/json") from None

    async def list_images(self, **_filters) -> list:
        return []


async def test_setup_numbers_the_images_it_builds(autojump_clock, monkeypatch):
    docker = FakeDocker()

    async def fake_build(client, recipe, *, nocache=False, progress=print):
        await trio.sleep(20)  # a long package install that prints nothing
        client.images[recipe.image] = ImageInspect(
            id=f"sha256:{recipe.image}", size=1, config=ImageConfig(labels={LABEL_CONTENT_HASH: recipe.content_hash}))

    async def nothing(*_args, **_kwargs) -> None:
        pass

    monkeypatch.setattr(image_setup, "build", fake_build)
    monkeypatch.setattr(image_setup, "remove_untagged", nothing)
    monkeypatch.setattr(image_setup, "remove_if_unused", nothing)
    lines: list[str] = []
    reports = await image_setup.setup(docker, runtimes="python,bash", progress=lines.append)
    starts = [line for line in lines if re.match(r"\[\d+/\d+\] building ", line)]
    # isol8rt-base, two runtime images, two agent layers: five, counted up to their total.
    assert [line.split()[0] for line in starts] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]
    assert sum("... still building" in line for line in lines) == 5  # one beat each, at 15 s of 20
    assert [report.status for report in reports] == ["up to date"] + ["built"] * 5

    lines.clear()
    again = await image_setup.setup(docker, runtimes="python,bash", progress=lines.append)
    assert lines == [] and {r.status for r in again} == {"up to date"}
