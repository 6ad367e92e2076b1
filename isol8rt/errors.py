"""The library's exceptions. Lower layers (the Docker client, the agent channel) have their own and are
mapped into these at the engine's boundary, so callers only ever need to catch what is listed here.

Every message is written for the person who will read it: it says what went wrong and, where there is
one, what to do about it. A program that fails is not an error: its exit code, timeout or OOM kill are
reported in the ExecutionResult.
"""

from __future__ import annotations


class Isol8Error(Exception):
    """Base of every error isol8rt raises on purpose."""

    #: The CLI's exit code when this error ends a command.
    exit_code = 1


class EngineUnavailable(Isol8Error):
    """The container engine (the Docker daemon) cannot be reached, or answered in a way that makes it
    unusable. The message says how to get it running."""

    exit_code = 3


class ImageNotFound(Isol8Error):
    """A runtime image is missing or out of date; ``isol8rt setup`` builds it."""

    exit_code = 3


class SetupError(Isol8Error):
    """``isol8rt setup`` could not install the engine or build an image."""

    exit_code = 3


class InvalidRequest(Isol8Error, ValueError):
    """A request, option or argument is malformed or not allowed; nothing was run. The message names the
    offending field."""

    exit_code = 2


class SessionError(Isol8Error):
    """A persistent-session operation cannot be done: a runtime switch inside a session, a file
    operation with no session, or a session that has ended."""

    exit_code = 2


class SandboxError(Isol8Error):
    """The sandbox itself failed (its container died, its agent broke the protocol or stopped
    answering). The run's outcome is unknown; the container has been discarded."""


class EngineClosed(Isol8Error):
    """The engine was used after ``stop()``, or stopped while the call was waiting."""
