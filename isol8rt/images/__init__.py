"""The images sandboxes run in: their recipes (the ``images`` data directory), building them, finding
them.

``setup`` brings them up to date, building only what changed; ``sandbox_image`` and
``find_baked_image`` tell the engine which image to start. See catalog.py for the chain of images.
"""

from .bake import CUSTOM_REPO, bake_recipe, find_baked_image
from .build import BuildFailed
from .catalog import BASE_IMAGE, DEBIAN_IMAGE, agent_image, agent_recipe, base_recipe, runtime_image, runtime_recipe
from .debian import ensure_debian_base
from .lookup import sandbox_image
from .packages import normalize_packages, packages_label
from .recipe import ContextFile, Recipe, content_hash
from .removal import remove_images
from .setup import ImageReport, selected_runtimes, setup

__all__ = [
    "BASE_IMAGE",
    "CUSTOM_REPO",
    "DEBIAN_IMAGE",
    "BuildFailed",
    "ContextFile",
    "ImageReport",
    "Recipe",
    "agent_image",
    "agent_recipe",
    "bake_recipe",
    "base_recipe",
    "content_hash",
    "ensure_debian_base",
    "find_baked_image",
    "normalize_packages",
    "packages_label",
    "remove_images",
    "runtime_image",
    "runtime_recipe",
    "sandbox_image",
    "selected_runtimes",
    "setup",
]
