"""Timing hooks around the engine, without touching its code.

- :class:`TimedIsol8`: a thin subclass of :class:`~isol8rt.DockerIsol8` that marks when a run takes its
  pooled container, when the result is being made (the agent's Exit is in hand) and when the container is
  handed back, and keeps the Exit's own timings. It overrides two private methods (``_pool_lease`` and
  ``_result``); :data:`HOOKS` says whether they are still there (if the engine changes, phases go missing
  from the report instead of the benchmark breaking, and ``tests/bench`` fails).
- :class:`TimedBackend`: wraps the engine's :class:`~isol8rt.engine.backend.DockerBackend` and marks each
  Docker call (create, attach, start, remove) and the first bytes from the agent (its Ready).

Marks belong to the task that called :func:`timed_execute` (a context variable), so concurrent callers
each get their own.
"""

from __future__ import annotations

import contextlib
import contextvars
import time

import trio

from isol8rt import DockerIsol8, ExecutionRequest, ExecutionResult
from isol8rt.engine.backend import DockerBackend

_now = time.perf_counter


class Marks:
    """Timestamps of one run (perf_counter seconds) and the agent's Exit timings."""

    __slots__ = ("t", "inject_ms", "process_ms")

    def __init__(self) -> None:
        self.t: dict[str, float] = {}
        self.inject_ms: float | None = None
        self.process_ms: float | None = None

    def mark(self, name: str) -> None:
        self.t[name] = _now()

    def latency_ms(self) -> float:
        return (self.t["return"] - self.t["call"]) * 1000


_current: contextvars.ContextVar[Marks | None] = contextvars.ContextVar("isol8rt_bench_marks", default=None)

HOOKS = hasattr(DockerIsol8, "_pool_lease") and hasattr(DockerIsol8, "_result")


class TimedIsol8(DockerIsol8):
    """DockerIsol8 that marks a run's lease and result for :func:`timed_execute`."""

    if HOOKS:
        @contextlib.asynccontextmanager
        async def _pool_lease(self, runtime, image, *args, **kwargs):
            marks = _current.get()
            if marks is not None:
                marks.mark("lease")
            async with super()._pool_lease(runtime, image, *args, **kwargs) as sandbox:
                if marks is not None:
                    marks.mark("acquired")
                yield sandbox
            if marks is not None:
                marks.mark("released")

        def _result(self, plan, outcome, *args, **kwargs):
            marks = _current.get()
            if marks is not None:
                marks.mark("result")
                exit = getattr(outcome, "exit", None)
                if exit is not None:
                    marks.inject_ms = exit.start_ms
                    marks.process_ms = exit.duration_ms
            return super()._result(plan, outcome, *args, **kwargs)


async def timed_execute(engine, request: ExecutionRequest, **kwargs) -> tuple[ExecutionResult, Marks]:
    """``engine.execute(request)`` with its marks ("call" and "return" around it, the rest from the hooks
    of :class:`TimedIsol8` and :class:`TimedBackend` when they are in use)."""
    marks = Marks()
    token = _current.set(marks)
    try:
        marks.mark("call")
        result = await engine.execute(request, **kwargs)
        marks.mark("return")
    finally:
        _current.reset(token)
    return result, marks


class _TimedStream:
    """An agent stream that marks its first receive (the agent's Ready) into the current run's marks."""

    __slots__ = ("_stream", "_backend")

    def __init__(self, stream, backend: TimedBackend) -> None:
        self._stream = stream
        self._backend = backend

    async def send_all(self, data) -> None:
        await self._stream.send_all(data)

    async def receive(self):
        frames = await self._stream.receive()
        self._backend._mark_once("ready")
        return frames

    async def aclose(self) -> None:
        await self._stream.aclose()


class TimedBackend:
    """A DockerBackend whose calls are marked. Meant for one container at a time (a cold run): its marks
    go to the run in progress (``_current``) and, for the removal that happens after execute() returned,
    to :attr:`removals`."""

    def __init__(self, inner: DockerBackend | None = None) -> None:
        self.inner = inner or DockerBackend()
        self.client = self.inner.client
        self.marks: Marks | None = None
        #: (start, end) perf_counter pairs of every remove.
        self.removals: list[tuple[float, float]] = []
        self.removed = trio.Event()

    def _mark_once(self, name: str) -> None:
        marks = self.marks or _current.get()
        if marks is not None and name not in marks.t:
            marks.mark(name)

    async def create(self, spec) -> str:
        self.marks = _current.get() or self.marks
        self._mark_once("create0")
        container_id = await self.inner.create(spec)
        self._mark_once("create1")
        return container_id

    async def attach(self, container_id: str):
        stream = await self.inner.attach(container_id)
        self._mark_once("attach1")
        return _TimedStream(stream, self)

    async def start(self, container_id: str) -> None:
        await self.inner.start(container_id)
        self._mark_once("start1")

    async def remove(self, container_id: str) -> None:
        started = _now()
        try:
            await self.inner.remove(container_id)
        finally:
            self.removals.append((started, _now()))
            self.removed.set()

    def __getattr__(self, name: str):
        # Everything else the engine asks of its backend (kill, list, find_baked_image, ...), unmarked.
        return getattr(self.inner, name)

    async def aclose(self) -> None:
        await self.inner.aclose()
