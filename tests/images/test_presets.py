"""Presets (``isol8rt setup --preset data``): their recipe, which requests they serve, and setup keeping them.
Against a fake daemon: the real build is tests/engine/test_rich_outputs.py's data image."""

from __future__ import annotations

import json

import pytest

from isol8rt.docker import NotFound
from isol8rt.docker._models import ImageConfig, ImageInspect, ImageSummary
from isol8rt.errors import InvalidRequest
from isol8rt.images import agent_image, find_baked_image
from isol8rt.images.presets import PRESETS, covers, preset_recipe
from isol8rt.runtimes import LABEL_CONTENT_HASH, LABEL_PACKAGES, LABEL_PRELOAD, LABEL_PRESET, LABEL_RUNTIME

DATA = PRESETS["data"]


class FakeDocker:
    def __init__(self, labels: dict[str, dict[str, str]]) -> None:
        self.labels = labels

    async def inspect_image(self, name: str) -> ImageInspect:
        if name not in self.labels:
            raise NotFound(404, f"no such image: {name}", "GET", f"/images/{name}/json")
        return ImageInspect(id=f"sha256:{name}", size=1, config=ImageConfig(labels=self.labels[name]))

    async def list_images(self, **_filters) -> list[ImageSummary]:
        return [ImageSummary(id=f"sha256:{name}", repo_tags=[name], labels=labels) for name, labels in self.labels.items()]


def _images(*, preset_hash_ok: bool = True) -> FakeDocker:
    recipe = preset_recipe("data", "agent-hash")
    return FakeDocker({
        agent_image("python"): {LABEL_CONTENT_HASH: "agent-hash"},
        recipe.image: {**recipe.build_labels(), LABEL_CONTENT_HASH: recipe.content_hash if preset_hash_ok else "old"},
    })


def test_the_data_preset_is_fully_pinned_and_declares_its_preload():
    recipe = preset_recipe("data", "agent-hash")
    files = {file.arcname: file.data for file in recipe.files}
    requirements = files["requirements.txt"].decode().split()
    assert requirements and all("==" in line for line in requirements)
    assert {"numpy", "pandas", "matplotlib", "scipy"} <= {line.split("==")[0] for line in requirements}
    assert recipe.image == "isol8rt-custom:data" and recipe.labels[LABEL_PRESET] == "data"
    assert recipe.labels[LABEL_RUNTIME] == "python" and "pandas==" in recipe.labels[LABEL_PACKAGES]
    assert json.loads(recipe.labels[LABEL_PRELOAD]) == ["numpy", "pandas", "matplotlib.pyplot"]
    # Built on the local thin image only (no registry), with the figures backend selected by its ENV.
    dockerfile = files["Dockerfile"].decode()
    assert [line for line in dockerfile.splitlines() if line.startswith("FROM ")] == ["FROM isol8rt:python"]
    assert "MPLBACKEND=module://isol8rt_figures" in dockerfile and "isol8rt_figures.py" in files


def test_another_parent_and_tag_make_another_recipe():
    mine = preset_recipe("data", "h", parent="isol8rt-data-h:python", image="isol8rt-data-h:data")
    assert mine.image == "isol8rt-data-h:data"
    assert b"FROM isol8rt-data-h:python\n" in dict((f.arcname, f.data) for f in mine.files)["Dockerfile"]
    assert mine.content_hash != preset_recipe("data", "h").content_hash != preset_recipe("data", "h2").content_hash


@pytest.mark.parametrize("wanted, covered", [
    (["numpy"], True), (["numpy", "pandas", "matplotlib", "scipy"], True), (["pandas==2.2.3"], True),
    (["pandas==2.1.0"], False), (["pandas>=2"], False), (["numpy", "torch"], False), (["pandas[excel]"], False),
])
def test_a_preset_serves_requests_for_its_packages(wanted, covered):
    assert covers(DATA, wanted) is covered


async def test_a_request_for_some_of_its_packages_finds_the_preset_image():
    assert await find_baked_image(_images(), "python", ["pandas", "matplotlib"]) == "isol8rt-custom:data"
    assert await find_baked_image(_images(), "python", ["torch"]) is None
    assert await find_baked_image(_images(), "node", ["lodash"]) is None


async def test_a_preset_built_on_an_older_thin_image_is_not_used():
    assert await find_baked_image(_images(preset_hash_ok=False), "python", ["pandas"]) is None


def test_a_custom_image_cannot_take_a_presets_tag():
    from isol8rt.images.custom import custom_tag

    with pytest.raises(InvalidRequest, match="preset"):
        custom_tag("data")


def test_an_unknown_preset_is_refused():
    with pytest.raises(InvalidRequest, match="unknown preset 'nope'"):
        preset_recipe("nope", "h")


async def test_setup_builds_a_preset_and_keeps_it_a_preset_when_the_thin_image_changes(monkeypatch):
    import importlib

    from isol8rt.docker._models import ImageSummary

    image_setup = importlib.import_module("isol8rt.images.setup")
    images: dict[str, ImageInspect] = {"debian:bookworm-slim": ImageInspect(id="sha256:debian", size=1)}

    class Docker:
        async def inspect_image(self, name: str) -> ImageInspect:
            if name not in images:
                raise NotFound(404, f"no such image: {name}", "GET", f"/images/{name}/json")
            return images[name]

        async def list_images(self, **_filters) -> list[ImageSummary]:
            return [ImageSummary(id=i.id, repo_tags=[name], labels=i.config.labels)
                    for name, i in images.items() if i.config and LABEL_PACKAGES in (i.config.labels or {})]

    built: list[str] = []

    async def fake_build(client, recipe, *, nocache=False, progress=print):
        built.append(recipe.image)
        images[recipe.image] = ImageInspect(id=f"sha256:{recipe.content_hash}", size=1,
                                            config=ImageConfig(labels=recipe.build_labels()))

    async def nothing(*_args, **_kwargs) -> None:
        pass

    monkeypatch.setattr(image_setup, "build", fake_build)
    monkeypatch.setattr(image_setup, "remove_untagged", nothing)
    monkeypatch.setattr(image_setup, "remove_if_unused", nothing)
    reports = await image_setup.setup(Docker(), runtimes="python", presets=["data"], progress=lambda line: None)
    assert built[-1] == "isol8rt-custom:data" and reports[-1].image == "isol8rt-custom:data"

    # Built on an older thin image (its hash no longer chains): a plain setup rebuilds it from the preset's
    # recipe, under its own tag, not as a bake of its package list.
    old = images["isol8rt-custom:data"]
    images["isol8rt-custom:data"] = ImageInspect(id="sha256:old", size=1, config=ImageConfig(labels={
        **old.config.labels, LABEL_CONTENT_HASH: "stale"}))
    built.clear()
    await image_setup.setup(Docker(), runtimes="python", progress=lambda line: None)
    assert built == ["isol8rt-custom:data"]
    assert images["isol8rt-custom:data"].config.labels[LABEL_PRESET] == "data"
