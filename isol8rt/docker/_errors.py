"""The Docker client's exceptions.

Every failure this package expects is one of these; trio's and h11's own exceptions are mapped at the
I/O boundary, so a caller never has to catch them. Misuse (calling ``receive()`` from two tasks at once,
passing a malformed argument) is not mapped: it raises what trio or Python raise, as a bug should.
"""

from __future__ import annotations


class DockerError(Exception):
    """Base of every error this package raises on purpose.

    Raised as such when no subclass fits: a ``DOCKER_HOST`` this client cannot speak to (a named pipe),
    a docker context that does not exist, TLS files that are missing, an answer from the daemon that is not valid HTTP or not the JSON expected, a multiplexed stream
    whose frame headers are garbage (a container created with ``Tty=True``), or a call on a closed
    :class:`DockerClient`.
    """


class DaemonNotRunning(DockerError):
    """The daemon cannot be reached: its unix socket is missing, refuses connections or may not be
    opened by this user, or its TCP host does not answer before the client's timeout.

    The message is one line that says how to fix it.
    """


class DaemonRefused(DaemonNotRunning):
    """The daemon, or what stands before it, refused this client: its TLS certificate is not trusted,
    or it refused this client's certificate, or ssh to its host failed (ssh's own words are in the
    message). A :class:`DaemonNotRunning` for callers that only ask whether Docker can be used."""


class DaemonTimeout(DockerError):
    """The daemon accepted the connection but did not answer an ordinary request within the client's
    ``timeout``. Builds, imports, waits and hijacked streams are never timed out by the client."""


class APIError(DockerError):
    """The daemon answered a request with an error status (4xx or 5xx), or reported an error inside
    the progress stream of an import or a pull (then ``status`` is the stream's own status, 200).

    ``message`` is Docker's own message (the ``message`` field of its JSON error body).
    """

    def __init__(self, status: int, message: str, method: str, path: str) -> None:
        super().__init__(status, message, method, path)
        self.status = status
        self.message = message
        self.method = method
        self.path = path

    def __str__(self) -> str:
        return f"{self.message} ({self.method} {self.path}: {self.status})"


class NotFound(APIError):
    """404: no such container, image or exec instance."""


class Conflict(APIError):
    """409: the name is taken, the container is not running (kill), is being removed, or is in use
    (removing an image)."""


class BuildError(DockerError):
    """An image build failed: a Dockerfile step failed, the Dockerfile is invalid, or the daemon
    refused the build. ``log`` holds the last lines of the build's output, for the user."""

    def __init__(self, message: str, log: list[str]) -> None:
        super().__init__(message, log)
        self.message = message
        self.log = log

    def __str__(self) -> str:
        return self.message


class StreamClosed(DockerError):
    """The connection broke in the middle of a request or of a hijacked stream, or the daemon closed it
    before answering (it was stopped, or restarted)."""
