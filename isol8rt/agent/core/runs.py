"""Runs under way, from the start of their process to their Exit: each run's output budget, deadline,
end, and the Exit that reports it.

A run ends when its process has ended (a wait status, or its cell's status in a session) and its
stdout and stderr are closed (a background process holding them open is cut off when the process ends:
the driver drains them then). What is left to do once it has ended is the core's: the proxy's log, the
output files and the readings.
"""

from __future__ import annotations

import os
import signal

from ..protocol import Exit, Output, Run, Usage
from .actions import Action, Kill
from .events import ChildUsage, Readings

#: After a session cell overruns its timeout, how long its KeyboardInterrupt has before SIGKILL.
SESSION_INTERRUPT_GRACE_S = 1.0


class ActiveRun:
    """One run whose process has started, up to its Exit."""

    __slots__ = ("request", "pid", "session", "started", "start_ms", "deadline", "sent", "truncated",
                 "open_streams", "status", "usage", "cell_status", "timed_out", "before", "network_log",
                 "flushing", "network_log_flushed", "ended_at")

    def __init__(self, request: Run, pid: int, arrived: float, started: float, before: Readings,
                 session: str | None = None) -> None:
        self.request = request
        #: The run's process; for a run in a session, the session's interpreter.
        self.pid = pid
        self.session = session
        self.started = started
        #: From the Run's arrival to the process's start (spawn, or handing over the program).
        self.start_ms = (started - arrived) * 1000
        self.deadline = started + request.timeout_ms / 1000 if request.timeout_ms > 0 else float("inf")
        self.sent = {1: 0, 2: 0}
        self.truncated = {1: False, 2: False}
        # A session's pipes belong to the session, which outlives the run.
        self.open_streams = {1, 2} if session is None else set()
        self.status: int | None = None
        self.usage: ChildUsage | None = None
        #: For a run in a session: the status its cell reported.
        self.cell_status: int | None = None
        self.timed_out = False
        self.before = before
        self.network_log: list[bytes] = []
        #: Waiting for the proxy to close this run's connections (and log them) before the Exit.
        self.flushing = False
        self.network_log_flushed = False
        self.ended_at = 0.0

    @property
    def ended(self) -> bool:
        return self.status is not None or self.cell_status is not None

    def forward(self, fd: int, data: bytes) -> Output | None:
        """The Output for ``data`` within the stream's budget; None (and the stream flagged truncated)
        once the budget is spent."""
        room = self.request.max_output - self.sent[fd]
        if room <= 0:
            self.truncated[fd] = True
            return None
        if len(data) > room:
            data = data[:room]
            self.truncated[fd] = True
        self.sent[fd] += len(data)
        return Output(id=self.request.id, fd=fd, data=data)

    def exit(self, after: Readings, file_errors: dict[str, str]) -> Exit:
        """The Exit that reports this run, given the readings taken after it."""
        request = self.request
        if self.cell_status is not None:
            signum, exit_code = 0, self.cell_status
        else:
            status = self.status or 0
            signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
            exit_code = 128 + signum if signum else os.WEXITSTATUS(status)
        if self.timed_out:
            exit_code = 137
        usage = self.usage
        if self.session is not None and usage is None:
            # The interpreter lives on: what it used during the cell, and its peak so far.
            cpu = (after.cpu_user_ms - self.before.cpu_user_ms, after.cpu_system_ms - self.before.cpu_system_ms)
            peak_kb = after.peak_kb
        elif usage is not None:
            cpu, peak_kb = (usage.cpu_user_ms, usage.cpu_system_ms), usage.peak_kb
        else:
            cpu, peak_kb = (0.0, 0.0), 0
        return Exit(
            id=request.id,
            exit_code=exit_code,
            signal=signum,
            timed_out=self.timed_out,
            oom_killed=not self.timed_out and after.oom_kills > self.before.oom_kills >= 0,
            truncated_stdout=self.truncated[1],
            truncated_stderr=self.truncated[2],
            duration_ms=(self.ended_at - self.started) * 1000,
            start_ms=self.start_ms,
            usage=Usage(
                cpu_user_ms=cpu[0],
                cpu_system_ms=cpu[1],
                peak_memory_kb=peak_kb,
                net_rx_bytes=after.net_rx - self.before.net_rx,
                net_tx_bytes=after.net_tx - self.before.net_tx,
            ),
            file_errors=file_errors,
            network_log=self.network_log if request.log_network else [],
        )


class Runs:
    """The runs whose process has started and whose Exit has not been decided, by id and, for runs of
    their own process (not in a session), by pid."""

    __slots__ = ("_by_id", "_by_pid")

    def __init__(self) -> None:
        self._by_id: dict[int, ActiveRun] = {}
        self._by_pid: dict[int, ActiveRun] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self):
        return iter(list(self._by_id.values()))

    def __contains__(self, run_id: int) -> bool:
        return run_id in self._by_id

    def get(self, run_id: int) -> ActiveRun | None:
        return self._by_id.get(run_id)

    def of_process(self, pid: int) -> ActiveRun | None:
        """The run whose own process ``pid`` is (None for an interpreter: its session knows its run)."""
        return self._by_pid.get(pid)

    def add(self, run: ActiveRun) -> None:
        self._by_id[run.request.id] = run
        if run.session is None:
            self._by_pid[run.pid] = run

    def remove(self, run: ActiveRun) -> None:
        del self._by_id[run.request.id]
        if run.session is None:
            del self._by_pid[run.pid]

    def clear(self) -> list[ActiveRun]:
        """Forget every run (a reset); returns them."""
        runs = list(self._by_id.values())
        self._by_id.clear()
        self._by_pid.clear()
        return runs

    def next_deadline(self) -> float | None:
        return min((run.deadline for run in self._by_id.values() if not run.ended), default=None)

    def enforce_deadlines(self, now: float) -> list[Action]:
        """The signals for runs past their deadline. A session's cell gets SIGINT first (a
        KeyboardInterrupt keeps the session's state) and SIGKILL after a grace; any other run SIGKILL."""
        actions: list[Action] = []
        for run in self._by_id.values():
            if run.ended or now < run.deadline:
                continue
            if run.session is not None and not run.timed_out:
                run.timed_out = True
                run.deadline = now + SESSION_INTERRUPT_GRACE_S
                actions.append(Kill(run.pid, signal.SIGINT))
            else:
                run.timed_out = True
                run.deadline = float("inf")
                actions.append(Kill(run.pid, signal.SIGKILL))
        return actions
