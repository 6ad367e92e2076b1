"""The Docker backend is the engine's I/O boundary: Docker's exceptions become the library's there, and an
attached stream's become trio's (what AgentStream declares). On a stand-in client: no daemon needed."""

from __future__ import annotations

import pytest
import trio

from isol8rt import docker
from isol8rt.engine.backend import DockerBackend, SandboxSpec
from isol8rt.errors import EngineUnavailable, ImageNotFound, SandboxError

SPEC = SandboxSpec(image="isol8rt-python", labels={}, memory_bytes=1 << 29, nano_cpus=10**9, pids_limit=64)


class FailingClient:
    """A DockerClient every call of which raises ``error``."""

    def __init__(self, error: docker.DockerError) -> None:
        self.error = error

    def __getattr__(self, name: str):
        async def call(*args, **kwargs):
            await trio.lowlevel.checkpoint()
            raise self.error

        return call


def api_error(cls: type[docker.APIError], status: int) -> docker.APIError:
    return cls(status, "no", "POST", "/x")


@pytest.mark.parametrize("method", ["attach", "start", "kill", "remove"])
async def test_a_daemon_that_is_gone_is_engine_unavailable(method):
    backend = DockerBackend(FailingClient(docker.DaemonNotRunning("Docker is not running")))  # type: ignore[arg-type]
    with pytest.raises(EngineUnavailable, match="not running"):
        await getattr(backend, method)("c" * 64)


@pytest.mark.parametrize("method", ["attach", "start", "kill", "remove"])
async def test_other_docker_failures_are_sandbox_errors(method):
    backend = DockerBackend(FailingClient(docker.StreamClosed("the connection broke")))  # type: ignore[arg-type]
    with pytest.raises(SandboxError, match="the connection broke"):
        await getattr(backend, method)("c" * 64)


async def test_listing_maps_too_and_a_ping_that_fails_is_engine_unavailable():
    backend = DockerBackend(FailingClient(docker.DaemonTimeout("too slow")))  # type: ignore[arg-type]
    with pytest.raises(SandboxError):
        await backend.list({})
    with pytest.raises(SandboxError):
        await backend.find_running({})
    with pytest.raises(EngineUnavailable, match="not usably"):
        await backend.check()


async def test_a_missing_image_is_image_not_found():
    backend = DockerBackend(FailingClient(api_error(docker.NotFound, 404)))  # type: ignore[arg-type]
    with pytest.raises(ImageNotFound):
        await backend.create(SPEC)


@pytest.mark.parametrize("error", [docker.NotFound, docker.Conflict])
async def test_killing_or_removing_what_is_already_gone_is_no_error(error):
    backend = DockerBackend(FailingClient(api_error(error, 404 if error is docker.NotFound else 409)))  # type: ignore[arg-type]
    await backend.kill("c" * 64)
    await backend.remove("c" * 64)


async def test_an_attached_streams_errors_become_trios():
    class Hijacked:
        async def send_all(self, data: bytes) -> None:
            await trio.lowlevel.checkpoint()
            raise docker.StreamClosed("the attached stream broke")

        async def receive(self) -> list[tuple[int, bytes]]:
            await trio.lowlevel.checkpoint()
            raise docker.StreamClosed("mid-frame")

        async def aclose(self) -> None:
            await trio.lowlevel.checkpoint()

    class Client:
        async def attach_container(self, container_id: str) -> Hijacked:
            await trio.lowlevel.checkpoint()
            return Hijacked()

    stream = await DockerBackend(Client()).attach("c" * 64)  # type: ignore[arg-type]
    with pytest.raises(trio.BrokenResourceError, match="the attached stream broke"):
        await stream.send_all(b"x")
    with pytest.raises(trio.BrokenResourceError, match="mid-frame"):
        await stream.receive()
    await stream.aclose()
