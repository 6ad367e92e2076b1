"""The execution engine: DockerIsol8 and the pieces it is made of (pool, sandbox, agent channel)."""

from .control import RunControl
from .engine import DockerIsol8

__all__ = ["DockerIsol8", "RunControl"]
