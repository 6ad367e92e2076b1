"""Shared fixtures, and the suite's one rule about Docker.

Integration tests run real containers on the real Docker daemon with the images that `isol8rt setup`
built. Every such test carries the ``docker`` marker, so ``pytest -m "not docker"`` is the fast subset
that needs no daemon. The marker comes from the test itself (``@pytest.mark.docker``, a module's
``pytestmark``) or, automatically, from a fixture it uses that is decorated with :func:`needs_docker`.

Both halves of the rule are enforced here, not trusted:

- a ``docker`` test whose daemon does not answer fails with one clear line, never skips, so a broken
  CI machine cannot pass quietly;
- any other test runs with ``DOCKER_HOST`` pointing at a socket that does not exist (subprocesses
  inherit it), so a test that reaches for Docker without the marker fails instead of slowing the fast
  subset down. A subprocess given an environment of its own (the MCP SDK's stdio client does that)
  escapes this guard: its tests must be marked by hand.
"""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

import pytest
import trio

from isol8rt import DockerIsol8, Isol8Options

#: Where an unmarked test's Docker client looks: nowhere. The name says why it failed.
UNMARKED_DOCKER_HOST = "unix:///nonexistent/this-test-is-not-marked-docker.sock"

_F = TypeVar("_F", bound=Callable)


def needs_docker(fixture: _F) -> _F:
    """Put under ``@pytest.fixture``: every test that uses the fixture (directly or through another
    fixture) is marked ``docker``."""
    fixture.needs_docker = True  # type: ignore[attr-defined]
    return fixture


def pytest_collection_modifyitems(config, items):
    for item in items:
        info = getattr(item, "_fixtureinfo", None)  # pytest's record of the fixtures the test will use
        if info is None or item.get_closest_marker("docker") is not None:
            continue
        # The last definition of a name is the one in effect (a module's own fixture overrides a conftest's).
        if any(getattr(definitions[-1].func, "needs_docker", False)
               for definitions in info.name2fixturedefs.values() if definitions):
            item.add_marker(pytest.mark.docker)


@functools.cache
def _daemon_problem() -> str | None:
    """Why the Docker daemon cannot be used, or None when it answers a ping (asked once per session)."""
    import trio

    from isol8rt.docker import DockerClient, DockerError

    async def ping() -> None:
        async with DockerClient(timeout=10) as client:
            await client.ping()

    try:
        trio.run(ping)
    except DockerError as exc:
        return str(exc)
    return None


@pytest.fixture(autouse=True)
def _no_local_engine(monkeypatch, tmp_path_factory):
    """`isol8rt run` in a test never reaches a local engine the developer happens to run: the socket it
    looks for is in a directory of the test session's own (tests of the engine path start their own)."""
    monkeypatch.setenv("ISOL8RT_SOCKET", str(tmp_path_factory.getbasetemp() / "no-engine" / "engine.sock"))


@pytest.fixture(autouse=True)
def _docker_rule(request, monkeypatch):
    if request.node.get_closest_marker("docker") is None:
        monkeypatch.setenv("DOCKER_HOST", UNMARKED_DOCKER_HOST)
        return
    problem = _daemon_problem()
    if problem is not None:
        pytest.fail(f"this test needs a running Docker daemon: {problem}", pytrace=False)


@pytest.fixture
@needs_docker
async def engine():
    """A fast-pool engine with one warm container per runtime used; removed with everything it made."""
    async with DockerIsol8(Isol8Options(pool_size=1)) as engine:
        yield engine


@pytest.fixture
@needs_docker
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


__all__ = ["managed_containers", "needs_docker", "trio"]


@pytest.fixture
@needs_docker
def data_image() -> str:
    """The data preset's image (tests/data_image.py): built on first use, reused after."""
    from .data_image import data_image_for_tests

    return data_image_for_tests()


@pytest.fixture
@needs_docker
def node_agent_image() -> str:
    """The thin Node image with this checkout's agent and session driver (tests/data_image.py)."""
    from .data_image import agent_image_for_tests

    return agent_image_for_tests("node")
