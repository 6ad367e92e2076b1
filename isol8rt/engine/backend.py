"""The engine's container interface, and its Docker implementation.

The engine needs very little from a container platform: create a container from a :class:`SandboxSpec`,
attach a byte stream to its agent before starting it, start, kill, remove, and list what it made. Files
travel through the agent, not the platform. Keeping to this small surface lets a remote Docker host or a
cluster scheduler stand in later; only :class:`DockerBackend` knows Docker's vocabulary.

This is the engine's I/O boundary, and a backend maps its platform's exceptions here, once, as httpcore's
backends do: its methods raise the library's (:mod:`isol8rt.errors`), and an :class:`AgentStream` raises
trio's own stream exceptions, so the engine above catches exactly those and nothing else.
"""

from __future__ import annotations

import builtins  # annotations after the `list` methods below mean the type, not the method
import hashlib
import re
from typing import Protocol

import msgspec
import trio

from .. import docker
from ..errors import EngineUnavailable, ImageNotFound, Isol8Error, SandboxError
from ..runtimes import LABEL_MANAGED_BY, LABEL_PRELOAD, MANAGED_BY, SANDBOX_DIR

_SPEC_ENCODER = msgspec.json.Encoder(order="deterministic")


class SandboxSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything that makes one sandbox container differ from another."""

    image: str
    labels: dict[str, str]
    memory_bytes: int
    nano_cpus: int
    pids_limit: int
    readonly_root: bool = True
    #: tmpfs sizes in bytes, as Docker takes them (spec.py converts the options' "512m").
    sandbox_size: str = str(512 * 1024 * 1024)
    tmp_size: str = str(256 * 1024 * 1024)
    network: str = "none"
    #: A seccomp profile as Docker JSON text, or "unconfined"; None keeps the platform's default.
    seccomp: str | None = None
    extra_hosts: tuple[str, ...] = ()
    #: Capabilities the agent needs on top of none (user code gets none of them).
    cap_add: tuple[str, ...] = ("SETUID", "SETGID", "KILL")
    #: An OCI runtime such as runsc, for users who have one.
    oci_runtime: str | None = None
    nofile: int = 4096
    #: Docker removes the container when it stops (a detached session that ended on its own).
    auto_remove: bool = False

    def pool_key(self) -> str:
        """Equal for specs whose containers are interchangeable."""
        return hashlib.sha256(_SPEC_ENCODER.encode(self)).hexdigest()


class AgentStream(Protocol):
    """A byte stream to a container's agent: our bytes reach its stdin, its stdout and stderr come back
    as (1 | 2, bytes) pairs; an empty list means the stream ended.

    What it raises is trio's, as for any :class:`trio.abc.Stream`:

    - :exc:`trio.BrokenResourceError` from :meth:`send_all` or :meth:`receive` when the stream broke (the
      connection to the platform failed, the container went away mid-frame);
    - :exc:`trio.ClosedResourceError` from either once :meth:`aclose` was called (in this task or another:
      a :meth:`receive` waiting in another task ends with it).

    :meth:`aclose` raises nothing, and may be called more than once. Anything else is a bug, and is left
    to surface as one.
    """

    async def send_all(self, data: bytes) -> None: ...
    async def receive(self) -> list[tuple[int, bytes]]: ...
    async def aclose(self) -> None: ...


#: What an AgentStream raises when the stream cannot be used (see :class:`AgentStream`).
STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError)


class ContainerBackend(Protocol):
    """A container platform, as the engine uses it. The methods raise :mod:`isol8rt.errors` exceptions:
    :class:`~isol8rt.errors.EngineUnavailable` when the platform cannot be reached,
    :class:`~isol8rt.errors.ImageNotFound` from :meth:`create` when the image is missing, and
    :class:`~isol8rt.errors.SandboxError` for anything else the platform refuses. Killing or removing a
    container that is already gone is not an error."""

    async def create(self, spec: SandboxSpec) -> str: ...
    async def attach(self, container_id: str) -> AgentStream: ...
    async def start(self, container_id: str) -> None: ...
    async def kill(self, container_id: str) -> None: ...
    async def remove(self, container_id: str) -> None: ...
    async def list(self, labels: dict[str, str]) -> list[str]: ...
    async def find_running(self, labels: dict[str, str | None]) -> builtins.list[tuple[str, dict[str, str]]]: ...
    async def out_of_memory(self, container_id: str) -> bool: ...
    async def find_baked_image(self, runtime: str, packages: builtins.list[str]) -> str | None: ...
    async def image_preload(self, image: str) -> builtins.list[str] | None: ...
    async def aclose(self) -> None: ...


def _largest_tmpfs(spec: SandboxSpec) -> int:
    return max(int(spec.sandbox_size), int(spec.tmp_size))


def _tmpfs(size: str, *, exec_: bool, mode: str, owner: str | None = None) -> str:
    options = ["rw", "exec" if exec_ else "noexec", "nosuid", "nodev", f"size={size}", f"mode={mode}"]
    if owner:
        options.append(owner)
    return ",".join(options)


class DockerBackend:
    """:class:`ContainerBackend` on a Docker Engine, through :class:`isol8rt.docker.DockerClient`."""

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        if client is None:
            try:
                client = docker.DockerClient()
            except docker.DockerError as exc:   # where the daemon is, misconfigured (a context, TLS files)
                raise EngineUnavailable(str(exc)) from None
        self.client = client

    async def aclose(self) -> None:
        await self.client.aclose()

    def container_spec(self, spec: SandboxSpec) -> docker.ContainerSpec:
        security_opt = ["no-new-privileges"]
        if spec.seccomp is not None:
            security_opt.append(f"seccomp={spec.seccomp}")
        host_config = docker.HostConfig(
            readonly_rootfs=spec.readonly_root,
            tmpfs={
                SANDBOX_DIR: _tmpfs(spec.sandbox_size, exec_=True, mode="0755", owner="uid=1000,gid=1000"),
                "/tmp": _tmpfs(spec.tmp_size, exec_=False, mode="1777"),
                "/run/isol8rt": _tmpfs("16m", exec_=False, mode="0700"),
            },
            memory=spec.memory_bytes,
            # Swap equal to memory means no swap at all: a memory bomb meets the limit, not the disk.
            memory_swap=spec.memory_bytes,
            nano_cpus=spec.nano_cpus,
            pids_limit=spec.pids_limit,
            cap_drop=["ALL"],
            cap_add=list(spec.cap_add),
            security_opt=security_opt,
            network_mode="none" if spec.network == "none" else ("host" if spec.network == "host" else "bridge"),
            ipc_mode="private",
            # Everything the agent says goes to us over attach; a log driver would also write it to disk.
            log_config=docker.LogConfig(type="none"),
            ulimits=[
                docker.Ulimit(name="nofile", soft=spec.nofile, hard=spec.nofile),
                docker.Ulimit(name="core", soft=0, hard=0),
                # No file may outgrow the largest place a file can be written to.
                docker.Ulimit(name="fsize", soft=_largest_tmpfs(spec), hard=_largest_tmpfs(spec)),
            ],
            # No negative OomScoreAdj for the agent: lowering it needs CAP_SYS_RESOURCE, which runc no longer
            # has once capabilities are dropped (the start fails). User processes raise theirs to 1000
            # instead, so the OOM killer takes them first.
            init=False,
            auto_remove=spec.auto_remove or None,
            extra_hosts=list(spec.extra_hosts) or None,
            runtime=spec.oci_runtime,
        )
        return docker.ContainerSpec(
            image=spec.image,
            user="0:0",
            working_dir=SANDBOX_DIR,
            labels={LABEL_MANAGED_BY: MANAGED_BY, **spec.labels},
            open_stdin=True,
            # The agent outlives any one attach connection.
            stdin_once=False,
            attach_stdin=True,
            attach_stdout=True,
            attach_stderr=True,
            tty=False,
            host_config=host_config,
        )

    async def create(self, spec: SandboxSpec) -> str:
        try:
            return await self.client.create_container(self.container_spec(spec))
        except docker.NotFound as exc:
            raise ImageNotFound(
                f"image {spec.image} is not built: run `isol8rt setup` ({exc.message})"
            ) from None
        except docker.DaemonNotRunning as exc:
            raise EngineUnavailable(str(exc)) from None
        except docker.DockerError as exc:
            raise SandboxError(f"cannot create a container from {spec.image}: {exc}") from None

    async def check(self) -> None:
        """That the daemon answers usably: :class:`~isol8rt.errors.EngineUnavailable` if not."""
        try:
            await self.client.ping()
        except docker.DaemonNotRunning as exc:
            raise EngineUnavailable(str(exc)) from None
        except docker.DockerError as exc:
            raise EngineUnavailable(f"Docker answered, but not usably: {exc}") from None

    async def attach(self, container_id: str) -> AgentStream:
        try:
            return _DockerAgentStream(await self.client.attach_container(container_id))
        except docker.DockerError as exc:
            raise _failure(f"cannot attach to container {container_id[:12]}", exc) from None

    async def start(self, container_id: str) -> None:
        try:
            await self.client.start_container(container_id)
        except docker.DockerError as exc:
            raise _failure(f"cannot start container {container_id[:12]}", exc) from None

    async def kill(self, container_id: str) -> None:
        try:
            await self.client.kill_container(container_id)
        except (docker.NotFound, docker.Conflict):
            pass  # already gone or not running: the goal is met
        except docker.DockerError as exc:
            raise _failure(f"cannot kill container {container_id[:12]}", exc) from None

    async def remove(self, container_id: str) -> None:
        try:
            await self.client.remove_container(container_id, force=True)
        except docker.NotFound:
            pass
        except docker.Conflict:
            # "removal already in progress": someone else is doing it.
            pass
        except docker.DockerError as exc:
            raise _failure(f"cannot remove container {container_id[:12]}", exc) from None

    async def list(self, labels: dict[str, str]) -> list[str]:
        try:
            containers = await self.client.list_containers(all=True, labels={LABEL_MANAGED_BY: MANAGED_BY, **labels})
        except docker.DockerError as exc:
            raise _failure("cannot list containers", exc) from None
        return [container.id for container in containers]

    async def out_of_memory(self, container_id: str) -> bool:
        """Whether the container's memory cgroup OOM-killed its init process (the agent)."""
        try:
            return (await self.client.inspect_container(container_id)).state.oom_killed
        except docker.DockerError:
            return False

    async def find_running(self, labels: dict[str, str | None]) -> builtins.list[tuple[str, dict[str, str]]]:
        """(id, labels) of the running containers isol8rt made that carry ``labels`` (a None value: the label
        with any value)."""
        try:
            containers = await self.client.list_containers(all=False, labels={LABEL_MANAGED_BY: MANAGED_BY, **labels})
        except docker.DockerError as exc:
            raise _failure("cannot list containers", exc) from None
        return [(c.id, dict(c.labels or {})) for c in containers if c.state == "running"]

    async def find_baked_image(self, runtime: str, packages: builtins.list[str]) -> str | None:
        """The image `isol8rt setup --<runtime> ...` built with exactly these packages, if there is one."""
        from ..images import find_baked_image

        try:
            return await find_baked_image(self.client, runtime, packages)
        except docker.DockerError:
            return None


    async def image_preload(self, image: str) -> builtins.list[str] | None:
        """The modules ``image`` declares for its fork server (its isol8rt.preload label), or None."""
        try:
            inspect = await self.client.inspect_image(image)
        except docker.DockerError:
            return None
        return preload_modules(((inspect.config.labels if inspect.config else None) or {}).get(LABEL_PRELOAD))


_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def preload_modules(label: str | None) -> builtins.list[str] | None:
    """An isol8rt.preload label's modules: a JSON list of dotted module names; None if it is absent or
    anything else (an image's label is not to be trusted to be well formed)."""
    if not label:
        return None
    try:
        modules = msgspec.json.decode(label, type=builtins.list[str])
    except msgspec.DecodeError:
        return None
    if len(modules) > 100 or not all(_MODULE_NAME.fullmatch(name) for name in modules):
        return None
    return modules


def _failure(what: str, exc: docker.DockerError) -> EngineUnavailable | SandboxError:
    if isinstance(exc, docker.DaemonNotRunning):
        return EngineUnavailable(str(exc))
    return SandboxError(f"{what}: {exc}")


class _DockerAgentStream:
    """:class:`AgentStream` over a Docker attach: the Docker client's stream errors become trio's here.

    The hot path: one extra call per send and per read, no more."""

    __slots__ = ("_stream",)

    def __init__(self, stream: docker.HijackedStream) -> None:
        self._stream = stream

    async def send_all(self, data: bytes) -> None:
        try:
            await self._stream.send_all(data)
        except docker.StreamClosed as exc:
            raise trio.BrokenResourceError(str(exc)) from None

    async def receive(self) -> list[tuple[int, bytes]]:
        try:
            return await self._stream.receive()
        except docker.StreamClosed as exc:
            raise trio.BrokenResourceError(str(exc)) from None

    async def aclose(self) -> None:
        await self._stream.aclose()


async def remove_quietly(backend: ContainerBackend, container_id: str) -> None:
    """Remove a container whatever else is going on: shielded from cancellation, bounded in time."""
    with trio.CancelScope(shield=True), trio.move_on_after(30):
        try:
            await backend.remove(container_id)
        except Isol8Error:  # best effort; strays are found again by label
            pass
