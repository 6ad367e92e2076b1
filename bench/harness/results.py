"""A benchmark's measurements and the JSON document they end up in. No I/O.

Each :class:`Result` is one row of the report: latency samples in milliseconds (warm-up runs already left
out), optional per-phase samples, an optional throughput, and a status. :func:`build_document` turns the
results, the machine and the settings into the JSON document ``--json`` writes (schema
``isol8rt-bench/1``, checked by :func:`validate_document`), with the ratios and targets computed from it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from .stats import summarize

SCHEMA = "isol8rt-bench/1"

#: A result's status: measured, impossible here (e.g. no server), left out by the settings, or broken.
STATUSES = ("ok", "not available", "skipped", "failed")

#: The order phases of a cold run happen in; their sum is the run's latency (execute() to its return).
COLD_PHASES = ("prepare", "create", "attach", "start", "ready", "configure", "inject", "process", "collect",
               "release", "finish")
#: Costs of a fresh engine outside execute(): measured on the side, not part of its latency.
COLD_SIDE = ("engine_start", "remove", "engine_stop")
#: The order phases of a warm run happen in; their sum is the run's latency.
WARM_PHASES = ("prepare", "acquire", "inject", "process", "collect", "release", "finish")


@dataclass
class Result:
    id: str
    group: str
    label: str
    params: dict[str, Any] = field(default_factory=dict)
    samples: list[float] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=dict)
    phase_order: list[str] = field(default_factory=list)
    throughput: float | None = None
    wall_s: float = 0.0
    errors: int = 0
    status: str = "ok"
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def fail(self, problem: str | BaseException) -> None:
        """Count a run that failed (its time is not kept) and remember the latest reason."""
        if isinstance(problem, BaseException):
            problem = f"{type(problem).__name__}: {problem}"
        self.errors += 1
        self.note = problem[:200]

    def record(self, problem: str | None, latency_ms: float, phases: dict[str, float] | None = None, *,
               keep: bool = True) -> bool:
        """Add one run: a failure when ``problem`` says what went wrong, else its latency and phases (not
        for a warm-up run, ``keep=False``). True when the run was good."""
        if problem:
            self.fail(problem)
            return False
        if keep:
            self.samples.append(latency_ms)
            self.add_phases(phases)
        return True

    def add_phases(self, phases: dict[str, float] | None) -> None:
        if not phases:
            return
        for name, value in phases.items():
            self.phases.setdefault(name, []).append(value)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "group": self.group,
            "label": self.label,
            "status": self.status,
            "note": self.note,
            "params": self.params,
            "latency": summarize(self.samples),
            "phases": {name: summarize(values) for name, values in self.phases.items()},
            "phase_order": list(self.phase_order),
            "throughput": None if self.throughput is None else round(self.throughput, 2),
            "wall_s": round(self.wall_s, 3),
            "errors": self.errors,
            "extra": self.extra,
            "samples": [round(value, 3) for value in self.samples],
        }


def unavailable(id: str, group: str, label: str, reason: str, *, status: str = "not available") -> Result:
    return Result(id=id, group=group, label=label, status=status, note=reason)


def build_document(results: list[Result], *, machine: dict[str, Any], settings: dict[str, Any], command: str,
                   wall_s: float, created: datetime.datetime | None = None) -> dict[str, Any]:
    """The JSON document of a benchmark run, ratios and targets included."""
    from .targets import evaluate_targets, ratios

    created = created or datetime.datetime.now(datetime.timezone.utc)
    document = {
        "schema": SCHEMA,
        "created": created.isoformat(timespec="seconds"),
        "command": command,
        "machine": machine,
        "settings": settings,
        "wall_s": round(wall_s, 2),
        "results": [result.to_json() for result in results],
    }
    document["ratios"] = ratios(document)
    document["targets"] = evaluate_targets(document)
    return document


class SchemaError(ValueError):
    """A document that is not an ``isol8rt-bench/1`` result."""


_SUMMARY_KEYS = ("n", "min", "p50", "p90", "p95", "p99", "max", "mean")
_RESULT_KEYS = {"id": str, "group": str, "label": str, "status": str, "note": str, "params": dict,
                "latency": dict, "phases": dict, "phase_order": list, "wall_s": (int, float), "errors": int,
                "extra": dict, "samples": list}
_TOP_KEYS = {"schema": str, "created": str, "command": str, "machine": dict, "settings": dict,
             "wall_s": (int, float), "results": list, "ratios": list, "targets": list}
_MACHINE_KEYS = ("cores", "memory_bytes", "kernel", "docker_version", "python", "isol8rt", "git_commit")


def validate_document(document: Any) -> dict[str, Any]:
    """``document`` if it has the shape of an ``isol8rt-bench/1`` result, else :class:`SchemaError`."""
    if not isinstance(document, dict):
        raise SchemaError("a benchmark result is a JSON object")
    if document.get("schema") != SCHEMA:
        raise SchemaError(f"schema is {document.get('schema')!r}, expected {SCHEMA!r}")
    _check_keys("document", document, _TOP_KEYS)
    for key in _MACHINE_KEYS:
        if key not in document["machine"]:
            raise SchemaError(f"machine: missing {key!r}")
    seen = set()
    for index, result in enumerate(document["results"]):
        where = f"results[{index}]"
        if not isinstance(result, dict):
            raise SchemaError(f"{where}: not an object")
        _check_keys(where, result, _RESULT_KEYS)
        if result["id"] in seen:
            raise SchemaError(f"{where}: id {result['id']!r} appears twice")
        seen.add(result["id"])
        if result["status"] not in STATUSES:
            raise SchemaError(f"{where}: status {result['status']!r} is not one of {STATUSES}")
        if result.get("throughput") is not None and not isinstance(result["throughput"], (int, float)):
            raise SchemaError(f"{where}: throughput must be a number or null")
        _check_summary(f"{where}.latency", result["latency"])
        for name, summary in result["phases"].items():
            _check_summary(f"{where}.phases.{name}", summary)
        if result["latency"]["n"] != len(result["samples"]):
            raise SchemaError(f"{where}: latency.n is {result['latency']['n']} but there are "
                              f"{len(result['samples'])} samples")
    for index, target in enumerate(document["targets"]):
        if not isinstance(target, dict) or target.get("status") not in ("PASS", "FAIL", "N/A"):
            raise SchemaError(f"targets[{index}]: needs a status of PASS, FAIL or N/A")
    return document


def _check_keys(where: str, obj: dict, spec: dict) -> None:
    for key, kind in spec.items():
        if key not in obj:
            raise SchemaError(f"{where}: missing {key!r}")
        if not isinstance(obj[key], kind) or isinstance(obj[key], bool) and kind is not bool:
            raise SchemaError(f"{where}.{key}: wrong type {type(obj[key]).__name__}")


def _check_summary(where: str, summary: Any) -> None:
    if not isinstance(summary, dict) or not isinstance(summary.get("n"), int):
        raise SchemaError(f"{where}: a summary needs an integer n")
    if summary["n"] == 0:
        return
    for key in _SUMMARY_KEYS:
        if not isinstance(summary.get(key), (int, float)):
            raise SchemaError(f"{where}: missing {key!r}")
    if not summary["min"] <= summary["p50"] <= summary["p90"] <= summary["p99"] <= summary["max"]:
        raise SchemaError(f"{where}: min <= p50 <= p90 <= p99 <= max does not hold")
