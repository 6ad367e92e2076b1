"""Custom images with extra packages baked in: ``isol8rt-custom:<runtime>-<12 hex of content hash>``.

Each is the thin ``isol8rt:<runtime>`` image plus packages installed system-wide, where the sandbox
user (read-only root, HOME=/sandbox) finds them: Python's system site, /node_modules for Node and Bun,
a read-only DENO_DIR for Deno, Debian packages for Bash. Its tag comes from its content hash, which
chains the thin image's hash: when the agent changes, the old custom image is no longer found, and
``isol8rt setup`` rebuilds it.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ..docker import DockerClient, NotFound
from ..runtimes import LABEL_CONTENT_HASH, LABEL_PACKAGES, LABEL_RUNTIME
from .catalog import CUSTOM_REPO, agent_image, recipes_dir
from .packages import normalize_packages, packages_label
from .presets import preset_recipe, presets_covering
from .recipe import ContextFile, Recipe, directory_files


def bake_recipe(runtime: str, packages: tuple[str, ...], agent_hash: str) -> Recipe:
    """The recipe for ``packages`` (already normalised) on the thin image whose hash is ``agent_hash``."""
    files = directory_files(recipes_dir() / "bake" / runtime)
    files.append(ContextFile("packages.txt", "".join(f"{name}\n" for name in packages).encode()))
    recipe = Recipe.make(
        "",
        parent_hash=agent_hash,
        files=files,
        labels={LABEL_RUNTIME: runtime, LABEL_PACKAGES: packages_label(packages)},
    )
    return msgspec.structs.replace(recipe, image=f"{CUSTOM_REPO}:{runtime}-{recipe.content_hash[:12]}")


async def find_baked_image(client: DockerClient, runtime: str, packages: str | Iterable[str]) -> str | None:
    """The custom image holding exactly ``packages`` for ``runtime`` on the current thin image, or else a
    preset's image holding them all (presets.py), or None when ``isol8rt setup`` has built neither (or
    built it before the thin image last changed).

    Raises :class:`~isol8rt.errors.InvalidRequest` for a malformed package name.
    """
    wanted = normalize_packages(runtime, packages)
    agent_hash = await _content_hash(client, agent_image(runtime))
    if agent_hash is None:
        return None
    recipe = bake_recipe(runtime, wanted, agent_hash)
    if await _content_hash(client, recipe.image) == recipe.content_hash:
        return recipe.image
    # No exact bake: a preset (setup --preset) that holds them all does as well.
    for chosen in presets_covering(runtime, wanted):
        recipe = preset_recipe(chosen.name, agent_hash)
        if await _content_hash(client, recipe.image) == recipe.content_hash:
            return recipe.image
    return None


async def _content_hash(client: DockerClient, image: str) -> str | None:
    try:
        inspect = await client.inspect_image(image)
    except NotFound:
        return None
    labels = (inspect.config.labels if inspect.config else None) or {}
    return labels.get(LABEL_CONTENT_HASH)
