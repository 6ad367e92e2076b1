"""Named custom images: ``isol8rt build --base python --install numpy --setup "..." --tag NAME``.

A custom image is the thin ``isol8rt:<runtime>`` image plus packages (installed as ``setup --<runtime>``
bakes them) plus set-up scripts run as root at build time, tagged ``isol8rt-custom:NAME``. Like every
image here it carries a content hash chained from its parent: building the same thing again reuses the
image, and a changed agent or recipe rebuilds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import msgspec

from ..docker import DockerClient, NotFound
from ..errors import InvalidRequest
from ..runtimes import LABEL_CONTENT_HASH, LABEL_MANAGED_BY, LABEL_PACKAGES, LABEL_RUNTIME, MANAGED_BY, RUNTIMES
from .bake import CUSTOM_REPO
from .build import build
from .catalog import agent_image, recipes_dir
from .packages import normalize_packages, packages_label
from .presets import PRESETS
from .recipe import ContextFile, Recipe, directory_files

LABEL_CUSTOM = "isol8rt.custom"
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")


class CustomImage(msgspec.Struct, frozen=True):
    name: str
    image: str
    runtime: str
    packages: str
    size: int
    created: int


def custom_tag(name: str) -> str:
    if not name or len(name) > 100 or not set(name) <= _NAME_CHARS or name[0] in ".-":
        raise InvalidRequest(f"--tag {name!r}: use lower-case letters, digits, '.', '_' and '-'")
    if name in PRESETS:
        raise InvalidRequest(f"--tag {name!r}: that is a preset's image (`isol8rt build --preset {name}`): choose another name")
    return f"{CUSTOM_REPO}:{name}"


def custom_recipe(name: str, runtime: str, packages: Iterable[str], setup_scripts: Iterable[str],
                  agent_hash: str) -> Recipe:
    if runtime not in RUNTIMES:
        raise InvalidRequest(f"--base {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    packages = normalize_packages(runtime, packages) if packages else ()
    scripts = [script for script in setup_scripts if script.strip()]
    lines = [f"FROM {agent_image(runtime)}"]
    files: list[ContextFile] = []
    if packages:
        # The same installation `isol8rt setup --<runtime>` bakes: its recipe, minus its FROM line.
        bake = directory_files(recipes_dir() / "bake" / runtime)
        for file in bake:
            if file.arcname == "Dockerfile":
                lines += [line for line in file.data.decode().splitlines() if not line.startswith("FROM ")]
            else:
                files.append(file)
        files.append(ContextFile("packages.txt", "".join(f"{package}\n" for package in packages).encode()))
    for index, script in enumerate(scripts):
        files.append(ContextFile(f"setup/{index:03d}.sh", script.encode(), 0o755))
    if scripts:
        lines += ["COPY setup /tmp/isol8rt-setup",
                  'RUN set -e; for step in /tmp/isol8rt-setup/*.sh; do bash -e "$step"; done; rm -rf /tmp/isol8rt-setup']
    files.append(ContextFile("Dockerfile", ("\n".join(lines) + "\n").encode()))
    recipe = Recipe.make("", parent_hash=agent_hash, files=files, labels={
        LABEL_RUNTIME: runtime, LABEL_PACKAGES: packages_label(packages), LABEL_CUSTOM: name})
    return msgspec.structs.replace(recipe, image=custom_tag(name))


async def build_custom(client: DockerClient, name: str, runtime: str, packages: Iterable[str] = (),
                       setup_scripts: Iterable[str] = (), *, force: bool = False,
                       progress: Callable[[str], None] = print) -> tuple[str, bool]:
    """Build (or reuse) the custom image; returns its tag and whether it was built now."""
    try:
        parent = await client.inspect_image(agent_image(runtime))
    except NotFound:
        raise InvalidRequest(f"the {agent_image(runtime)} image is missing: run `isol8rt setup` first") from None
    agent_hash = ((parent.config.labels if parent.config else None) or {}).get(LABEL_CONTENT_HASH, "")
    recipe = custom_recipe(name, runtime, list(packages), list(setup_scripts), agent_hash)
    if not force:
        try:
            current = await client.inspect_image(recipe.image)
            labels = (current.config.labels if current.config else None) or {}
            if labels.get(LABEL_CONTENT_HASH) == recipe.content_hash:
                return recipe.image, False
        except NotFound:
            pass
    await build(client, recipe, nocache=force, progress=progress)
    return recipe.image, True


async def list_custom(client: DockerClient) -> list[CustomImage]:
    images = []
    for summary in await client.list_images(labels={LABEL_MANAGED_BY: MANAGED_BY, LABEL_CUSTOM: None}):
        labels = summary.labels or {}
        for tag in summary.repo_tags or ():
            if tag.startswith(f"{CUSTOM_REPO}:"):
                images.append(CustomImage(name=labels.get(LABEL_CUSTOM, ""), image=tag,
                                          runtime=labels.get(LABEL_RUNTIME, ""),
                                          packages=labels.get(LABEL_PACKAGES, ""), size=summary.size,
                                          created=summary.created))
    return sorted(images, key=lambda image: image.name)
