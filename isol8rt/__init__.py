"""isol8rt: secure code execution for AI agents.

Untrusted Python, Node, Bun, Deno and Bash run in locked-down Docker containers; results come back in
milliseconds. The public surface is re-exported here.
"""

from ._version import __version__
from .client import RemoteIsol8
from .engine import DockerIsol8, RunControl
from .errors import (
    EngineClosed,
    EngineUnavailable,
    ImageNotFound,
    InvalidRequest,
    Isol8Error,
    SandboxError,
    SessionError,
    SetupError,
)
from .types import (
    ExecutionRequest,
    ExecutionResult,
    FileBlob,
    Isol8Options,
    NetworkFilter,
    ResourceUsage,
    SecurityConfig,
    SessionInfo,
    StreamEvent,
)
from . import aio
from .sync import Sandbox

__all__ = [
    "DockerIsol8",
    "EngineClosed",
    "EngineUnavailable",
    "ExecutionRequest",
    "ExecutionResult",
    "FileBlob",
    "ImageNotFound",
    "InvalidRequest",
    "Isol8Error",
    "Isol8Options",
    "NetworkFilter",
    "RemoteIsol8",
    "ResourceUsage",
    "RunControl",
    "Sandbox",
    "SandboxError",
    "SecurityConfig",
    "SessionError",
    "SessionInfo",
    "SetupError",
    "StreamEvent",
    "__version__",
    "aio",
]
