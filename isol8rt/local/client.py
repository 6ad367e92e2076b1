"""One run sent to the local engine, over its Unix socket, with blocking standard-library sockets.

``isol8rt run`` must answer in about a tenth of a second through a warm engine, and importing trio
alone takes longer than that here; so this is the one call of the API made without it: the least of
HTTP/1.1 it needs (:mod:`.http`), with the wire bodies (:mod:`isol8rt.wire.api`) and the SSE parser
(:mod:`isol8rt.wire.sse`) over a plain socket.

Until the engine has begun its answer nothing has run, so every failure before that (no socket, a dead
engine's socket, no answer in time, a refusal such as options it cannot honour exactly, a busy engine)
is :class:`Refused`, and the caller runs the program cold instead. Once the run has begun, it is the
run's: a failure then is :class:`EngineLost`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import msgspec

from .._version import __version__
from ..config import resolved
from ..types import ExecutionRequest, ExecutionResult, Isol8Options, StreamEvent
from ..wire import api, errors, sse
from . import http
from .paths import NotPrivate, check_peer, check_socket

#: How long a connection and the engine's /health answer may take: an engine that answers neither is
#: stopped or wedged, and the run goes cold rather than wait on it.
HEALTH_TIMEOUT_S = 2.0
#: How long the engine may take to begin a streamed answer (a tightened engine's first start included).
START_TIMEOUT_S = 60.0
#: Beyond the run's own timeout, how long to wait for what the engine sends next.
MARGIN_S = 30.0


class Refused(Exception):
    """The engine did not take the run (or there is none): nothing ran; run it cold."""


class NoEngine(Refused):
    """No engine answers there: no socket, a dead engine's, or one that does not answer in time."""


class EngineLost(Exception):
    """The engine stopped answering, or broke its answer, after the run began."""


def _body(request: ExecutionRequest, options: Isol8Options) -> bytes:
    if request.files:
        request = msgspec.structs.replace(request, files=api.wire_files(request.files))
    # Every field written, defaults too: to the engine a field left out means "yours", not this default.
    wire_options = resolved(options)
    if options.max_file_bytes is None:
        del wire_options["maxFileBytes"]  # "the sandbox's size" has no wire value; the CLI asks for no files
    return api.encode(api.ExecuteBody(request=request, options=wire_options))


class _Connection:
    def __init__(self, path: Path) -> None:
        try:
            check_socket(path)
        except FileNotFoundError:
            raise NoEngine(f"no engine at {path}") from None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.http = http.Connection(self.sock)
        self.sock.settimeout(HEALTH_TIMEOUT_S)
        try:
            self.sock.connect(str(path))
            check_peer(self.sock, path)  # the path may have changed since it was checked
            # One round trip that proves an isol8rt engine is there and answering, before the run is sent.
            status, body = self.whole(self.send("GET", "/health"))
        except NotPrivate:
            self.close()
            raise
        except (OSError, http.ProtocolError) as exc:
            self.close()
            raise NoEngine(f"the engine at {path} does not answer ({exc})") from None
        if status != 200 or not self.http.reusable:
            self.close()
            raise Refused(f"the engine at {path} answered /health with {status}")
        try:
            version = api.decode_health(body).version
        except msgspec.DecodeError:
            version = None
        if version != __version__:
            # Another release may know other options, or the same ones by other rules: runs go cold until the
            # engine is restarted with this one.
            self.close()
            raise Refused(f"the engine at {path} is isol8rt {version}, this is {__version__}: restart it")

    def send(self, method: str, target: str, body: bytes | None = None) -> tuple[int, dict[str, str]]:
        self.http.send(method, target, body)
        return self.http.head()

    def whole(self, head: tuple[int, dict[str, str]]) -> tuple[int, bytes]:
        return head[0], b"".join(self.http.body(head[1]))

    def refusal(self, head: tuple[int, dict[str, str]]) -> Refused:
        status, body = self.whole(head)
        try:
            message = errors.decode_error(body).error
        except msgspec.DecodeError:
            message = body[:200].decode("utf-8", "replace")
        return Refused(f"the engine refused the run ({status}): {message}")

    def close(self) -> None:
        self.sock.close()


def health(path: Path) -> None:
    """Return if an isol8rt engine answers on ``path``; else :class:`Refused` (or NotPrivate)."""
    _Connection(path).close()


def _post(path: Path, target: str, request: ExecutionRequest, options: Isol8Options,
          wait_s: float) -> tuple[_Connection, tuple[int, dict[str, str]]]:
    """Send the run; the open connection and the head of the engine's (200) answer. A stream's head comes
    before the run starts; a whole result's after it ends, so losing the engine while waiting for that
    one is :class:`EngineLost` (the run may have happened: it is not run again)."""
    connection = _Connection(path)
    try:
        connection.sock.settimeout(wait_s)
        try:
            head = connection.send("POST", target, _body(request, options))
        except (OSError, http.ProtocolError) as exc:
            if target == "/execute":
                raise EngineLost(f"the local engine stopped answering during the run ({exc})") from None
            raise Refused(f"the engine at {path} did not take the run ({exc})") from None
        if head[0] != 200:
            raise connection.refusal(head)
    except BaseException:
        connection.close()
        raise
    return connection, head


def stream(path: Path, request: ExecutionRequest, options: Isol8Options) -> Iterator[StreamEvent]:
    """The run's events as the engine sends them (``POST /execute/stream``). :class:`Refused` comes
    before the first event or not at all."""
    connection, head = _post(path, "/execute/stream", request, options, START_TIMEOUT_S)
    return _events(connection, head[1], options.timeout_ms / 1000 + MARGIN_S)


def _events(connection: _Connection, headers: dict[str, str], wait_s: float) -> Iterator[StreamEvent]:
    parser = sse.EventParser()
    try:
        connection.sock.settimeout(wait_s)
        for piece in connection.http.body(headers):
            for data in parser.feed(piece):
                yield api.decode_event(data)
    except (OSError, http.ProtocolError, msgspec.DecodeError) as exc:
        raise EngineLost(f"the local engine stopped answering during the run ({exc})") from None
    finally:
        connection.close()


def execute(path: Path, request: ExecutionRequest, options: Isol8Options) -> ExecutionResult:
    """The run's whole result (``POST /execute``), once it has ended."""
    connection, head = _post(path, "/execute", request, options, options.timeout_ms / 1000 + MARGIN_S)
    try:
        _, body = connection.whole(head)
        return api.decode_result(body)
    except (OSError, http.ProtocolError, msgspec.DecodeError) as exc:
        raise EngineLost(f"the local engine stopped answering during the run ({exc})") from None
    finally:
        connection.close()
