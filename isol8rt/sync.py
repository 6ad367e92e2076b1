"""The plain (blocking) face of the engine, for code with no event loop: scripts, notebooks, threads.

    with isol8rt.Sandbox(timeout_ms=10_000) as sb:
        print(sb.execute("print(6 * 7)").stdout)               # 42
        for event in sb.execute_stream(code="echo hi", runtime="bash"):
            print(event.type, event.data)

The engine (a :class:`~isol8rt.DockerIsol8`, or a :class:`~isol8rt.RemoteIsol8` with ``remote=``) runs in a
trio run on a thread of its own; each call is handed to it and waited for. Anything that interrupts the wait
(Ctrl-C's KeyboardInterrupt, an exception raised by a signal handler, ``cancel_after`` running out, leaving a
``for`` loop over a stream) cancels the run as a trio cancel scope would: the exception moves on once the
engine has let go of the run (its container discarded, or its session's program interrupted), and the program
is dead a fraction of a second later. Calls may be made from several threads at once.
"""

from __future__ import annotations

import contextlib
import queue
import time
import uuid
import weakref
from typing import Any, Iterator, Unpack

from .errors import InvalidRequest
from .faces.portal import CANCEL_GRACE_S, Call, Portal
from .faces.engines import Control, Engine, list_sessions, make_engine, new_control, open_stream
from .faces.shortcuts import OptionFields, RequestFields, make_request
from .types import ExecutionRequest, ExecutionResult, Isol8Options, SessionInfo, StreamEvent

__all__ = ["RunStream", "Sandbox", "SandboxSession", "Session"]

_END = object()


class Sandbox:
    """An engine with blocking methods. Use ``with Sandbox(...) as sb:`` or :meth:`start` / :meth:`stop`.

    Takes an :class:`~isol8rt.Isol8Options` or its fields as keywords (``Sandbox(network="none",
    memory_limit="1g")``); ``prewarm`` (True or a list of runtimes) fills the warm pool at start. ``remote``
    (a server's URL, with ``api_key``) runs everything on an isol8rt server instead, with the same methods;
    the options given are sent with each request. ``engine`` is an alternative to both: a
    :class:`~isol8rt.DockerIsol8` or :class:`~isol8rt.RemoteIsol8` not started yet, which this face starts,
    drives and stops.
    """

    def __init__(self, options: Isol8Options | None = None, /, *, prewarm: bool | list[str] = False,
                 engine: Engine | None = None, remote: str | None = None, api_key: str | None = None,
                 **option_fields: Unpack[OptionFields]) -> None:
        self.engine: Engine = make_engine(options, engine, option_fields, remote=remote, api_key=api_key)
        self._portal = Portal(self.engine, prewarm, name="isol8rt-sync")
        # An engine left unstopped (no `with`, no stop()) is still stopped: when collected, or at exit.
        self._finalizer = weakref.finalize(self, self._portal.stop)

    @property
    def options(self) -> Isol8Options | dict[str, Any] | None:
        """The engine's options (for a server: those sent with each request, if any)."""
        return self.engine.options

    def start(self) -> Sandbox:
        """Connect to Docker and start the engine (and, with ``prewarm``, fill the pool)."""
        self._portal.start()
        return self

    def stop(self) -> None:
        """Cancel what is running, remove every container this engine made, end its thread."""
        self._finalizer()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------ running

    def execute(self, request: ExecutionRequest | str | None = None, /, *, session_id: str | None = None,
                cancel_after: float | None = None, **fields: Unpack[RequestFields]) -> ExecutionResult:
        """Run a program to its end: an ExecutionRequest, the program's text, or request keywords
        (``execute(code="...", runtime="node")``). ``cancel_after`` (seconds) bounds the whole call from
        here: past it the run is killed and TimeoutError raised (``timeout_ms`` is the program's own limit,
        reported in the result)."""
        req = make_request(request, fields)
        engine = self.engine
        return self._portal.call(lambda: engine.execute(req, session_id=session_id), cancel_after=cancel_after)

    def execute_stream(self, request: ExecutionRequest | str | None = None, /, *, session_id: str | None = None,
                       cancel_after: float | None = None, interactive: bool = False,
                       **fields: Unpack[RequestFields]) -> RunStream:
        """Start a run and return its events as an iterator (stdout/stderr as they come, then ``exit`` or
        ``error``). Leaving the loop early, :meth:`RunStream.close`, or an interrupt kills the run.
        ``interactive=True`` keeps the program's stdin open for :meth:`RunStream.write_stdin`."""
        return RunStream(self._portal, make_request(request, fields), session_id, cancel_after, interactive)

    # ------------------------------------------------------------------------------------ files, sessions

    def put_file(self, path: str, content: str | bytes, *, session_id: str | None = None) -> None:
        """Write a file into a persistent session's /sandbox (the engine's, in persistent mode)."""
        engine = self.engine
        self._portal.call(lambda: engine.put_file(path, content, session_id=session_id))

    def get_file(self, path: str, *, session_id: str | None = None) -> bytes:
        """Read a file from a persistent session's /sandbox; FileNotFoundError if there is none."""
        engine = self.engine
        return self._portal.call(lambda: engine.get_file(path, session_id=session_id))

    def sessions(self) -> list[SessionInfo]:
        engine = self.engine

        async def sessions() -> list[SessionInfo]:
            return await list_sessions(engine)

        return self._portal.call(sessions)

    def close_session(self, session_id: str) -> bool:
        """End a session and remove its container; False when there was none."""
        engine = self.engine
        return self._portal.call(lambda: engine.close_session(session_id))

    def session(self, session_id: str | None = None) -> SandboxSession:
        """A handle on one persistent session (a fresh id when none is given); ``with`` closes it."""
        return SandboxSession(self, session_id or f"session-{uuid.uuid4().hex[:12]}")


class SandboxSession:
    """One persistent session of a :class:`Sandbox`: its runs share files and (Python, Node) live state."""

    def __init__(self, sandbox: Sandbox, session_id: str) -> None:
        self.sandbox = sandbox
        self.id = session_id

    def execute(self, request: ExecutionRequest | str | None = None, /, *, cancel_after: float | None = None,
                **fields: Unpack[RequestFields]) -> ExecutionResult:
        return self.sandbox.execute(request, session_id=self.id, cancel_after=cancel_after, **fields)

    def execute_stream(self, request: ExecutionRequest | str | None = None, /, *, cancel_after: float | None = None,
                       interactive: bool = False, **fields: Unpack[RequestFields]) -> RunStream:
        return self.sandbox.execute_stream(request, session_id=self.id, cancel_after=cancel_after,
                                           interactive=interactive, **fields)

    def put_file(self, path: str, content: str | bytes) -> None:
        self.sandbox.put_file(path, content, session_id=self.id)

    def get_file(self, path: str) -> bytes:
        return self.sandbox.get_file(path, session_id=self.id)

    def close(self) -> bool:
        return self.sandbox.close_session(self.id)

    def __enter__(self) -> SandboxSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


#: The name this class had before it was told apart from the engine's own sessions; kept so that code
#: written against it goes on working.
Session = SandboxSession

class RunStream(Iterator[StreamEvent]):
    """A running program's events. The run starts when the stream is made; iterate to follow it."""

    def __init__(self, portal: Portal, request: ExecutionRequest, session_id: str | None,
                 cancel_after: float | None, interactive: bool) -> None:
        self._portal = portal
        # Unbounded on purpose: the engine caps a run's output (max_output_size), so this is too.
        self._events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._finished = False
        self._control = new_control(portal.engine) if interactive else None
        engine, events, control = portal.engine, self._events, self._control

        async def pump() -> None:
            stream = open_stream(engine, request, session_id, control)
            async with contextlib.aclosing(stream):
                async for event in stream:
                    events.put(event)

        self._call: Call[None] = Call(pump, lambda: events.put(_END), cancel_after)
        portal.submit(self._call)

    def __iter__(self) -> RunStream:
        return self

    def __next__(self) -> StreamEvent:
        if self._finished:
            raise StopIteration
        try:
            item = self._events.get()
        except BaseException:
            self._abandon()
            raise
        if item is _END:
            self._finished = True
            self._call.result()
            raise StopIteration
        assert isinstance(item, StreamEvent)
        return item

    def close(self) -> None:
        """Kill the run if it is still going, and wait until its container is free."""
        if not self._finished:
            self._abandon()

    def _abandon(self) -> None:
        self._finished = True
        self._call.cancel()
        # Wait until the run is over; a second interrupt stops the waiting. A done call with nothing left
        # queued had its end taken already (by a next() interrupted just after).
        deadline = time.monotonic() + CANCEL_GRACE_S
        while not (self._call.done and self._events.empty()):
            try:
                if self._events.get(timeout=max(0.0, deadline - time.monotonic())) is _END:
                    return
            except queue.Empty:
                return

    def __enter__(self) -> RunStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Dropped without close(): kill the run without waiting (no blocking in a finalizer).
        if not self._call.done:
            self._call.cancel()

    # ------------------------------------------------------------------------------------ interactive runs

    def _need_control(self) -> Control:
        if self._control is None:
            raise InvalidRequest("stdin and signals need a stream started with interactive=True")
        return self._control

    def write_stdin(self, data: str | bytes) -> bool:
        """Feed the program's stdin; False once it has ended."""
        control = self._need_control()
        return self._portal.call(lambda: control.write_stdin(data))

    def close_stdin(self) -> bool:
        control = self._need_control()
        return self._portal.call(control.close_stdin)

    def signal(self, signum: int | str) -> bool:
        """Send a signal ("SIGINT", "TERM", 9, ...) to the program's process group."""
        control = self._need_control()
        return self._portal.call(lambda: control.signal(signum))

