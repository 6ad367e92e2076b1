"""A Docker Engine API client for trio, speaking HTTP/1.1 through h11: no docker-py, no CLI.

Layers, bottom up, each in its own private module:

- HTTP itself is the sans-io :class:`isol8rt.wire.http_client.ClientConnection`, shared with
  :class:`~isol8rt.RemoteIsol8`;
- ``_frames``: sans-io demuxer of the stdout/stderr stream of attach and exec;
- ``_api``: sans-io Docker conventions (request targets, the hijack headers, error answers to exceptions,
  progress lines);
- ``_endpoint``: where the daemon is, read as the docker CLI reads it (``DOCKER_HOST``, TLS settings,
  docker contexts, ``ssh://``);
- ``_transport``: trio I/O: links (socket, TLS, ssh stdio), the keep-alive connection pool, hijacked
  streams; where trio's and the HTTP connection's exceptions become this package's;
- ``_models``: the msgspec wire types; ``_tar``: the build-context writer;
- ``_client``: :class:`DockerClient`, one method per endpoint.

Only the names below are public. Every failure is a :class:`DockerError`.
"""

from ._client import BuildStream, DockerClient
from ._endpoint import Endpoint, parse_docker_host
from ._errors import (
    APIError,
    BuildError,
    Conflict,
    DaemonNotRunning,
    DaemonRefused,
    DaemonTimeout,
    DockerError,
    NotFound,
    StreamClosed,
)
from ._frames import STDERR, STDIN, STDOUT, FrameDemuxer
from ._models import (
    BuildEvent,
    ContainerInspect,
    ContainerSpec,
    ContainerState,
    ContainerSummary,
    ExecInspect,
    HostConfig,
    ImageInspect,
    ImageSummary,
    LogConfig,
    Ulimit,
    DaemonInfo,
    VersionInfo,
)
from ._tar import tar_stream
from ._transport import HijackedStream

__all__ = [
    "Endpoint",
    "parse_docker_host",
    "APIError",
    "BuildError",
    "BuildEvent",
    "BuildStream",
    "Conflict",
    "ContainerInspect",
    "ContainerSpec",
    "ContainerState",
    "ContainerSummary",
    "DaemonNotRunning",
    "DaemonRefused",
    "DaemonTimeout",
    "DockerClient",
    "DockerError",
    "ExecInspect",
    "FrameDemuxer",
    "HijackedStream",
    "HostConfig",
    "ImageInspect",
    "ImageSummary",
    "LogConfig",
    "NotFound",
    "STDERR",
    "STDIN",
    "STDOUT",
    "StreamClosed",
    "Ulimit",
    "DaemonInfo",
    "VersionInfo",
    "tar_stream",
]
