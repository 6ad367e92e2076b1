"""The execution engine: DockerIsol8 and the pieces it is made of.

``engine`` (DockerIsol8) plans a run (``plan``, ``spec``), takes a container from the warm ``pool`` or a
``session``, and talks to its agent through a ``container`` (the trio driver of ``conversation``, the
host side of the agent protocol, sans-io, over a ``channel``); ``output`` shapes what comes back,
``control`` carries stdin and signals, ``netlog`` the network log. ``backend`` is the container platform
(Docker, or the test kit's in-memory one) and the one place its exceptions are mapped.
"""

from .control import RunControl
from .engine import DockerIsol8

__all__ = ["DockerIsol8", "RunControl"]
