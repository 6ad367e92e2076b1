"""What an operator can set on the server (``isol8rt serve``'s flags), with the defaults that hold when
nothing is set; and :data:`BUDGETS`, the list of every resource budget, which docs/server.md shows (a
test checks the page against it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..types import Isol8Options
from ..wire.api import DEFAULT_TENANT
from .app import DEFAULT_KEY_TTL_MS
from .keys_pg import DEFAULT_MAX_STALE_S, DEFAULT_REFRESH_S
from .limits import DEFAULT_QUEUE_DEPTH, DEFAULT_QUEUE_WAIT_S
from .orphans import default_state_dir

#: The output-file budget of a server whose options name none (the library's default is the sandbox's
#: size; a server facing callers it does not trust keeps it small).
DEFAULT_MAX_FILE_BYTES = 32 * 1024 * 1024


@dataclass
class ServerConfig:
    """Everything ``isol8rt serve`` can set. ``options`` is the ceiling every client runs under."""

    host: str = "127.0.0.1"
    port: int = 3000
    api_key: str | None = None
    #: No authentication at all: every caller is the master. For a trusted loopback only.
    open_access: bool = False
    options: Isol8Options = field(default_factory=Isol8Options)
    #: Where the API keys the master key hands out are kept: a SQLite file, or a ``postgresql://`` URL
    #: that several nodes share (docs/scaling.md); None disables key management.
    keys_db: Path | str | None = None
    #: How often a node reads a shared (PostgreSQL) key store's live keys.
    keys_refresh_s: float = DEFAULT_REFRESH_S
    #: How long a node trusts what it last read of a shared key store: a key revoked on one node is
    #: refused on every node within this long; a node that cannot read the store for longer refuses
    #: issued keys (503) until it can.
    keys_max_stale_s: float = DEFAULT_MAX_STALE_S
    #: The lifetime of a key made without a ``ttlMs`` (the reference's 24 hours; 0: forever).
    key_ttl_ms: int = DEFAULT_KEY_TTL_MS
    #: The tenant of a key made without a ``tenantId`` (the reference's "default"; its keys share their
    #: sessions). None: such a key stands alone, its sessions its own.
    default_tenant: str | None = DEFAULT_TENANT
    #: Where instance files live (orphan detection), and this node's id if none is given.
    state_dir: Path = field(default_factory=default_state_dir)
    #: The node's id, on every container it makes (None: ``$ISOL8RT_NODE_ID``, else the one kept in
    #: ``state_dir``; see :mod:`isol8rt.node`).
    node_id: str | None = None
    prewarm: list[str] = field(default_factory=lambda: ["python"])
    max_body: int = 32 * 1024 * 1024
    rate_limit: float = 0.0
    #: Requests in flight per key (their bodies read, running or waiting for a run slot); more wait in
    #: the key's queue (0: no limit).
    key_concurrency: int = 16
    #: Requests one key may have waiting for a turn beyond ``key_concurrency``; past it, 429.
    queue_depth: int = DEFAULT_QUEUE_DEPTH
    #: The longest a request waits for its turn (in the queue, then for a run slot); then 429 (0: no
    #: bound, as the reference).
    queue_wait_s: float = DEFAULT_QUEUE_WAIT_S
    #: Runs one key may have executing at once; more wait (None: three quarters of ``max_concurrent``,
    #: all of it without authentication, where every caller is the same "key").
    key_runs: int | None = None
    session_ttl_s: float = 1800.0
    max_sessions_per_key: int = 16
    #: The memory limits of one key's sessions' containers, added up (bytes; 0: no limit).
    session_memory_per_key: int = 4 * 1024 ** 3
    max_sessions: int = 128
    max_engines: int = 8
    #: Tightened engines (option sets) one key may hold at once, by runs or sessions.
    max_engines_per_key: int = 2
    engine_idle_s: float = 300.0
    max_connections: int = 1024
    max_connections_per_address: int = 64
    drain_s: float = 10.0
    keepalive_s: float = 75.0
    #: From a request's first byte to the end of its head.
    header_timeout_s: float = 10.0
    #: From a request's admission to the end of its body.
    body_timeout_s: float = 60.0
    #: How long a send may make no progress (a client that stops reading) before the client is dropped
    #: and its run ended.
    send_timeout_s: float = 30.0
    #: How long a WebSocket may stay open without sending its execute message.
    ws_idle_s: float = 30.0
    #: Origins (``https://app.example``) whose pages may call the API; ``*`` for any.
    allowed_origins: list[str] = field(default_factory=list)
    #: Host names the server answers to besides IP literals and localhost; ``*`` for any. None: any with
    #: authentication, only those without it (against DNS rebinding).
    allowed_hosts: list[str] | None = None
    handle_signals: bool = False
    #: Serve on this Unix socket instead of ``host``/``port`` (the local engine: see :mod:`.unix`).
    socket_path: Path | None = None
    #: Run every request with exactly the options it sends, or refuse it (403): never with the server's
    #: value of a field the client wrote. The local engine's rule, so its CLI can fall back to a cold run.
    exact_options: bool = False
    #: Stop once no connection, run or session has been seen for this long (0: never); for an engine
    #: started in the background.
    idle_exit_s: float = 0.0


@dataclass(frozen=True)
class Budget:
    """One resource budget: what it bounds, where it is set (a dotted path from :class:`ServerConfig`),
    the ``serve`` flag that sets it, and the unit its value is in."""

    resource: str
    setting: str
    flag: str
    unit: str  # "bytes", "s", "ms", "count", "per s"

    def value(self, config: ServerConfig) -> object:
        if self.setting == "key_runs":
            return key_runs(config)
        value: object = config
        for part in self.setting.split("."):
            value = getattr(value, part)
        return value

    def describe(self, config: ServerConfig) -> str:
        """The value in force under ``config``, for people."""
        value = self.value(config)
        if not value and self.unit != "s":
            return "no limit"
        if self.unit == "bytes":
            assert isinstance(value, int)
            for size, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
                if value >= size and value % size == 0:
                    return f"{value // size} {name}"
            return f"{value} bytes"
        if self.unit == "s":
            return f"{value:g} s"
        if self.unit == "ms":
            return f"{value} ms"
        if self.setting == "key_runs" and config.key_runs is None:
            return f"{value} (3/4 of --max-concurrent; all of it with --no-auth)"
        return f"{value}{' per s' if self.unit == 'per s' else ''}"


#: Every budget the server keeps; docs/server.md has :func:`budgets_table` of ``isol8rt serve``'s defaults.
BUDGETS: tuple[Budget, ...] = (
    Budget("output files of a run (outputPaths, all together, by apparent size); a file through GET or POST /file",
           "options.max_file_bytes", "--max-file-bytes", "bytes"),
    Budget("stdout, and stderr, of a run", "options.max_output_size", "--max-output", "bytes"),
    Budget("request body", "max_body", "--max-body", "bytes"),
    Budget("runs and file transfers at once, each until its answer is sent", "options.max_concurrent",
           "--max-concurrent", "count"),
    Budget("runs one key has executing at once (more wait their turn)", "key_runs", "--key-runs", "count"),
    Budget("requests one key has in flight, bodies read (more wait in the key's queue)", "key_concurrency",
           "--key-concurrency", "count"),
    Budget("requests one key has waiting in its queue, bodies unread (more: 429)", "queue_depth",
           "--queue-depth", "count"),
    Budget("a request's wait for its turn, in the queue and for a run slot (then 429)", "queue_wait_s",
           "--queue-wait", "s"),
    Budget("requests per key", "rate_limit", "--rate-limit", "per s"),
    Budget("connections (more: 429, closed)", "max_connections", "--max-connections", "count"),
    Budget("connections from one client address (more: 429, closed)", "max_connections_per_address",
           "--max-connections-per-address", "count"),
    Budget("a request's head, from its first byte (then 408)", "header_timeout_s", "--header-timeout", "s"),
    Budget("a request's body, once its key is checked and its turn has come (then 408)", "body_timeout_s", "--body-timeout", "s"),
    Budget("an idle keep-alive connection", "keepalive_s", "--keepalive", "s"),
    Budget("a send that makes no progress: SSE, WebSocket or any answer (the run is ended)", "send_timeout_s",
           "--send-timeout", "s"),
    Budget("a WebSocket without its execute message", "ws_idle_s", "--ws-idle", "s"),
    Budget("a run, installs and setup included", "options.timeout_ms", "--timeout", "ms"),
    Budget("sessions of one key (a tenant's keys together)", "max_sessions_per_key", "--max-sessions-per-key",
           "count"),
    Budget("memory of one key's sessions (their memory limits added up)", "session_memory_per_key",
           "--session-memory-per-key", "bytes"),
    Budget("sessions on the server", "max_sessions", "--max-sessions", "count"),
    Budget("an idle session", "session_ttl_s", "--session-ttl", "s"),
    Budget("option sets (engines) besides the server's own", "max_engines", "--max-engines", "count"),
    Budget("option sets one key holds at once, by runs or sessions", "max_engines_per_key",
           "--max-engines-per-key", "count"),
)


def budgets_table(config: ServerConfig) -> str:
    """The budgets in force under ``config`` as docs/server.md shows them (for ``isol8rt serve``'s
    defaults; a test checks the page has exactly this)."""
    lines = ["| budget | default | flag |", "|---|---|---|"]
    lines += [f"| {b.resource} | {b.describe(config)} | `{b.flag}` |" for b in BUDGETS]
    return "\n".join(lines) + "\n"


def key_runs(config: ServerConfig) -> int:
    """The runs one key may have executing at once, as configured or by default."""
    total = max(1, config.options.max_concurrent)
    if config.key_runs is not None:
        return max(1, min(config.key_runs, total))
    if config.open_access:
        return total
    return max(1, total * 3 // 4)
