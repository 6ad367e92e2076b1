"""The proxy's log lines, as a run's ``network_logs``."""

from __future__ import annotations

import msgspec

from ..types import NetworkLogEntry
from .output import mask


class _ProxyLine(msgspec.Struct, frozen=True):
    """A request line as the proxy writes it (snake_case; see proxy/isol8rt_proxy/exchange.py)."""

    timestamp: str
    action: str
    method: str | None = None
    host: str | None = None
    port: int | None = None
    path: str | None = None
    reason: str | None = None
    status: int | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    duration_ms: float = 0.0
    error: str | None = None


_DECODER = msgspec.json.Decoder(_ProxyLine)


def network_logs(lines: list[bytes], secrets: tuple[str, ...]) -> list[NetworkLogEntry]:
    """Decode the proxy's lines; a secret in a URL (an API key in a query string) is masked like output."""
    entries = []
    for line in lines:
        try:
            record = _DECODER.decode(line)
        except msgspec.DecodeError:
            continue
        entries.append(NetworkLogEntry(
            timestamp=record.timestamp,
            method=record.method or "",
            host=mask(record.host or "", secrets),
            port=record.port or 0,
            action="ALLOW" if record.action == "ALLOW" else "BLOCK",
            path=mask(record.path, secrets) if record.path is not None else None,
            reason=record.reason or record.error,
            bytes_in=record.bytes_in,
            bytes_out=record.bytes_out,
            duration_ms=record.duration_ms,
        ))
    return entries
