"""``isol8rt setup`` as a library call: bring every image up to date, building only what changed.

The chain is planned first (each recipe's content hash needs only its parent's hash, so the whole plan
costs one inspect of the Debian image and reading the recipes); then each image whose label does not
carry its planned hash is built, bottom up. A second run with nothing changed inspects a dozen images
and builds nothing.

Custom images baked earlier are rebuilt with the same packages when the image below them changed, so
they keep working. Docker leaves untagged the images a rebuild replaced, and the builder stages of
multi-stage recipes (hundreds of MB of downloads); setup removes those of its own that nothing uses.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping

import msgspec
import trio

from ..docker import DockerClient, ImageInspect, NotFound
from ..errors import InvalidRequest
from ..runtimes import (LABEL_CONTENT_HASH, LABEL_MANAGED_BY, LABEL_PACKAGES, LABEL_PRESET, LABEL_RUNTIME, MANAGED_BY,
                        RUNTIME_NAMES)
from .bake import bake_recipe
from .build import build
from .catalog import DEBIAN_IMAGE, agent_recipe, base_recipe, runtime_recipe
from .debian import ensure_debian_base
from .packages import normalize_packages
from .presets import PRESETS, preset, preset_recipe
from .progress import BuildSteps, with_heartbeat
from .recipe import Recipe
from .removal import remove_if_unused, remove_untagged


class ImageReport(msgspec.Struct, frozen=True):
    """What setup did about one image."""

    image: str
    #: "built", "up to date", "pulled" or "bootstrapped".
    status: str
    seconds: float
    #: Bytes, the image's layers and its parents' together.
    size: int


async def setup(
    client: DockerClient,
    *,
    runtimes: str | Iterable[str] = RUNTIME_NAMES,
    force: bool = False,
    bake: Mapping[str, str | Iterable[str]] | None = None,
    presets: Iterable[str] = (),
    progress: Callable[[str], None] = print,
) -> list[ImageReport]:
    """Build or refresh the images of ``runtimes`` (and of every runtime named in ``bake`` or by a preset),
    then one custom image per entry of ``bake`` ({runtime: packages}) and one per preset (presets.py).

    ``force`` rebuilds everything without the layer cache, and gets a fresh Debian base. Package
    names are checked before anything is built (:class:`~isol8rt.errors.InvalidRequest`); a failed
    build raises :class:`~isol8rt.images.build.BuildFailed`.
    """
    bake_sets = {runtime: normalize_packages(runtime, packages) for runtime, packages in (bake or {}).items()}
    chosen = [preset(name) for name in dict.fromkeys(presets)]
    selected = selected_runtimes(runtimes, [*bake_sets, *(each.runtime for each in chosen)])

    started = trio.current_time()
    debian = await with_heartbeat(progress, f"getting {DEBIAN_IMAGE}",
                                  functools.partial(ensure_debian_base, client, force=force, progress=progress))
    reports = [
        ImageReport(DEBIAN_IMAGE, debian.status, trio.current_time() - started, await _size(client, DEBIAN_IMAGE))
    ]

    base = base_recipe(debian.id)
    runtime_layers = {runtime: runtime_recipe(runtime, base.content_hash) for runtime in selected}
    agent_layers = {runtime: agent_recipe(runtime, layer.content_hash) for runtime, layer in runtime_layers.items()}
    bakes = [bake_recipe(runtime, packages, agent_layers[runtime].content_hash) for runtime, packages in bake_sets.items()]
    images = [preset_recipe(each.name, agent_layers[each.runtime].content_hash) for each in chosen]
    plan = [base, *runtime_layers.values(), *agent_layers.values(), *bakes, *images]
    rebakes, stale_tags = await _stale_bakes(client, agent_layers, {recipe.image for recipe in plan})
    plan += rebakes

    # Every recipe's hash is known from the plan, so what is stale is known before anything is built: the
    # progress can say "[2/5]".
    current = [await _inspect(client, recipe.image) for recipe in plan]
    stale = [image is None or force or _labels(image).get(LABEL_CONTENT_HASH) != recipe.content_hash
             for recipe, image in zip(plan, current)]
    steps = BuildSteps(sum(stale), progress)  # nothing stale: nothing said (the CLI's summary says it)
    for recipe, image, rebuild in zip(plan, current, stale):
        if not rebuild:
            assert image is not None
            reports.append(ImageReport(recipe.image, "up to date", 0.0, image.size))
            continue
        started = trio.current_time()
        await steps.run(recipe.image, functools.partial(build, client, recipe, nocache=force, progress=progress))
        built = await client.inspect_image(recipe.image)
        reports.append(ImageReport(recipe.image, "built", trio.current_time() - started, built.size))

    for tag in stale_tags:
        await remove_if_unused(client, tag)
    await remove_untagged(client)
    return reports


def selected_runtimes(runtimes: str | Iterable[str], bake_runtimes: Iterable[str] = ()) -> list[str]:
    """The runtimes to build, in the canonical order: those asked for (names, or one comma-separated
    string) and those packages are baked for. Raises :class:`~isol8rt.errors.InvalidRequest` for an
    unknown name."""
    if isinstance(runtimes, str):
        runtimes = runtimes.split(",")
    wanted = {name.strip() for name in runtimes} | set(bake_runtimes)
    unknown = sorted(wanted - set(RUNTIME_NAMES))
    if unknown:
        raise InvalidRequest(f"unknown runtime {unknown[0]!r}: choose from {', '.join(RUNTIME_NAMES)}")
    if not wanted:
        raise InvalidRequest(f"no runtime selected: choose from {', '.join(RUNTIME_NAMES)}")
    return [runtime for runtime in RUNTIME_NAMES if runtime in wanted]


async def _stale_bakes(
    client: DockerClient, agent_layers: Mapping[str, Recipe], planned: set[str]
) -> tuple[list[Recipe], list[str]]:
    """Recipes re-baking the custom images whose thin image changed, and the old images' tags."""
    rebakes: dict[str, Recipe] = {}
    stale_tags = []
    for image in await client.list_images(labels={LABEL_MANAGED_BY: MANAGED_BY, LABEL_PACKAGES: None}):
        labels = image.labels or {}
        runtime = labels.get(LABEL_RUNTIME, "")
        if runtime not in agent_layers:
            continue
        if LABEL_PRESET in labels:
            # A preset keeps its tag: rebuilt from its recipe, the old image is left untagged and removed.
            if labels[LABEL_PRESET] in PRESETS and PRESETS[labels[LABEL_PRESET]].runtime == runtime:
                recipe = preset_recipe(labels[LABEL_PRESET], agent_layers[runtime].content_hash)
                if labels.get(LABEL_CONTENT_HASH) != recipe.content_hash and recipe.image not in planned:
                    rebakes[recipe.image] = recipe
            continue
        try:
            packages = normalize_packages(runtime, labels.get(LABEL_PACKAGES, ""))
        except InvalidRequest:
            continue
        recipe = bake_recipe(runtime, packages, agent_layers[runtime].content_hash)
        if labels.get(LABEL_CONTENT_HASH) == recipe.content_hash:
            continue
        stale_tags += [tag for tag in image.repo_tags or [] if tag != recipe.image]
        if recipe.image not in planned:
            rebakes[recipe.image] = recipe
    return list(rebakes.values()), stale_tags


async def _inspect(client: DockerClient, image: str) -> ImageInspect | None:
    try:
        return await client.inspect_image(image)
    except NotFound:
        return None


async def _size(client: DockerClient, image: str) -> int:
    current = await _inspect(client, image)
    return current.size if current is not None else 0


def _labels(image: ImageInspect) -> dict[str, str]:
    return (image.config.labels if image.config else None) or {}
