"""One engine in a trio run on a thread of its own; other threads (plain code, an asyncio loop) hand it calls.

Why a thread and not trio's guest mode on the asyncio loop: the plain-sync face has no loop to be a guest
of, and one mechanism for both faces means one set of cancellation rules to get right. The caller's thread
only ever waits on a lock (sync) or a future (asyncio), so an asyncio loop never blocks.

Every call runs as a task in the portal's nursery, inside a cancel scope of its own. Cancelling a call
(from any thread) cancels that scope: the engine then kills the run and frees its container exactly as it
does for trio code, and the call still reports its end, so a caller can wait until the container is free.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Awaitable, Callable, Generic, TypeVar

import trio

from ..errors import EngineClosed
from .engines import Engine

T = TypeVar("T")

log = logging.getLogger("isol8rt.faces")

#: How long a caller that gave up waits for its cancelled run to be over (the engine's own clean-up is
#: quick; this only bounds a wedged Docker daemon).
CANCEL_GRACE_S = 10.0


class CallCancelled(Exception):
    """The outcome of a call its caller cancelled; never seen by the caller, who raises its own reason."""


class Call(Generic[T]):
    """One coroutine function run in the portal's trio thread. ``notify`` is called in that thread once the
    call is over, whichever way it ended."""

    __slots__ = ("_fn", "_notify", "_cancel_after", "_scope", "_cancel_requested", "_token", "value", "error",
                 "done")

    def __init__(self, fn: Callable[[], Awaitable[T]], notify: Callable[[], object],
                 cancel_after: float | None = None) -> None:
        self._fn = fn
        self._notify = notify
        self._cancel_after = cancel_after
        self._scope: trio.CancelScope | None = None
        self._cancel_requested = False
        self._token: trio.lowlevel.TrioToken | None = None
        self.value: T | None = None
        self.error: BaseException | None = None
        self.done = False

    def result(self) -> T:
        """The call's value, or its exception raised; only once it is done."""
        if self.error is not None:
            error, self.error = self.error, None  # no reference cycle through the traceback
            raise error
        return self.value  # type: ignore[return-value]  # a call that ended without error set its value

    def cancel(self) -> None:
        """Cancel the call from any thread; its ``notify`` still comes, once the run is really over."""
        self._cancel_requested = True
        token = self._token
        if token is not None and not self.done:
            try:
                token.run_sync_soon(self._cancel_in_trio)
            except trio.RunFinishedError:
                pass  # the run is over, and with it the call

    def _cancel_in_trio(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    async def run(self) -> None:
        finished = False
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                if self._cancel_requested:  # cancelled before the task started
                    scope.cancel()
                if self._cancel_after is not None:
                    scope.deadline = trio.current_time() + self._cancel_after
                try:
                    self.value = await self._fn()
                except Exception as exc:  # noqa: BLE001 - handed to the caller, who raises it
                    self.error = exc
            if scope.cancelled_caught and self.error is None:
                self.error = CallCancelled() if self._cancel_requested else TimeoutError(
                    f"cancelled after {self._cancel_after} s (cancel_after); the run was killed")
            finished = True
        finally:
            if not finished and self.error is None:
                # Only the portal's own nursery being cancelled gets here: the engine is stopping.
                self.error = EngineClosed("the engine stopped while this call was running")
            self._finish()

    def _finish(self) -> None:
        self.done = True
        try:
            self._notify()
        except Exception:  # noqa: BLE001 - a waiter that went away must not take the engine down
            log.exception("could not hand a result back")


class Portal:
    """A started engine (a :class:`~isol8rt.DockerIsol8`, or a :class:`~isol8rt.RemoteIsol8` and its
    connections) living in a trio run on a daemon thread."""

    def __init__(self, engine: Engine, prewarm: bool | list[str] = False, *, name: str = "isol8rt") -> None:
        self.engine = engine
        self._prewarm = prewarm
        self._name = name
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._stop_requested: trio.Event | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._token is not None and self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread and the engine; blocks until the engine is ready, or raises why it is not."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name=f"{self._name}-engine", daemon=True)
                self._thread.start()
        self._ready.wait()
        if self._token is None:
            raise self._error or EngineClosed("this engine was stopped")

    def stop(self) -> None:
        """Cancel every call in flight, stop the engine (removing its containers) and end the thread."""
        token, thread = self._token, self._thread
        if token is not None:
            try:
                token.run_sync_soon(self._request_stop)
            except trio.RunFinishedError:
                pass
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _request_stop(self) -> None:
        if self._stop_requested is not None:
            self._stop_requested.set()

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # noqa: BLE001 - reported to whoever called start()
            self._error = exc
        finally:
            self._token = None
            self._ready.set()

    async def _serve(self) -> None:
        self._stop_requested = trio.Event()
        try:
            # Outside the nursery: a failed start reaches start()'s caller as itself, not in a group.
            await self.engine.start(prewarm=self._prewarm)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._token = trio.lowlevel.current_trio_token()
                self._ready.set()
                await self._stop_requested.wait()
                nursery.cancel_scope.cancel()
        finally:
            self._token = None
            with trio.CancelScope(shield=True):
                await self.engine.stop()

    def submit(self, call: Call[Any]) -> None:
        """Start ``call`` in the engine's thread; raises EngineClosed when the engine is not running."""
        token = self._token
        if token is None:
            raise EngineClosed("this engine is not running: use it inside `with`, or call start() first")
        call._token = token
        try:
            token.run_sync_soon(self._spawn, call)
        except trio.RunFinishedError:
            raise EngineClosed("this engine was stopped") from None

    def _spawn(self, call: Call[Any]) -> None:
        nursery = self._nursery
        try:
            if nursery is None or self._token is None:
                raise RuntimeError
            nursery.start_soon(call.run)
        except RuntimeError:
            call.error = EngineClosed("this engine was stopped")
            call._finish()

    # ------------------------------------------------------------------------------------ waiting (sync)

    def call(self, fn: Callable[[], Awaitable[T]], *, cancel_after: float | None = None) -> T:
        """Run ``fn()`` in the engine's thread and wait for it. Whatever interrupts the wait (KeyboardInterrupt,
        an exception from a signal handler) cancels the run, waits until it is over, and propagates."""
        lock = threading.Lock()
        lock.acquire()
        call = Call(fn, lock.release, cancel_after)
        self.submit(call)
        try:
            lock.acquire()
        except BaseException:
            if not call.done:  # (an interrupt may also land just after the call ended)
                call.cancel()
                # The engine lets go of the run before the exception moves on; a second interrupt stops the wait.
                lock.acquire(timeout=CANCEL_GRACE_S)
            raise
        return call.result()
