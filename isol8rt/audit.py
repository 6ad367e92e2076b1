"""The audit log: one JSON line per execution, in a file per day, old files deleted after the retention.

A line says what ran and what came of it (id, time, runtime, the code's sha256, exit code, duration,
resource usage, network and security events, the caller's metadata) and who asked for it: the API key
and tenant, as the server authenticated them (:data:`CALLER`), never as a client claims in its
``metadata``. The code itself and its output are recorded only when the configuration asks for them.
Lines are written by one task of the engine, never on the caller's path.
"""

from __future__ import annotations

import contextvars
import datetime
import hashlib
import os
from pathlib import Path

import msgspec

from .types import AuditConfig, ExecutionRequest, ExecutionResult, ResourceUsage

_FILE_PREFIX = "audit-"
_FILE_SUFFIX = ".jsonl"


class NetworkEvents(msgspec.Struct, rename="camel", omit_defaults=True):
    allowed: int = 0
    blocked: int = 0
    blocked_hosts: list[str] = []


class SecurityEvents(msgspec.Struct, rename="camel", omit_defaults=True):
    timed_out: bool = False
    oom_killed: bool = False
    output_truncated: bool = False


class AuditRecord(msgspec.Struct, rename="camel", omit_defaults=True):
    execution_id: str
    timestamp: str
    runtime: str
    code_sha256: str
    exit_code: int
    duration_ms: float
    engine_id: str
    #: The API key ("master" for the master key) and tenant the server authenticated; absent in library use.
    key_id: str | None = None
    tenant_id: str | None = None
    session_id: str | None = None
    container_id: str | None = None
    resource_usage: ResourceUsage | None = None
    network: NetworkEvents | None = None
    security: SecurityEvents = msgspec.field(default_factory=SecurityEvents)
    metadata: dict[str, str] = {}
    code: str | None = None
    stdout: str | None = None
    stderr: str | None = None


_ENCODER = msgspec.json.Encoder()


class Caller(msgspec.Struct, frozen=True):
    """Who a run is for, as whoever authenticated the request knows it (the server, per request)."""

    key_id: str
    tenant_id: str | None = None


#: The caller of the runs made in this task. The server sets it once it has authenticated a request; the
#: engine reads it when a run ends (in the caller's task, so concurrent requests never see each other's).
CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("isol8rt_audit_caller", default=None)


def current_caller() -> Caller | None:
    return CALLER.get()


def record_for(request: ExecutionRequest, result: ExecutionResult, config: AuditConfig, *, engine_id: str,
               session_id: str | None, caller: Caller | None = None) -> AuditRecord:
    program = request.code if request.code is not None else (request.cmd or "")
    network = None
    if result.network_logs is not None:
        blocked = [entry for entry in result.network_logs if entry.action == "BLOCK"]
        network = NetworkEvents(allowed=len(result.network_logs) - len(blocked), blocked=len(blocked),
                                blocked_hosts=sorted({entry.host for entry in blocked}))
    return AuditRecord(
        execution_id=result.execution_id,
        timestamp=result.timestamp,
        runtime=result.runtime,
        code_sha256=hashlib.sha256(program.encode()).hexdigest(),
        exit_code=result.exit_code,
        duration_ms=result.duration_ms,
        engine_id=engine_id,
        key_id=caller.key_id if caller is not None else None,
        tenant_id=caller.tenant_id if caller is not None else None,
        session_id=session_id,
        container_id=result.container_id,
        resource_usage=result.resource_usage,
        network=network,
        security=SecurityEvents(timed_out=result.timed_out, oom_killed=result.oom_killed,
                                output_truncated=result.truncated),
        metadata=dict(request.metadata),
        code=program if config.include_code else None,
        stdout=result.stdout if config.include_output else None,
        stderr=result.stderr if config.include_output else None,
    )


class AuditLog:
    """Appends records to ``<destination>/audit-YYYY-MM-DD.jsonl`` (UTC days)."""

    def __init__(self, config: AuditConfig) -> None:
        self.config = config
        self.directory = Path(os.path.expanduser(config.destination or "~/.isol8rt/audit"))
        self._pruned_day: str | None = None

    def write(self, record: AuditRecord) -> None:
        day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        if day != self._pruned_day:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.prune()
            self._pruned_day = day
        line = _ENCODER.encode(record) + b"\n"
        # One write with O_APPEND: lines from concurrent writers (several engines) never interleave.
        fd = os.open(self.directory / f"{_FILE_PREFIX}{day}{_FILE_SUFFIX}",
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def prune(self, today: datetime.date | None = None) -> list[Path]:
        """Delete day files older than the retention period; returns what went."""
        today = today or datetime.datetime.now(datetime.timezone.utc).date()
        oldest = today - datetime.timedelta(days=self.config.retention_days)
        removed = []
        for path in self.directory.glob(f"{_FILE_PREFIX}*{_FILE_SUFFIX}"):
            stamp = path.name[len(_FILE_PREFIX):-len(_FILE_SUFFIX)]
            try:
                day = datetime.date.fromisoformat(stamp)
            except ValueError:
                continue
            if day < oldest:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed
