"""Shared fixtures. Integration tests run real containers on the real Docker daemon with the images that
`isol8rt setup` built; when the daemon does not answer they fail with one clear line, not a skip, so a
broken CI machine cannot pass quietly."""

from __future__ import annotations

import pytest
import trio

from isol8rt import DockerIsol8, Isol8Options


@pytest.fixture
async def engine():
    """A fast-pool engine with one warm container per runtime used; removed with everything it made."""
    async with DockerIsol8(Isol8Options(pool_size=1)) as engine:
        yield engine


@pytest.fixture
def make_engine():
    """Build engines with other options inside a test: ``async with make_engine(mode="persistent") as e``."""

    def make(**fields) -> DockerIsol8:
        return DockerIsol8(Isol8Options(**fields))

    return make


async def managed_containers(label_value: str | None = None) -> list[str]:
    """Ids of containers carrying isol8rt's engine label (optionally one engine's)."""
    from isol8rt.docker import DockerClient
    from isol8rt.runtimes import LABEL_ENGINE

    async with DockerClient() as client:
        containers = await client.list_containers(all=True, labels={LABEL_ENGINE: label_value})
    return [container.id for container in containers]


__all__ = ["managed_containers", "trio"]
