"""isol8rt: secure code execution for AI agents.

Untrusted Python, Node, Bun, Deno and Bash run in locked-down Docker containers; results come back in
milliseconds. The public surface is re-exported here.
"""

from typing import TYPE_CHECKING

from ._version import __version__

# The public names, each imported on first use (PEP 562): `import isol8rt` costs nothing, and a command
# such as `isol8rt --version` loads no trio, engine, client or server. Where each lives:
_EXPORTS = {
    "RemoteIsol8": "client",
    "DockerIsol8": "engine",
    "RunControl": "engine",
    **dict.fromkeys(("EngineClosed", "EngineUnavailable", "ImageNotFound", "InvalidRequest", "Isol8Error",
                     "SandboxError", "SessionError", "SetupError"), "errors"),
    **dict.fromkeys(("DisplayData", "ExecutionRequest", "ExecutionResult", "FileBlob", "Isol8Options", "NetworkFilter",
                     "ResourceUsage", "SecurityConfig", "SessionInfo", "StreamEvent"), "types"),
    "Sandbox": "sync",
}

if TYPE_CHECKING:
    from . import aio
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
    from .sync import Sandbox
    from .types import (
        DisplayData,
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


def __getattr__(name: str) -> object:
    import importlib

    if name == "aio":
        value: object = importlib.import_module(".aio", __name__)
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "DisplayData",
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
