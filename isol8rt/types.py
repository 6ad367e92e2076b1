"""The wire types: requests, results, stream events and engine options, shared by the library, the HTTP
server and the CLI. snake_case in Python, camelCase on the wire (the reference system's JSON shapes).

These are msgspec Structs: construction does not validate, decoding does. The engine validates what it
is handed (see :func:`isol8rt.engine.validation`), so a request built in Python gets the same clear errors
as one decoded from JSON.
"""

from __future__ import annotations

import base64
from typing import Literal, Union

import msgspec

from .runtimes import Runtime

NetworkMode = Literal["none", "host", "filtered"]
Mode = Literal["ephemeral", "persistent"]
PoolStrategy = Literal["fast", "secure"]
SeccompMode = Literal["strict", "unconfined", "custom"]
#: ``image`` and ``display`` are rich outputs (a figure, a last expression's value), sent before ``exit``.
StreamEventType = Literal["stdout", "stderr", "exit", "error", "image", "display"]
Phase = Literal["setup", "code"]


class _Wire(msgspec.Struct, rename="camel", omit_defaults=True, forbid_unknown_fields=False):
    pass


# msgspec allows a frozen Struct on a non-frozen base; mypy applies the dataclass rule that forbids it.
class FileBlob(_Wire, frozen=True):  # type: ignore[misc]
    """Binary file content in JSON: ``{"base64": "..."}``, or Node's ``Buffer.toJSON()`` shape
    ``{"type": "Buffer", "data": [bytes]}`` that the reference system's clients send."""

    base64: str | None = None
    type: str | None = None
    data: list[int] | None = None

    def to_bytes(self) -> bytes:
        if self.base64 is not None:
            return base64.b64decode(self.base64, validate=True)
        if self.data is not None:
            return bytes(self.data)
        raise ValueError("file content object needs 'base64' or 'data'")


#: A file's content: text (written as UTF-8), bytes (from Python), or a FileBlob (from JSON).
FileContent = Union[str, FileBlob]


def file_bytes(content: str | bytes | bytearray | FileBlob) -> bytes:
    if isinstance(content, str):
        return content.encode()
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    if isinstance(content, FileBlob):
        return content.to_bytes()
    raise TypeError(f"file content must be str, bytes or a FileBlob, not {type(content).__name__}")


class NetworkFilter(_Wire):
    """Filtered networking's policy. Hostname regexes (``re.search``, case-insensitive, on the host name
    without port): deny wins; an empty whitelist allows every host. Destinations that resolve to
    loopback, private, link-local (cloud metadata), CGNAT or ULA addresses are refused unless their
    network is in ``allow_private`` (CIDRs). ``connect_ports`` are the ports HTTPS tunnels may reach
    (default 443 and 80)."""

    whitelist: list[str] = []
    blacklist: list[str] = []
    allow_private: list[str] = []
    connect_ports: list[int] = []


class SecurityConfig(_Wire):
    seccomp: SeccompMode = "strict"
    #: The profile file for ``seccomp: "custom"``.
    profile_path: str | None = None
    #: An OCI runtime Docker knows (e.g. ``runsc`` for gVisor), for a kernel boundary on top of the rest.
    oci_runtime: str | None = None


class AuditConfig(_Wire):
    enabled: bool = False
    destination: str | None = None
    include_code: bool = False
    include_output: bool = False
    retention_days: int = 30


class RemoteCodeConfig(_Wire, forbid_unknown_fields=True):
    """Fetching a program from a URL (a request's codeUrl; the CLI's --url, --github, --gist). Off unless
    enabled; https only unless http is allowed here and the request allows an insecure URL; the host must
    pass the lists and resolve (also after every redirect) to public addresses only."""

    enabled: bool = False
    allowed_schemes: list[Literal["https", "http"]] = msgspec.field(default_factory=lambda: ["https"])
    #: Host name regexes; empty: any host that passes the blocked list and the address checks.
    allowed_hosts: list[str] = []
    blocked_hosts: list[str] = []
    #: Private networks allowed after all (CIDRs); for an internal code server, or tests.
    allow_private: list[str] = []
    max_code_size: int = 10 * 1024 * 1024
    fetch_timeout_ms: int = 30_000
    #: Refuse code fetched without a codeHash to check it against.
    require_hash: bool = False


class PoolSize(_Wire):
    clean: int = 1
    dirty: int = 1


class Isol8Options(_Wire):
    """Engine options, with the reference system's defaults."""

    mode: Mode = "ephemeral"
    network: NetworkMode = "none"
    network_filter: NetworkFilter | None = None
    cpu_limit: float = 1.0
    memory_limit: str = "512m"
    pids_limit: int = 64
    readonly_root_fs: bool = True
    max_output_size: int = 1024 * 1024
    secrets: dict[str, str] = {}
    timeout_ms: int = 30_000
    image: str | None = None
    sandbox_size: str = "512m"
    tmp_size: str = "256m"
    debug: bool = False
    persist: bool = False
    log_network: bool = False
    security: SecurityConfig = msgspec.field(default_factory=SecurityConfig)
    audit: AuditConfig | None = None
    pool_strategy: PoolStrategy = "fast"
    pool_size: int | PoolSize = 1
    max_concurrent: int = 10
    #: Extra ``/etc/hosts`` entries inside sandboxes: host name -> address.
    extra_hosts: dict[str, str] = {}
    #: Fetching programs from URLs; None: disabled.
    remote_code: RemoteCodeConfig | None = None
    #: The output-file budget: the most bytes a run's ``output_paths`` bring back, all together, counted by
    #: apparent size (a sparse file counts in full; a file over it is reported in ``file_errors``, never sent
    #: in part), and the largest file a session's ``get_file``/``put_file`` moves. None: the sandbox's size.
    max_file_bytes: int | None = None
    #: Python runs in pooled containers start as forks of a pristine interpreter that never runs user
    #: code, instead of as fresh interpreters: much less CPU per run (docs/performance.md says what a
    #: program can observe of it). An image whose ``isol8rt.preload`` label lists modules has its fork
    #: server import them, and turns this on by itself.
    fork_server: bool = False


class ExecutionRequest(_Wire):
    """One program to run. Exactly one of ``code`` and ``cmd``."""

    runtime: Runtime = "python"
    code: str | None = None
    #: A shell command line instead of a program (run with /bin/sh -c in the runtime's image).
    cmd: str | None = None
    code_url: str | None = None
    code_hash: str | None = None
    allow_insecure_code_url: bool = False
    timeout_ms: int | None = None
    env: dict[str, str] = {}
    file_extension: str | None = None
    stdin: str | None = None
    files: dict[str, FileContent] = {}
    output_paths: list[str] = []
    install_packages: list[str] = []
    setup_script: str | None = None
    metadata: dict[str, str] = {}
    #: Working directory; must resolve inside /sandbox.
    workdir: str | None = None
    #: Filtered networking only: this run's own policy instead of the engine's (no container restarts).
    network_filter: NetworkFilter | None = None
    #: A lower output cap for this run than the engine's (never a higher one).
    max_output_size: int | None = None
    #: Persistent Python and Node sessions: return the value of the cell's last expression statement as a
    #: ``displays`` entry, as a notebook shows it (off by default: a script shows only what it prints).
    display_last_expression: bool = False


class ResourceUsage(_Wire, omit_defaults=False):
    """What a run used. The reference system spells the memory fields ``memoryMB`` and always sends every
    field, zeros included; so does this."""

    cpu_percent: float = 0.0
    cpu_time_ms: float = 0.0
    memory_mb: float = msgspec.field(default=0.0, name="memoryMB")
    peak_memory_mb: float = msgspec.field(default=0.0, name="peakMemoryMB")
    network_bytes_in: int = 0
    network_bytes_out: int = 0


class NetworkLogEntry(_Wire):
    timestamp: str
    method: str
    host: str
    port: int
    action: Literal["ALLOW", "BLOCK"]
    path: str | None = None
    reason: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    duration_ms: float = 0.0


class DisplayData(_Wire):
    """A value a run displayed (a session cell's last expression): its text form (``repr`` in Python,
    ``util.inspect`` in Node) and, when the value has one (a pandas DataFrame), its HTML form."""

    text: str
    html: str | None = None


class ExecutionResult(_Wire):
    stdout: str
    stderr: str
    exit_code: int
    duration_ms: float
    truncated: bool
    execution_id: str
    runtime: Runtime
    timestamp: str
    truncated_stdout: bool = False
    truncated_stderr: bool = False
    timed_out: bool = False
    oom_killed: bool = False
    container_id: str | None = None
    #: Files read back from ``output_paths``: bytes in Python, base64 strings in JSON.
    files: dict[str, bytes] | None = None
    #: Output paths that could not be read back, with the reason.
    file_errors: dict[str, str] | None = None
    resource_usage: ResourceUsage | None = None
    network_logs: list[NetworkLogEntry] | None = None
    #: Figures the run drew (matplotlib, in the data image), in order: PNG bytes in Python, base64 in JSON.
    images: list[bytes] | None = None
    #: Values the run displayed (``display_last_expression``), in order.
    displays: list[DisplayData] | None = None


class StreamEvent(_Wire, frozen=True):  # type: ignore[misc]  # frozen on a non-frozen base: see FileBlob
    """One event of a streamed run. The ``exit`` event's ``data`` is the exit code as a string; an ``image``
    event's is the PNG in base64; a ``display`` event's is the value's text form, with its HTML form in
    ``html`` when it has one."""

    type: StreamEventType
    data: str
    phase: Phase | None = None
    html: str | None = None


class SessionInfo(_Wire):
    """A persistent session, as ``GET /sessions`` lists it."""

    id: str
    is_active: bool
    last_accessed_at: str
    runtime: Runtime | None = None
    container_id: str | None = None


JSON_ENCODER = msgspec.json.Encoder()
