"""``--compare old.json``: what got slower (or faster) since an earlier run. No I/O.

A latency regression is a p50 that grew by more than ``rel`` (20 %) AND by more than ``abs_ms`` (0.5 ms),
so that sub-millisecond jitter on fast paths and small relative noise on slow ones are not flagged. Phase
p50s are compared the same way. A throughput regression is a rate that fell by more than ``rel``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REL = 0.20
ABS_MS = 0.5


@dataclass(frozen=True)
class Change:
    kind: str  # "regression" | "improvement"
    key: str  # result id, "id:phase" for a phase, "id throughput" for a rate
    metric: str  # "p50" | "throughput"
    old: float
    new: float

    @property
    def relative(self) -> float:
        return (self.new - self.old) / self.old if self.old else float("inf")

    def line(self) -> str:
        unit = "/s" if self.metric == "throughput" else " ms"
        word = "REGRESSION " if self.kind == "regression" else "improvement"
        return f"{word} {self.key} {self.metric} {self.old:.2f}{unit} -> {self.new:.2f}{unit} ({self.relative:+.0%})"


def _latency_change(key: str, old: float | None, new: float | None, rel: float, abs_ms: float) -> Change | None:
    if old is None or new is None:
        return None
    if new > old * (1 + rel) and new - old > abs_ms:
        return Change("regression", key, "p50", old, new)
    if new < old / (1 + rel) and old - new > abs_ms:
        return Change("improvement", key, "p50", old, new)
    return None


def compare(old: dict[str, Any], new: dict[str, Any], *, rel: float = REL, abs_ms: float = ABS_MS) -> list[Change]:
    """Changes from ``old`` to ``new`` (two result documents), regressions first."""
    before = {r["id"]: r for r in old["results"] if r["status"] == "ok"}
    changes: list[Change] = []
    for result in new["results"]:
        previous = before.get(result["id"])
        if previous is None or result["status"] != "ok":
            continue
        change = _latency_change(result["id"], previous["latency"].get("p50"), result["latency"].get("p50"),
                                 rel, abs_ms)
        if change:
            changes.append(change)
        for phase, summary in result["phases"].items():
            old_summary = previous["phases"].get(phase)
            if old_summary:
                change = _latency_change(f"{result['id']}:{phase}", old_summary.get("p50"), summary.get("p50"),
                                         rel, abs_ms)
                if change:
                    changes.append(change)
        old_rate, new_rate = previous.get("throughput"), result.get("throughput")
        if old_rate and new_rate is not None:
            if new_rate < old_rate * (1 - rel):
                changes.append(Change("regression", result["id"], "throughput", old_rate, new_rate))
            elif new_rate > old_rate * (1 + rel):
                changes.append(Change("improvement", result["id"], "throughput", old_rate, new_rate))
    changes.sort(key=lambda c: (c.kind != "regression", c.key))
    return changes


def machine_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Machine facts that differ between the two runs (their numbers may not be comparable)."""
    keys = ("cores", "memory_bytes", "kernel", "docker_version", "python", "cpu_model")
    return [f"{key}: {old['machine'].get(key)!r} -> {new['machine'].get(key)!r}"
            for key in keys if old["machine"].get(key) != new["machine"].get(key)]
