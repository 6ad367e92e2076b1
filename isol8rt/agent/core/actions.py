"""What the agent's core asks of its driver, in order.

Some actions report back with an event (named in each docstring); the driver must report it before it
gives the core anything else, so the core always knows how the last thing it asked for went. Actions
that report nothing cannot fail in a way the conversation cares about.

Children are named by pid, as in :mod:`.events`. "Signal its group" means the child's whole process
group (every user process starts one of its own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from ..protocol import AgentMessage, NetworkPolicy, Prestart, PutFile

if TYPE_CHECKING:  # only filtered networking loads the proxy's lines; actions are never encoded
    from ..proxy_protocol import Control


class Action(msgspec.Struct, frozen=True):
    pass


class Send(Action, frozen=True):
    """Send ``message`` to the host."""

    message: AgentMessage


# --------------------------------------------------------------------------------------------------
# runs


class Spawn(Action, frozen=True):
    """Write the program (``code`` to ``code_path``, when given) and make the working directory, as the
    sandbox user, then start ``argv`` as the sandbox user in a session of its own and watch its stdout
    and stderr. Reports Spawned, PrepareFailed or SpawnFailed."""

    run_id: int
    argv: list[str]
    env: dict[str, str]
    cwd: str
    code_path: str | None = None
    code: bytes | None = None


class HandOver(Action, frozen=True):
    """Give the prestarted interpreter ``pid`` its program (``code``, as the file at ``code_path``) and
    watch its stdout and stderr from now on. Reports Spawned or HandOverFailed."""

    run_id: int
    pid: int
    code_path: str
    code: bytes


class WriteStdin(Action, frozen=True):
    """Queue ``data`` for the child's stdin; with ``eof``, close it once written. Nothing happens for a
    child whose stdin is closed already."""

    pid: int
    data: bytes = b""
    eof: bool = False


class Kill(Action, frozen=True):
    """Signal the child's process group."""

    pid: int
    signum: int


class Release(Action, frozen=True):
    """Close our ends of the child's pipes (and control socket), unread. Nothing for a child released
    already."""

    pid: int


class Collect(Action, frozen=True):
    """A run is over: take the readings after it (for a run in a session whose interpreter still lives,
    ``session_pid``'s CPU time and peak memory too) and send its ``output_paths`` as FileData, within
    ``max_file_bytes`` together. Reports Collected."""

    run_id: int
    output_paths: list[str]
    max_file_bytes: int
    session_pid: int = 0


# --------------------------------------------------------------------------------------------------
# prestarted interpreters


class ArmPrestarts(Action, frozen=True):
    """Start each of ``prestarts`` (their environments complete) blocked on a FIFO at its ``code_path``.
    Reports PrestartsArmed."""

    prestarts: list[Prestart]


class StartForkServer(Action, frozen=True):
    """Start the fork server: ``python`` (looked up on ``path``) importing ``preload``; the prestarted
    interpreters are then its forks. Reports ForkServerStarted."""

    python: str
    preload: list[str]
    path: str


class DropPrestart(Action, frozen=True):
    """Forget a prestarted interpreter: signal its group with SIGKILL if ``kill``, close what we hold of
    it, and remove its FIFO (nobody will ever write it) if the program's path is still that FIFO."""

    pid: int
    kill: bool = True


class CheckWarmth(Action, frozen=True):
    """Look whether each prestarted interpreter in ``pids`` has opened its program's FIFO. Reports
    Warmth."""

    pids: list[int]


# --------------------------------------------------------------------------------------------------
# sessions


class PrepareCwd(Action, frozen=True):
    """Make a session run's working directory, as the sandbox user. Reports Prepared or PrepareFailed."""

    run_id: int
    cwd: str


class StartInterpreter(Action, frozen=True):
    """Start the persistent interpreter ``name`` (python, node) as the sandbox user and watch its output
    and control socket. Reports InterpreterStarted or InterpreterFailed."""

    run_id: int
    name: str
    env: dict[str, str]


class SendCell(Action, frozen=True):
    """Hand the interpreter ``pid`` one cell: its code, cwd, environment, and stdin (whole, already
    closed). Reports CellSent or CellFailed; later, CellDone."""

    run_id: int
    pid: int
    code: str
    cwd: str
    env: dict[str, str]
    stdin: bytes = b""


# --------------------------------------------------------------------------------------------------
# files


class WriteFile(Action, frozen=True):
    """Write (a chunk of) a file under the sandbox as the sandbox user. Reports FileWritten or
    FileNotWritten."""

    put: PutFile


class SendFile(Action, frozen=True):
    """Send the file as FileData chunks of ``op_id``, at most ``max_bytes``. Reports FileSent."""

    op_id: int
    path: str
    max_bytes: int


# --------------------------------------------------------------------------------------------------
# configuration and filtered networking


class InstallFilter(Action, frozen=True):
    """From now on every user process installs this seccomp BPF program before exec. Reports
    FilterRefused when it cannot be prepared (then every spawn fails), nothing otherwise."""

    bpf: bytes


class StartNetwork(Action, frozen=True):
    """Install the firewall and drop CAP_NET_ADMIN for good, then start the proxy on ``port`` with
    ``policy``. Reports ProxyStarted or NetworkRefused."""

    port: int
    policy: NetworkPolicy


class StartProxy(Action, frozen=True):
    """Start the proxy again (the firewall is in place). Reports ProxyStarted."""

    port: int
    policy: NetworkPolicy


class ToProxy(Action, frozen=True):
    """Write one control line to the proxy's stdin."""

    line: Control


class AwaitProxy(Action, frozen=True):
    """Wait, doing nothing else, for what the proxy writes on its stdout (ProxyOutput) until the core no
    longer awaits it (:attr:`.AgentCore.awaiting_proxy`), or ``timeout_s`` has passed (ProxySilent)."""

    timeout_s: float


# --------------------------------------------------------------------------------------------------
# the reset, and the end


class Sweep(Action, frozen=True):
    """The reset's first part: kill every task of the sandbox user and wait for the kernel to confirm
    that no task is left but the agent's and those of ``kept`` (the proxy); remove SysV IPC; give each
    wiped directory its first owner, mode and extended attributes back, and empty it. Reports the
    children it reaped meanwhile (ChildExited), then Swept."""

    kept: list[int] = []


class Inspect(Action, frozen=True):
    """The reset's last look: the wiped directories against their first record, and the sockets that
    neither the agent nor ``proxy_pid`` holds (not read when the network namespace is the host's:
    ``shared_network``). Reports Inspected."""

    shared_network: bool = False
    proxy_pid: int = 0


class KillAll(Action, frozen=True):
    """The agent is exiting: kill every task of the sandbox user but ``kept``, waiting at most
    ``deadline_s`` for the kernel to confirm it."""

    kept: list[int] = []
    deadline_s: float = 2.0
