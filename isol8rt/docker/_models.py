"""The wire types: msgspec Structs for the subset of the Docker Engine API (v1.41) this client uses.

Python names are snake_case; the wire names are Docker's PascalCase (``rename="pascal"``, with explicit
names where Docker's spelling is not plain PascalCase: ``OOMKilled``, ``ImageID``).

Request bodies default every field to None and omit defaults, so only what the caller set goes on the
wire: Docker tells "unset" from "zero" for many fields and rejects some zero values (an empty
``LogConfig.Type``). Responses ignore unknown fields (Docker sends far more than is modelled here) and
are frozen.
"""

from __future__ import annotations

from typing import Any

import msgspec


class _RequestBody(msgspec.Struct, rename="pascal", omit_defaults=True, kw_only=True):
    pass


class _ResponseBody(msgspec.Struct, rename="pascal", frozen=True, kw_only=True):
    pass


# --------------------------------------------------------------------------------------------------
# container creation


class LogConfig(_RequestBody):
    type: str
    config: dict[str, str] | None = None


class Ulimit(_RequestBody):
    name: str
    soft: int
    hard: int


class HostConfig(_RequestBody):
    """The ``HostConfig`` of a create request: what the host enforces on the container."""

    readonly_rootfs: bool | None = None
    tmpfs: dict[str, str] | None = None
    memory: int | None = None
    memory_swap: int | None = None
    nano_cpus: int | None = None
    pids_limit: int | None = None
    cap_drop: list[str] | None = None
    cap_add: list[str] | None = None
    security_opt: list[str] | None = None
    network_mode: str | None = None
    ipc_mode: str | None = None
    log_config: LogConfig | None = None
    ulimits: list[Ulimit] | None = None
    oom_score_adj: int | None = None
    init: bool | None = None
    auto_remove: bool | None = None
    extra_hosts: list[str] | None = None
    runtime: str | None = None
    binds: list[str] | None = None
    shm_size: int | None = None
    sysctls: dict[str, str] | None = None
    masked_paths: list[str] | None = None
    readonly_paths: list[str] | None = None


class ContainerSpec(_RequestBody):
    """The body of ``POST /containers/create``.

    ``user`` takes ``"uid:gid"``: a bare ``"1000"`` runs with group 0 (root's group).
    """

    image: str
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] | None = None
    user: str | None = None
    working_dir: str | None = None
    labels: dict[str, str] | None = None
    open_stdin: bool | None = None
    stdin_once: bool | None = None
    attach_stdin: bool | None = None
    attach_stdout: bool | None = None
    attach_stderr: bool | None = None
    tty: bool | None = None
    network_disabled: bool | None = None
    stop_signal: str | None = None
    host_config: HostConfig | None = None


class ExecSpec(_RequestBody):
    """The body of ``POST /containers/{id}/exec``."""

    cmd: list[str]
    attach_stdin: bool | None = None
    attach_stdout: bool | None = None
    attach_stderr: bool | None = None
    tty: bool | None = None
    user: str | None = None
    env: list[str] | None = None
    working_dir: str | None = None


class ExecStart(_RequestBody):
    # No defaults: both are always sent, as the API documents them.
    detach: bool
    tty: bool


# --------------------------------------------------------------------------------------------------
# answers


class VersionInfo(_ResponseBody):
    version: str
    api_version: str
    min_api_version: str = msgspec.field(default="", name="MinAPIVersion")
    os: str = ""
    arch: str = ""
    kernel_version: str = ""


class DaemonInfo(_ResponseBody):
    """The parts of ``GET /info`` that the engine reads: which OCI runtimes the daemon knows."""

    runtimes: dict[str, msgspec.Raw] = {}
    default_runtime: str = ""
    cgroup_version: str = ""


class Created(_ResponseBody):
    """The answer of a create (container or exec)."""

    id: str
    warnings: list[str] | None = None


class ContainerState(_ResponseBody):
    status: str
    running: bool
    pid: int = 0
    exit_code: int = 0
    oom_killed: bool = msgspec.field(default=False, name="OOMKilled")
    error: str = ""


class ContainerConfig(_ResponseBody):
    image: str = ""
    labels: dict[str, str] | None = None


class ContainerInspect(_ResponseBody):
    id: str
    name: str
    state: ContainerState
    config: ContainerConfig
    host_config: dict[str, Any] | None = None


class ContainerSummary(_ResponseBody):
    """One entry of ``GET /containers/json``."""

    id: str
    names: list[str] | None = None
    image: str = ""
    image_id: str = msgspec.field(default="", name="ImageID")
    labels: dict[str, str] | None = None
    state: str = ""
    status: str = ""
    created: int = 0


class ExecInspect(_ResponseBody):
    running: bool
    exit_code: int | None = None
    pid: int = 0


class WaitError(_ResponseBody):
    message: str = ""


class WaitResult(_ResponseBody):
    status_code: int
    error: WaitError | None = None


class ImageConfig(_ResponseBody):
    labels: dict[str, str] | None = None


class ImageInspect(_ResponseBody):
    id: str
    repo_tags: list[str] | None = None
    created: str = ""
    size: int = 0
    config: ImageConfig | None = None


class ImageSummary(_ResponseBody):
    """One entry of ``GET /images/json``."""

    id: str
    repo_tags: list[str] | None = None
    labels: dict[str, str] | None = None
    created: int = 0
    size: int = 0


# --------------------------------------------------------------------------------------------------
# progress streams (build, import, pull): Docker's "JSONMessage", one per line, camelCase


class ErrorDetail(msgspec.Struct, frozen=True):
    message: str = ""
    code: int = 0


class BuildAux(msgspec.Struct, frozen=True):
    id: str = msgspec.field(default="", name="ID")


class BuildEvent(msgspec.Struct, frozen=True, rename="camel", kw_only=True):
    """One message of a build (or import, or pull) output stream.

    ``stream`` is build output text (usually a whole line, newline included); ``status`` a progress
    or import status (an import reports its image id there); ``aux`` carries the built image's id;
    ``error``/``error_detail`` report a failure.
    """

    stream: str | None = None
    status: str | None = None
    id: str | None = None
    aux: BuildAux | None = None
    error: str | None = None
    error_detail: ErrorDetail | None = None

    @property
    def image_id(self) -> str | None:
        """The built image's id, on the build's ``aux`` message."""
        return self.aux.id if self.aux is not None and self.aux.id else None

    @property
    def error_message(self) -> str | None:
        """The failure this message reports, if any."""
        if self.error_detail is not None and self.error_detail.message:
            return self.error_detail.message
        return self.error
