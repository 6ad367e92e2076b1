"""The agent wire protocol: messages between the engine (host) and the agent (container init process).

This module is imported by both sides and does no I/O. It runs inside the container too, so it may import
nothing but the standard library and msgspec.

A frame is a 4-byte big-endian payload length followed by one msgpack-encoded message. Frames travel over
the container's attach stream: host -> agent on the container's stdin, agent -> host on its stdout (which
Docker wraps in its own 8-byte multiplexing headers; the host strips those before feeding this decoder).
Docker splits and merges writes freely, so both sides rebuild frames from the byte stream with
:class:`FrameDecoder`.

Every message that belongs to an operation carries that operation's ``id``, chosen by the host. The agent
answers each operation with exactly one terminal message: :class:`Exit` for a :class:`Run`,
:class:`Done` for a :class:`PutFile` that asked for an ack, :class:`GetFile` or :class:`Reset`, or
:class:`Failed` for any of them.
"""

from __future__ import annotations

import struct
from typing import Literal, Union

import msgspec

# Bumped whenever a message changes shape; defined beside the greeting, which must load nothing.
from .greeting import PROTOCOL_VERSION as PROTOCOL_VERSION

#: The largest payload either side accepts. Bulk data (files) travels in chunks of at most CHUNK_SIZE.
MAX_FRAME = 32 * 1024 * 1024
CHUNK_SIZE = 1024 * 1024

_HEADER = struct.Struct(">I")


class _Message(msgspec.Struct, frozen=True, omit_defaults=True, tag_field="t"):
    pass


# --------------------------------------------------------------------------------------------------
# host -> agent


class Prestart(msgspec.Struct, frozen=True, omit_defaults=True):
    """A process the agent keeps started ahead of time, waiting for its program.

    ``code_path`` is created as a FIFO before the process starts: the interpreter initialises, opens the
    FIFO and blocks there. A :class:`Run` with the same argv, env and cwd then only has to hand over the
    program text, so the run is a genuine ``python3 /sandbox/main.py`` (argv, ``__file__``,
    /proc/self/cmdline and all) without paying for interpreter start-up on the hot path.
    """

    argv: list[str]
    env: dict[str, str]
    cwd: str
    code_path: str


class NetworkPolicy(msgspec.Struct, frozen=True, omit_defaults=True):
    """What the filtering proxy lets through: hostname regexes (deny wins; an empty allow list allows every
    host), private networks allowed after all (CIDRs), and the ports CONNECT may reach (empty: 443, 80)."""

    allow: list[str] = []
    deny: list[str] = []
    allow_private: list[str] = []
    connect_ports: list[int] = []


class NetworkConfig(msgspec.Struct, frozen=True, omit_defaults=True):
    """Filtered networking: the agent installs the firewall and starts the proxy on this loopback port."""

    proxy_port: int
    policy: NetworkPolicy = NetworkPolicy()


class Configure(_Message, tag="configure"):
    """Sent once, right after :class:`Ready`: per-container settings that must not sit in the container's
    config (which ``docker inspect`` shows), such as secrets in a prestarted process's environment."""

    prestart: list[Prestart] = []
    #: A seccomp BPF program (compiled on the host with libseccomp, for this container's architecture)
    #: that every user process installs on itself just before exec, on top of the container's profile.
    user_filter: bytes = b""
    network: NetworkConfig | None = None
    #: Exit (ending the container) after this long with no message from the host and no run going;
    #: 0: never. Sessions that outlive their host process (the CLI's) end this way.
    idle_timeout_s: float = 0.0
    #: The container shares the host's network namespace (network "host"), so its socket tables are the
    #: host's: a reset cannot judge its sockets by them.
    shared_network: bool = False
    #: Python modules a fork server imports once (None: no fork server). With a list, even an empty one,
    #: the prestarted interpreters are forks of a pristine interpreter that imported them and never runs
    #: user code (see agent/zygote.py), rather than fresh interpreters: a run skips the interpreter's
    #: start and those imports. What a program can observe of it is in docs/performance.md.
    preload: list[str] | None = None


class PutFile(_Message, tag="put"):
    """Write (a chunk of) a file under /sandbox as the sandbox user.

    The first chunk of a file has ``offset == 0`` and truncates it; ``last`` marks the final chunk. When
    ``ack`` is set the agent answers the last chunk with :class:`Done` (or :class:`Failed`); otherwise a
    failure is remembered and reported as the :class:`Failed` answer of the :class:`Run` with this ``id``.
    """

    id: int
    path: str
    data: bytes
    offset: int = 0
    last: bool = True
    mode: int = 0o644
    ack: bool = False


class Run(_Message, tag="run"):
    """Start one process as the sandbox user and supervise it to its end."""

    id: int
    argv: list[str]
    env: dict[str, str]
    cwd: str = "/sandbox"
    #: The program text, written to ``code_path`` (or handed to the matching prestarted process).
    code: bytes | None = None
    code_path: str | None = None
    #: Whole stdin; the pipe is closed after it. With ``stdin_open`` the pipe stays open for
    #: :class:`Stdin` messages instead.
    stdin: bytes = b""
    stdin_open: bool = False
    timeout_ms: int = 30_000
    #: Bytes of stdout and of stderr forwarded; the rest is read and dropped, and the run is flagged
    #: truncated.
    max_output: int = 1024 * 1024
    #: Files read back after the process ends, sent as :class:`FileData` before :class:`Exit`.
    output_paths: list[str] = []
    #: The most bytes all output files together may send back (a sparse or growing file is cut off here
    #: and reported in ``file_errors``, never sent in part).
    max_file_bytes: int = 512 * 1024 * 1024
    #: Run in the container's persistent interpreter for this runtime instead of a new process.
    session: str | None = None
    #: Filtered networking only: this run's own policy instead of the container's (None: the container's).
    network_policy: NetworkPolicy | None = None
    #: Filtered networking only: report the proxy's log lines for this run in its Exit.
    log_network: bool = False


class Stdin(_Message, tag="stdin"):
    id: int
    data: bytes = b""
    eof: bool = False


class Signal(_Message, tag="signal"):
    """Deliver a signal to the run's whole process group."""

    id: int
    signum: int


class GetFile(_Message, tag="get"):
    """Read a file under /sandbox as the sandbox user; answered with FileData chunks then Done."""

    id: int
    path: str
    max_bytes: int = 512 * 1024 * 1024


class Reset(_Message, tag="reset"):
    """Kill every sandbox-user task, empty /sandbox, /tmp, /dev/shm and /dev/mqueue and put their own
    metadata back, remove SysV IPC, close the proxy's connections, then judge the result against the
    container's never-used state (see agent/reset.py) and re-arm the prestarted processes; answered with
    Done (whose ``detail`` reports what was removed) and then a new Ready naming what was verified.

    The fast pool sends it once it has a run's Exit in hand, rather than the agent resetting on its own
    right after sending Exit: a reset forks and starts the next interpreter, and on a 2-core machine that
    competed with the daemon for the CPU while it was still forwarding the Exit."""

    id: int


class Ping(_Message, tag="ping"):
    """Answered with Done: a host that re-attaches to a running agent sends it, then skips whatever
    arrives before that Done."""

    id: int


class Shutdown(_Message, tag="shutdown"):
    """Kill everything and exit the agent (and so the container)."""


# --------------------------------------------------------------------------------------------------
# agent -> host


class Ready(_Message, tag="ready"):
    """The agent is ready for a run: it has started (``reason`` "start"), applied a Configure
    ("configured"), or finished a reset ("reset", generation n + 1, holding no user state).

    After "configured" and "reset" it comes only once the prestarted interpreters are waiting for their
    program (or could not start), so a run given to this container does not wait for one to start."""

    version: int
    generation: int = 0
    pid: int = 0
    reason: Literal["start", "configured", "reset"] = "start"
    #: Names of what the reset verified: "processes" (no sandbox-user task is alive), "tasks" (the pids
    #: cgroup holds only the agent's and the proxy's tasks), "files" (the emptied directories are empty
    #: and have their first owner, mode and extended attributes), "ipc", "state" (no unix, UDP, raw or
    #: netlink socket is left that the agent or the proxy does not hold: nothing in flight either) and, with filtered networking, "network".
    verified: list[str] = []


class Output(_Message, tag="out"):
    id: int
    fd: int  # 1 = stdout, 2 = stderr
    data: bytes


class FileData(_Message, tag="file"):
    id: int
    path: str
    data: bytes
    last: bool = True


class Usage(msgspec.Struct, frozen=True, omit_defaults=True):
    cpu_user_ms: float = 0.0
    cpu_system_ms: float = 0.0
    peak_memory_kb: int = 0
    net_rx_bytes: int = 0
    net_tx_bytes: int = 0


class Exit(_Message, tag="exit"):
    id: int
    exit_code: int
    #: The signal that ended the process, if one did.
    signal: int = 0
    timed_out: bool = False
    oom_killed: bool = False
    truncated_stdout: bool = False
    truncated_stderr: bool = False
    #: From the process's start to its end.
    duration_ms: float = 0.0
    #: From the Run's arrival to the process's start (spawn, or handing the program to a prestarted one).
    start_ms: float = 0.0
    usage: Usage = Usage()
    #: Output paths that could not be read, with the reason.
    file_errors: dict[str, str] = {}
    #: The proxy's JSON log lines for this run, when it asked for them.
    network_log: list[bytes] = []


class Done(_Message, tag="done"):
    id: int
    detail: dict[str, int] = {}


class Failed(_Message, tag="failed"):
    """An operation could not be carried out; ``message`` is meant for the user."""

    id: int
    message: str
    #: A machine-readable reason: "bad_path", "not_found", "too_large", "spawn", "busy", "internal".
    kind: str = "internal"


class Log(_Message, tag="log"):
    """A line of the agent's own diagnostics (shown with debug on)."""

    level: Literal["debug", "info", "warning", "error"]
    message: str


HostMessage = Union[Configure, PutFile, Run, Stdin, Signal, GetFile, Reset, Ping, Shutdown]
AgentMessage = Union[Ready, Output, FileData, Exit, Done, Failed, Log]


class ProtocolError(Exception):
    """The byte stream does not hold valid frames (too large, or an undecodable message)."""


class FrameDecoder:
    """Rebuilds messages from a byte stream split and merged at arbitrary points.

    ``feed`` takes whatever bytes arrived and returns the messages they complete, in order.
    """

    __slots__ = ("_buffer", "_decoder", "_need")

    def __init__(self, message_type: object) -> None:
        self._buffer = bytearray()
        self._decoder = msgspec.msgpack.Decoder(message_type)
        self._need = -1  # payload length of the frame being assembled; -1 while reading a header

    def feed(self, data: bytes | bytearray | memoryview) -> list:
        buffer = self._buffer
        buffer += data
        messages = []
        while True:
            if self._need < 0:
                if len(buffer) < 4:
                    return messages
                (self._need,) = _HEADER.unpack_from(buffer)
                del buffer[:4]
                if self._need > MAX_FRAME:
                    raise ProtocolError(f"frame of {self._need} bytes exceeds the {MAX_FRAME}-byte limit")
            if len(buffer) < self._need:
                return messages
            payload = bytes(buffer[: self._need])
            del buffer[: self._need]
            self._need = -1
            try:
                messages.append(self._decoder.decode(payload))
            except msgspec.DecodeError as exc:
                raise ProtocolError(f"undecodable message: {exc}") from None

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet complete a frame."""
        return len(self._buffer)


class FrameEncoder:
    """Encodes messages into frames; one instance per sender so its buffer is reused."""

    __slots__ = ("_encoder",)

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()

    def encode(self, message: msgspec.Struct) -> bytes:
        payload = self._encoder.encode(message)
        if len(payload) > MAX_FRAME:
            raise ProtocolError(f"message of {len(payload)} bytes exceeds the {MAX_FRAME}-byte limit")
        return _HEADER.pack(len(payload)) + payload

    def encode_many(self, messages: list) -> bytes:
        return b"".join(self.encode(message) for message in messages)


def host_decoder() -> FrameDecoder:
    """A decoder for what the agent sends."""
    return FrameDecoder(AgentMessage)


def agent_decoder() -> FrameDecoder:
    """A decoder for what the host sends."""
    return FrameDecoder(HostMessage)


def chunks(data: bytes, size: int = CHUNK_SIZE):
    """Split ``data`` into (offset, chunk, last) triples; empty data is one empty last chunk."""
    if not data:
        yield 0, b"", True
        return
    view = memoryview(data)
    for offset in range(0, len(data), size):
        yield offset, bytes(view[offset : offset + size]), offset + size >= len(data)
