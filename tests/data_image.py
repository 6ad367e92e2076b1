"""The data image for tests (built once per machine, then reused: its tag is its content hash's), and a PNG
check that decodes what a run returned.

The preset is built on the thin Python image when that image carries this checkout's agent; otherwise (a
checkout whose agent changed since `isol8rt setup` ran) the test fails saying so, unless
ISOL8RT_TEST_IMAGE_REPO names a repository of the tester's own: the thin layers are then built from this
checkout as <repo>:<runtime>, and the preset on them as <repo>:data. Nothing here rebuilds isol8rt:*.
"""

from __future__ import annotations

import functools
import os
import struct
import zlib

import msgspec
import pytest
import trio

from isol8rt.docker import DockerClient, NotFound
from isol8rt.images import agent_image, agent_recipe, runtime_image
from isol8rt.images.build import build
from isol8rt.images.presets import build_preset
from isol8rt.runtimes import LABEL_CONTENT_HASH

REPO_VARIABLE = "ISOL8RT_TEST_IMAGE_REPO"


def _hash(image) -> str | None:
    return ((image.config.labels if image.config else None) or {}).get(LABEL_CONTENT_HASH)


async def _agent(client: DockerClient, runtime: str) -> str:
    recipe = agent_recipe(runtime, _hash(await client.inspect_image(runtime_image(runtime))) or "")
    if _hash(await client.inspect_image(agent_image(runtime))) == recipe.content_hash:
        return recipe.image
    repo = os.environ.get(REPO_VARIABLE)
    if not repo:
        pytest.fail(f"{agent_image(runtime)} is older than this checkout's agent: run `isol8rt setup`, or set "
                    f"{REPO_VARIABLE} to build test images of your own", pytrace=False)
    recipe = msgspec.structs.replace(recipe, image=f"{repo}:{runtime}")
    try:
        current = _hash(await client.inspect_image(recipe.image))
    except NotFound:
        current = None
    if current != recipe.content_hash:
        await build(client, recipe, progress=lambda line: None)
    return recipe.image


@functools.cache
def agent_image_for_tests(runtime: str) -> str:
    """The thin image with this checkout's agent (session drivers included)."""

    async def ensure() -> str:
        async with DockerClient() as client:
            return await _agent(client, runtime)

    return trio.run(ensure)


@functools.cache
def data_image_for_tests() -> str:
    parent = agent_image_for_tests("python")

    async def ensure() -> str:
        async with DockerClient() as client:
            repo = os.environ.get(REPO_VARIABLE) if parent != agent_image("python") else None
            built = await build_preset(client, "data", parent=parent, image=f"{repo}:data" if repo else None,
                                       progress=lambda line: None)
            return built.image

    return trio.run(ensure)


def assert_png(data: bytes) -> tuple[int, int]:
    """Decode enough of a PNG to know it is one: the signature, every chunk's CRC, an IHDR first, and IDAT
    data that inflates to exactly the rows the header promises. Returns (width, height)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    offset, chunks = 8, []
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        kind, body = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack_from(">I", data, offset + 8 + length)
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append((kind, body))
        offset += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour = struct.unpack_from(">IIBB", chunks[0][1])
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(pixels) == height * (1 + (width * channels * depth + 7) // 8)
    return width, height
