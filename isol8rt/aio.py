"""The asyncio face of the engine.

    async with isol8rt.aio.Isol8(timeout_ms=10_000) as engine:
        result = await engine.execute("print(6 * 7)")
        async for event in engine.execute_stream(code="echo hi", runtime="bash"):
            print(event.type, event.data)

The engine (a :class:`~isol8rt.DockerIsol8`, or a :class:`~isol8rt.RemoteIsol8` with ``remote=``) runs in a
trio run on a thread of its own; the event loop only ever awaits futures, so it never blocks. Cancellation
goes both ways: cancelling the awaiting task (directly, by ``asyncio.timeout``, by a TaskGroup failing)
cancels the run as a trio cancel scope would: the CancelledError moves on once the engine has let go of the
run (its container discarded, or its session's program interrupted), and the program is dead a fraction of a
second later. A failure on the engine's side is raised by the awaitable.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar, Unpack

from .errors import InvalidRequest
from .faces.portal import CANCEL_GRACE_S, Call, Portal
from .faces.engines import Control, Engine, list_sessions, make_engine, new_control, open_stream
from .faces.shortcuts import OptionFields, RequestFields, make_request
from .types import ExecutionRequest, ExecutionResult, Isol8Options, SessionInfo, StreamEvent

__all__ = ["Isol8", "RunStream", "Isol8Session", "Session"]

T = TypeVar("T")

_END = object()


def _notifier(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> Callable[[], object]:
    """A notify for :class:`Call` that runs ``callback`` on the loop's thread."""

    def notify() -> None:
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    return notify


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _settle(done: asyncio.Future[None]) -> None:
    """Wait (bounded) for a cancelled call to be over; further cancellations do not stop the wait, since
    the caller is already on its way out with a CancelledError."""
    loop = asyncio.get_running_loop()
    end = loop.time() + CANCEL_GRACE_S
    while not done.done() and loop.time() < end:
        try:
            await asyncio.wait({done}, timeout=end - loop.time())
        except asyncio.CancelledError:
            continue


async def _call(portal: Portal, fn: Callable[[], Awaitable[T]], cancel_after: float | None = None) -> T:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    call = Call(fn, _notifier(loop, lambda: _resolve(done)), cancel_after)
    portal.submit(call)
    try:
        await asyncio.shield(done)
    except asyncio.CancelledError:
        call.cancel()
        await _settle(done)
        raise
    return call.result()


class Isol8:
    """An engine with asyncio methods. Use ``async with Isol8(...) as engine:`` or :meth:`start` /
    :meth:`stop`.

    Takes an :class:`~isol8rt.Isol8Options` or its fields as keywords; ``prewarm`` (True or a list of
    runtimes) fills the warm pool at start; ``remote`` (a server's URL, with ``api_key``) runs everything
    on an isol8rt server instead, with the same methods; ``engine`` is an alternative to both: a
    :class:`~isol8rt.DockerIsol8` or :class:`~isol8rt.RemoteIsol8` not started yet.
    """

    def __init__(self, options: Isol8Options | None = None, /, *, prewarm: bool | list[str] = False,
                 engine: Engine | None = None, remote: str | None = None, api_key: str | None = None,
                 **option_fields: Unpack[OptionFields]) -> None:
        self.engine: Engine = make_engine(options, engine, option_fields, remote=remote, api_key=api_key)
        self._portal = Portal(self.engine, prewarm, name="isol8rt-aio")
        # A fallback for an engine never stopped: stopped when collected, or at exit (blocking, so
        # `async with` or stop() is the way).
        self._finalizer = weakref.finalize(self, self._portal.stop)

    @property
    def options(self) -> Isol8Options | dict[str, Any] | None:
        """The engine's options (for a server: those sent with each request, if any)."""
        return self.engine.options

    async def start(self) -> None:
        """Connect to Docker and start the engine (and, with ``prewarm``, fill the pool)."""
        loop = asyncio.get_running_loop()
        starting = loop.run_in_executor(None, self._portal.start)
        try:
            await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The start goes on in its thread: let it finish, then undo it.
            await _settle_executor(starting)
            await self.stop()
            raise

    async def stop(self) -> None:
        """Cancel what is running, remove every container this engine made, end its thread. Finishes even
        when the awaiting task is cancelled."""
        stopping = asyncio.get_running_loop().run_in_executor(None, self._finalizer)
        try:
            await asyncio.shield(stopping)
        except asyncio.CancelledError:
            await _settle_executor(stopping)
            raise

    async def __aenter__(self) -> Isol8:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------------------------ running

    async def execute(self, request: ExecutionRequest | str | None = None, /, *, session_id: str | None = None,
                      **fields: Unpack[RequestFields]) -> ExecutionResult:
        """Run a program to its end: an ExecutionRequest, the program's text, or request keywords."""
        req = make_request(request, fields)
        engine = self.engine
        return await _call(self._portal, lambda: engine.execute(req, session_id=session_id))

    def execute_stream(self, request: ExecutionRequest | str | None = None, /, *, session_id: str | None = None,
                       interactive: bool = False, **fields: Unpack[RequestFields]) -> RunStream:
        """Start a run and return its events as an async iterator. Leaving the loop early kills the run when
        the stream is closed (``async with engine.execute_stream(...) as events`` closes it at once; an
        abandoned stream is closed when collected). ``interactive=True`` keeps the program's stdin open for
        :meth:`RunStream.write_stdin`. Call it from a coroutine: the run starts at once."""
        return RunStream(self._portal, make_request(request, fields), session_id, interactive)

    # ------------------------------------------------------------------------------------ files, sessions

    async def put_file(self, path: str, content: str | bytes, *, session_id: str | None = None) -> None:
        engine = self.engine
        await _call(self._portal, lambda: engine.put_file(path, content, session_id=session_id))

    async def get_file(self, path: str, *, session_id: str | None = None) -> bytes:
        engine = self.engine
        return await _call(self._portal, lambda: engine.get_file(path, session_id=session_id))

    async def sessions(self) -> list[SessionInfo]:
        engine = self.engine

        async def sessions() -> list[SessionInfo]:
            return await list_sessions(engine)

        return await _call(self._portal, sessions)

    async def close_session(self, session_id: str) -> bool:
        engine = self.engine
        return await _call(self._portal, lambda: engine.close_session(session_id))

    def session(self, session_id: str | None = None) -> Isol8Session:
        """A handle on one persistent session (a fresh id when none is given); ``async with`` closes it."""
        return Isol8Session(self, session_id or f"session-{uuid.uuid4().hex[:12]}")


class Isol8Session:
    """One persistent session of an :class:`Isol8`: its runs share files and (Python, Node) live state."""

    def __init__(self, engine: Isol8, session_id: str) -> None:
        self.engine = engine
        self.id = session_id

    async def execute(self, request: ExecutionRequest | str | None = None, /,
                      **fields: Unpack[RequestFields]) -> ExecutionResult:
        return await self.engine.execute(request, session_id=self.id, **fields)

    def execute_stream(self, request: ExecutionRequest | str | None = None, /, *, interactive: bool = False,
                       **fields: Unpack[RequestFields]) -> RunStream:
        return self.engine.execute_stream(request, session_id=self.id, interactive=interactive, **fields)

    async def put_file(self, path: str, content: str | bytes) -> None:
        await self.engine.put_file(path, content, session_id=self.id)

    async def get_file(self, path: str) -> bytes:
        return await self.engine.get_file(path, session_id=self.id)

    async def close(self) -> bool:
        return await self.engine.close_session(self.id)

    async def __aenter__(self) -> Isol8Session:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


#: The name this class had before it was told apart from the engine's own sessions; kept so that code
#: written against it goes on working.
Session = Isol8Session

class RunStream(AsyncIterator[StreamEvent]):
    """A running program's events, as an async iterator and an async context manager."""

    def __init__(self, portal: Portal, request: ExecutionRequest, session_id: str | None,
                 interactive: bool) -> None:
        loop = asyncio.get_running_loop()
        self._portal = portal
        # Unbounded on purpose: the engine caps a run's output (max_output_size), so this is too.
        self._events: asyncio.Queue[object] = asyncio.Queue()
        self._done: asyncio.Future[None] = loop.create_future()
        self._finished = False
        self._control = new_control(portal.engine) if interactive else None
        engine, events, control, done = portal.engine, self._events, self._control, self._done

        async def pump() -> None:
            stream = open_stream(engine, request, session_id, control)
            async with contextlib.aclosing(stream):
                async for event in stream:
                    loop.call_soon_threadsafe(events.put_nowait, event)

        def ended() -> None:
            events.put_nowait(_END)
            _resolve(done)

        self._call: Call[None] = Call(pump, _notifier(loop, ended))
        portal.submit(self._call)

    def __aiter__(self) -> RunStream:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._finished:
            raise StopAsyncIteration
        try:
            item = await self._events.get()
        except asyncio.CancelledError:
            await self._abandon()
            raise
        if item is _END:
            self._finished = True
            self._call.result()
            raise StopAsyncIteration
        assert isinstance(item, StreamEvent)
        return item

    async def aclose(self) -> None:
        """Kill the run if it is still going, and wait until its container is free."""
        if not self._finished:
            await self._abandon()

    async def _abandon(self) -> None:
        self._finished = True
        self._call.cancel()
        await _settle(self._done)

    async def __aenter__(self) -> RunStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if not self._call.done:
            self._call.cancel()

    # ------------------------------------------------------------------------------------ interactive runs

    def _need_control(self) -> Control:
        if self._control is None:
            raise InvalidRequest("stdin and signals need a stream started with interactive=True")
        return self._control

    async def write_stdin(self, data: str | bytes) -> bool:
        control = self._need_control()
        return await _call(self._portal, lambda: control.write_stdin(data))

    async def close_stdin(self) -> bool:
        control = self._need_control()
        return await _call(self._portal, control.close_stdin)

    async def signal(self, signum: int | str) -> bool:
        control = self._need_control()
        return await _call(self._portal, lambda: control.signal(signum))


async def _settle_executor(future: asyncio.Future[Any]) -> None:
    while not future.done():
        try:
            await asyncio.wait({future})
        except asyncio.CancelledError:
            continue
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log it as never retrieved
