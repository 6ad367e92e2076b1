"""Removing the images isol8rt made: all of them (``isol8rt cleanup``), or those nothing uses any more.

Every image isol8rt builds carries the ``isol8rt.managed-by`` label, and so do the builder stages of
its multi-stage recipes and the images a rebuild left untagged. Docker refuses to remove an image a
container uses or another image is built on; that is reported (or, for the leftovers, left for later),
never forced.
"""

from __future__ import annotations

from ..docker import APIError, DockerClient, ImageSummary
from ..runtimes import LABEL_MANAGED_BY, MANAGED_BY

_UNTAGGED = "<none>:<none>"


async def remove_images(client: DockerClient | None = None) -> dict:
    """Remove every image isol8rt made. Returns ``{"removed": n, "failed": n, "errors": [...]}``, one
    error line per image Docker refused to remove (a container still uses it)."""
    if client is None:
        async with DockerClient() as own:
            return await remove_images(own)
    removed, errors = 0, []
    for image in await _managed_newest_first(client):
        names = _tags(image) or [image.id]
        try:
            for name in names:
                await client.remove_image(name)
            removed += 1
        except APIError as exc:
            errors.append(f"{names[0]}: {exc.message}")
    return {"removed": removed, "failed": len(errors), "errors": errors}


async def remove_untagged(client: DockerClient) -> None:
    """Remove isol8rt's untagged images that nothing uses: builder stages, images a rebuild replaced."""
    for image in await _managed_newest_first(client):
        if not _tags(image):
            await remove_if_unused(client, image.id)


async def remove_if_unused(client: DockerClient, image: str) -> None:
    # In use by a container, or the parent of another image: Docker refuses, and that is fine.
    try:
        await client.remove_image(image)
    except APIError:
        pass


async def _managed_newest_first(client: DockerClient) -> list[ImageSummary]:
    # An image is only removable once nothing is built on it, and children are newer than parents.
    images = await client.list_images(labels={LABEL_MANAGED_BY: MANAGED_BY})
    return sorted(images, key=lambda image: image.created, reverse=True)


def _tags(image: ImageSummary) -> list[str]:
    return [tag for tag in image.repo_tags or [] if tag != _UNTAGGED]
