"""Presets: named images with a curated, pinned set of packages, ``isol8rt setup --preset data``.

A preset is a custom image (``isol8rt-custom:<name>``) on a runtime's thin image, built like every image
here from a recipe whose content hash chains its parent's: building it again reuses it, and a changed thin
image or pin list rebuilds it. Its ``isol8rt.packages`` label lists its pinned top-level packages, so a
request that asks for some of them (``installPackages: ["pandas"]``) runs in it with no install step
(:func:`preset_covering`). Its ``isol8rt.preload`` label is the JSON list of modules a preloading agent may
import ahead of runs (the mechanism is the agent's; the image only declares them).

``data``: numpy, pandas, matplotlib (drawing with Agg through ``isol8rt_figures``, which returns figures as
PNG artifacts), scipy and the usual company, every distribution pinned (transitive ones too, so the same
recipe installs the same bytes).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable

import msgspec

from ..docker import DockerClient, NotFound
from ..errors import InvalidRequest
from ..runtimes import LABEL_CONTENT_HASH, LABEL_PACKAGES, LABEL_PRELOAD, LABEL_PRESET, LABEL_RUNTIME
from .build import build
from .catalog import CUSTOM_REPO, agent_image, recipes_dir
from .packages import packages_label
from .recipe import ContextFile, Recipe, directory_files



class Preset(msgspec.Struct, frozen=True):
    name: str
    runtime: str
    #: Top-level packages, ``name==version`` (PEP 503 names): what requests may ask for.
    packages: tuple[str, ...]
    #: Their dependencies, pinned too.
    dependencies: tuple[str, ...]
    preload: tuple[str, ...]


PRESETS: dict[str, Preset] = {
    "data": Preset(
        name="data",
        runtime="python",
        packages=(
            "matplotlib==3.9.2",
            "numpy==2.1.3",
            "openpyxl==3.1.5",
            "pandas==2.2.3",
            "scikit-learn==1.5.2",
            "scipy==1.14.1",
            "seaborn==0.13.2",
            "statsmodels==0.14.4",
            "sympy==1.13.3",
            "tabulate==0.9.0",
        ),
        dependencies=(
            "contourpy==1.3.1",
            "cycler==0.12.1",
            "et-xmlfile==2.0.0",
            "fonttools==4.55.0",
            "joblib==1.4.2",
            "kiwisolver==1.4.7",
            "mpmath==1.3.0",
            "packaging==24.2",
            "patsy==1.0.1",
            "pillow==11.0.0",
            "pyparsing==3.2.0",
            "python-dateutil==2.9.0.post0",
            "pytz==2024.2",
            "six==1.16.0",
            "threadpoolctl==3.5.0",
            "tzdata==2024.2",
        ),
        preload=("numpy", "pandas", "matplotlib.pyplot"),
    ),
}


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise InvalidRequest(f"unknown preset {name!r}: choose from {', '.join(PRESETS)}") from None


def preset_image(name: str) -> str:
    return f"{CUSTOM_REPO}:{name}"


def preset_recipe(name: str, parent_hash: str, parent: str | None = None, image: str | None = None) -> Recipe:
    """The recipe of preset ``name`` on the thin image whose hash is ``parent_hash``. ``parent`` and
    ``image`` name another image to build on and another tag (tests build on an image of their own)."""
    chosen = preset(name)
    parent = parent or agent_image(chosen.runtime)
    files = []
    for file in directory_files(recipes_dir() / "preset" / name):
        if file.arcname == "Dockerfile":
            lines = file.data.decode().splitlines()
            file = ContextFile("Dockerfile", "\n".join(
                f"FROM {parent}" if line.startswith("FROM ") else line for line in lines).encode() + b"\n")
        files.append(file)
    requirements = "".join(f"{pin}\n" for pin in (*chosen.packages, *chosen.dependencies))
    files.append(ContextFile("requirements.txt", requirements.encode()))
    recipe = Recipe.make("", parent_hash=parent_hash, files=files, labels={
        LABEL_RUNTIME: chosen.runtime, LABEL_PACKAGES: packages_label(chosen.packages), LABEL_PRESET: name,
        LABEL_PRELOAD: json.dumps(list(chosen.preload))})
    return msgspec.structs.replace(recipe, image=image or preset_image(name))


def covers(chosen: Preset, wanted: Iterable[str]) -> bool:
    """Whether every requirement of ``wanted`` (normalised) is one of the preset's packages: by name,
    or by name and its exact pinned version."""
    pins = dict(pin.split("==", 1) for pin in chosen.packages)
    for requirement in wanted:
        name, _, version = requirement.partition("==")
        if name not in pins or (version and version != pins[name]):
            return False
    return True


def presets_covering(runtime: str, wanted: Iterable[str]) -> list[Preset]:
    wanted = list(wanted)
    return [chosen for chosen in PRESETS.values() if chosen.runtime == runtime and covers(chosen, wanted)]


class PresetBuild(msgspec.Struct, frozen=True):
    image: str
    #: "built" or "up to date".
    status: str
    seconds: float
    #: Bytes, the image's layers and its parents' together.
    size: int


async def build_preset(client: DockerClient, name: str, *, force: bool = False, parent: str | None = None,
                       image: str | None = None, progress: Callable[[str], None] = print) -> PresetBuild:
    """Build (or reuse) preset ``name`` on the thin image as it is now, touching no other image: what
    ``isol8rt build --preset`` does. ``parent`` and ``image`` as for :func:`preset_recipe`."""
    chosen = preset(name)
    parent = parent or agent_image(chosen.runtime)
    try:
        below = await client.inspect_image(parent)
    except NotFound:
        raise InvalidRequest(f"the {parent} image is missing: run `isol8rt setup --runtimes {chosen.runtime}` "
                             "first") from None
    parent_hash = ((below.config.labels if below.config else None) or {}).get(LABEL_CONTENT_HASH, "")
    recipe = preset_recipe(name, parent_hash, parent=parent, image=image)
    started = time.monotonic()
    if not force:
        try:
            current = await client.inspect_image(recipe.image)
            if ((current.config.labels if current.config else None) or {}).get(LABEL_CONTENT_HASH) == \
                    recipe.content_hash:
                return PresetBuild(recipe.image, "up to date", 0.0, current.size)
        except NotFound:
            pass
    await build(client, recipe, nocache=force, progress=progress)
    built = await client.inspect_image(recipe.image)
    return PresetBuild(recipe.image, "built", time.monotonic() - started, built.size)
