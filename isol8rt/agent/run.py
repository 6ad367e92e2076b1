"""One supervised run, from its Run message to its Exit: the process (or the session's interpreter it
runs in), its pipes, its output budget, its deadline, and the readings taken around it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from . import usage
from .process import Child
from .protocol import Run

if TYPE_CHECKING:
    from .session import SessionInterpreter

#: How much of a run's output one read of its pipe takes.
READ_SIZE = 64 * 1024


class ActiveRun:
    """One supervised process, from Run to Exit."""

    __slots__ = ("request", "child", "started", "deadline", "sent", "truncated", "stdin_pending",
                 "stdin_open", "open_pipes", "status", "rusage", "timed_out", "oom_before", "net_before", "start_ms",
                 "session", "cell_status", "cpu_before", "network_log", "flushing", "network_log_flushed")

    def __init__(self, request: Run, child: Child, session: SessionInterpreter | None = None) -> None:
        self.request = request
        self.child = child
        #: For a run inside a persistent interpreter: the interpreter, and the status its cell reported.
        self.session = session
        self.cell_status: int | None = None
        self.cpu_before = usage.process_cpu_ms(child.pid) if session else (0.0, 0.0)
        self.network_log: list[bytes] = []
        #: Waiting for the proxy to close this run's connections (and log them) before the Exit.
        self.flushing = False
        self.network_log_flushed = False
        self.started = time.monotonic()
        self.deadline = self.started + request.timeout_ms / 1000 if request.timeout_ms > 0 else float("inf")
        self.sent = {1: 0, 2: 0}
        self.truncated = {1: False, 2: False}
        self.stdin_pending = bytearray(request.stdin if session is None else b"")
        self.stdin_open = request.stdin_open and session is None
        # A session's pipes belong to the session, which outlives the run.
        self.open_pipes = {child.stdout: 1, child.stderr: 2} if session is None else {}
        self.status: int | None = None
        self.rusage = None
        self.timed_out = False
        self.oom_before = usage.oom_kills()
        self.net_before = usage.network_bytes()
        self.start_ms = 0.0

    @property
    def ended(self) -> bool:
        return self.status is not None or self.cell_status is not None
