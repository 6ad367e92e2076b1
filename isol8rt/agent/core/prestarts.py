"""Interpreters started ahead of time (see protocol.Prestart): which are armed, which run may take one,
when they go stale, and the Ready that waits for them to be warm.

A prestarted interpreter has initialised and is blocked opening its program, a FIFO at the program's
path. A Run with the same argv, env, cwd and program path only hands it the program text. Anything that
could change what it would have seen at start-up (a file written, another process run first) makes the
armed ones stale: they are then discarded, never used.
"""

from __future__ import annotations

from ..protocol import Prestart, Ready, Run

#: A program handed to a prestarted interpreter goes through its FIFO, enlarged to this size; a larger
#: one is run cold. (Also the most stdin a run in a session may bring: it travels in a pipe too.)
PIPE_SIZE = 1024 * 1024
#: While a Ready waits for warm interpreters, they are looked at this often, and waited for this long.
WARM_POLL_S = 0.002
WARM_TIMEOUT_S = 1.0


class Armed:
    """One prestarted interpreter: what it was started as, and its pid."""

    __slots__ = ("spec", "pid")

    def __init__(self, spec: Prestart, pid: int) -> None:
        self.spec = spec
        self.pid = pid

    def matches(self, run: Run) -> bool:
        spec = self.spec
        return (run.code is not None and run.code_path == spec.code_path and run.argv == spec.argv
                and run.cwd == spec.cwd and run.env == spec.env and len(run.code) <= PIPE_SIZE)


class Prestarts:
    """The prestart specs of the Configure, the armed interpreters, and a Ready waiting for them."""

    __slots__ = ("specs", "_armed", "stale", "_pending", "_warm_deadline")

    def __init__(self) -> None:
        self.specs: list[Prestart] = []
        self._armed: list[Armed] = []
        self.stale = False
        self._pending: Ready | None = None
        self._warm_deadline = 0.0

    @property
    def pids(self) -> list[int]:
        return [armed.pid for armed in self._armed]

    def owns(self, pid: int) -> bool:
        return any(armed.pid == pid for armed in self._armed)

    def armed(self, pids: list[int]) -> None:
        """The interpreters of :attr:`specs` that started (``pids`` in order, 0: did not)."""
        self.stale = False
        self._armed = [Armed(spec, pid) for spec, pid in zip(self.specs, pids) if pid]

    def take(self, run: Run) -> int | None:
        """The pid of an armed interpreter that can run ``run`` (no longer armed), or None."""
        if self.stale:
            return None
        for index, armed in enumerate(self._armed):
            if armed.matches(run):
                del self._armed[index]
                return armed.pid
        return None

    def drop_all(self) -> list[int]:
        """Forget every armed interpreter; returns their pids (to be killed)."""
        pids = self.pids
        self._armed = []
        return pids

    def died(self, pid: int) -> bool:
        """An armed interpreter ended; False if ``pid`` was none of them."""
        for index, armed in enumerate(self._armed):
            if armed.pid == pid:
                del self._armed[index]
                return True
        return False

    # ----------------------------------------------------------------------------------- readiness

    @property
    def pending(self) -> Ready | None:
        """The Ready waiting for warm interpreters, if one is."""
        return self._pending

    def announce(self, ready: Ready, now: float) -> None:
        """Hold ``ready`` until every armed interpreter is warm (or gone), or :data:`WARM_TIMEOUT_S`: a run
        given to the container earlier would wait for an interpreter's start-up on its own clock."""
        self._pending = ready
        self._warm_deadline = now + WARM_TIMEOUT_S

    def ready_now(self, now: float) -> bool:
        """Whether the pending Ready goes out without looking: nothing to wait for, or waited long enough."""
        return not self._armed or now >= self._warm_deadline

    def release(self) -> Ready:
        ready, self._pending = self._pending, None
        assert ready is not None  # released only while pending
        return ready
