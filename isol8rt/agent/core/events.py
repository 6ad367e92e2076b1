"""What the driver tells the agent's core: what happened to its children, to the proxy and to time, and
how each action that reports back went.

Host messages are not events: they reach the core as bytes (:meth:`.AgentCore.receive_data`) or as
messages (:meth:`.AgentCore.receive`). Everything here is a plain value; the driver makes them, the
core reads them, nothing here does I/O.

Children are named by pid. A run's process, a session's interpreter, a prestarted interpreter and the
proxy are all children of the agent; the core knows which is which. Reports name the run (``run_id``)
or the file operation they answer.
"""

from __future__ import annotations

import msgspec

from ..protocol import PutFile


class Event(msgspec.Struct, frozen=True):
    pass


class Readings(msgspec.Struct, frozen=True):
    """What the driver reads of the container around a run: the memory cgroup's OOM-kill count (-1 when
    unknown), bytes received and sent on interfaces other than loopback, and, for a run inside a
    session, the interpreter's CPU time and peak memory so far (a cell ends without a wait status)."""

    oom_kills: int = -1
    net_rx: int = 0
    net_tx: int = 0
    cpu_user_ms: float = 0.0
    cpu_system_ms: float = 0.0
    peak_kb: int = 0


class ChildUsage(msgspec.Struct, frozen=True):
    """A reaped child's resource usage (from wait4's rusage)."""

    cpu_user_ms: float
    cpu_system_ms: float
    peak_kb: int


# --------------------------------------------------------------------------------------------------
# time, signals, the host's stream


class Tick(Event, frozen=True):
    """Time has passed: run deadlines, the wait for warm prestarts and the idle limit are looked at. The
    driver sends one after every wait (see :meth:`.AgentCore.next_deadline`)."""


class Terminated(Event, frozen=True):
    """The agent got SIGTERM."""


class HostGone(Event, frozen=True):
    """Writing to the host failed (its end of the stream is closed): nobody hears the agent any more."""


# --------------------------------------------------------------------------------------------------
# children


class ChildOutput(Event, frozen=True):
    """Bytes read from a child's stdout (fd 1) or stderr (fd 2)."""

    pid: int
    fd: int
    data: bytes


class ChildOutputClosed(Event, frozen=True):
    """A child's stdout or stderr reached its end (every writer closed it), or was drained and closed by
    the driver because the child exited."""

    pid: int
    fd: int


class ChildExited(Event, frozen=True):
    """A child was reaped, with its wait status. The driver has already reported what its pipes still
    held (ChildOutput, then ChildOutputClosed) and closed every descriptor it kept for it."""

    pid: int
    status: int
    usage: ChildUsage | None = None


class CellDone(Event, frozen=True):
    """A session's interpreter finished a cell with this exit status; the driver has already reported the
    output the cell wrote."""

    pid: int
    status: int


class ProxyOutput(Event, frozen=True):
    """Bytes the proxy wrote on its stdout (lines; b"": its stdout ended)."""

    data: bytes


class ProxyStderr(Event, frozen=True):
    """Bytes the proxy wrote on its stderr (diagnostics)."""

    data: bytes


class ProxySilent(Event, frozen=True):
    """An :class:`~.actions.AwaitProxy` ran out of time before the proxy answered."""


# --------------------------------------------------------------------------------------------------
# reports of actions


class Spawned(Event, frozen=True):
    """The run's process started (spawned, or a prestarted interpreter was handed its program)."""

    run_id: int
    pid: int
    before: Readings


class PrepareFailed(Event, frozen=True):
    """The run's program file or working directory could not be made; ``message`` is for the user."""

    run_id: int
    message: str
    kind: str


class SpawnFailed(Event, frozen=True):
    """exec failed: ``not_found`` when the program does not exist (a shell's 127), else 126."""

    run_id: int
    not_found: bool
    reason: str


class HandOverFailed(Event, frozen=True):
    """The prestarted interpreter could not be given its program (it is unusable)."""

    run_id: int
    reason: str


class PrestartsArmed(Event, frozen=True):
    """The prestarted interpreters asked for: ``pids`` in the order asked, 0 for one that could not start;
    ``problems`` in the same order, why one could not ("" for one that started)."""

    pids: list[int]
    problems: list[str] = []


class ForkServerStarted(Event, frozen=True):
    """The fork server is serving (``problem`` ""), or why not (prestarts are then fresh interpreters)."""

    problem: str = ""


class Warmth(Event, frozen=True):
    """Whether every prestarted interpreter asked about holds its program's FIFO open (or is gone)."""

    all_warm: bool


class Prepared(Event, frozen=True):
    """A session run's working directory is in place."""

    run_id: int


class InterpreterStarted(Event, frozen=True):
    run_id: int
    pid: int


class InterpreterFailed(Event, frozen=True):
    run_id: int
    reason: str


class CellSent(Event, frozen=True):
    """The interpreter has the run's cell."""

    run_id: int
    before: Readings


class CellFailed(Event, frozen=True):
    """The cell could not be handed over: the interpreter is gone."""

    run_id: int
    reason: str


class FilterRefused(Event, frozen=True):
    """The per-run seccomp filter cannot be prepared: every spawn will now fail."""

    reason: str


class ProxyStarted(Event, frozen=True):
    pid: int


class NetworkRefused(Event, frozen=True):
    """The firewall could not be installed (or the capability dropped): filtered networking is off."""

    reason: str


class FileWritten(Event, frozen=True):
    put: PutFile


class FileNotWritten(Event, frozen=True):
    put: PutFile
    reason: str
    kind: str


class FileSent(Event, frozen=True):
    """A GetFile's FileData went out (``error`` None), or the error that stopped it."""

    op_id: int
    error: str | None = None


class Collected(Event, frozen=True):
    """A finished run's readings are taken and its output files sent."""

    run_id: int
    after: Readings
    file_errors: dict[str, str] = {}


class Swept(Event, frozen=True):
    """The reset's first part: every sandbox-user task killed and the kernel asked (``settled``: none but
    the kept ones is left; ``counted``: a pids cgroup said so, not a scan of /proc), SysV IPC removed
    (``ipc_clean``: none listed after), the wiped directories given back their metadata and emptied."""

    settled: bool
    counted: bool
    ipc_removed: int
    ipc_clean: bool
    files_removed: int


class Inspected(Event, frozen=True):
    """The reset's last look: how the emptied directories differ from their first record, and the sockets
    nobody but a user task could hold (each a line for the log; empty: nothing)."""

    differences: list[str]
    leftovers: list[str]
