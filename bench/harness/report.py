"""The terminal report of a result document. No I/O: returns text."""

from __future__ import annotations

from typing import Any

from .compare import Change
from .targets import format_target


def machine_line(machine: dict[str, Any]) -> str:
    memory = machine.get("memory_bytes") or 0
    commit = (machine.get("git_commit") or "unknown")[:10] + (" +uncommitted" if machine.get("git_dirty") else "")
    load = machine.get("load_start")
    load_text = f", load {load[0]:.1f} at start / {machine['load_end'][0]:.1f} at end" if load and machine.get(
        "load_end") else ""
    return (f"{machine.get('cores')} cores ({machine.get('cpu_model') or 'cpu?'}), {memory / 2**30:.1f} GiB, "
            f"kernel {machine.get('kernel')}, docker {machine.get('docker_version')} "
            f"(API {machine.get('docker_api_version')}), Python {machine.get('python')}, "
            f"isol8rt {machine.get('isol8rt')}, git {commit}{load_text}")


def busy_warning(machine: dict[str, Any]) -> str | None:
    """A warning when the machine was busy (1-minute load above half its cores at start or end)."""
    cores = machine.get("cores") or 1
    loads = [load[0] for load in (machine.get("load_start"), machine.get("load_end")) if load]
    if loads and max(loads) > cores / 2:
        return (f"WARNING: the machine was busy (load {max(loads):.1f} on {cores} cores): these numbers are "
                "noisy; re-run on a quiet machine for a report")
    return None


def _fmt(value: Any, width: int, digits: int = 2) -> str:
    if value is None or value == "":
        return " " * (width - 1) + "-"
    if isinstance(value, float):
        return f"{value:{width}.{digits}f}"
    return f"{value:>{width}}"


def results_table(document: dict[str, Any]) -> list[str]:
    rows = document["results"]
    width = max([len(r["id"]) for r in rows] + [10])
    header = (f"{'result':<{width}} {'n':>5} {'min':>8} {'p50':>8} {'p90':>8} {'p95':>8} {'p99':>8} {'max':>8} "
              f"{'runs/s':>7}  note")
    lines = ["latency in ms (warm-up runs left out)", header, "-" * len(header)]
    for result in rows:
        lat = result["latency"]
        if result["status"] != "ok" or not lat.get("n"):
            note = result["status"] + (f": {result['note']}" if result["note"] else "")
            lines.append(f"{result['id']:<{width}} {_fmt(lat.get('n', 0), 5)} {'':>53} {'':>7}  {note}")
            continue
        note = result["note"]
        if result["errors"]:
            note = f"{result['errors']} errors; {note}".rstrip("; ")
        lines.append(
            f"{result['id']:<{width}} {lat['n']:>5} {_fmt(lat['min'], 8)} {_fmt(lat['p50'], 8)} "
            f"{_fmt(lat['p90'], 8)} {_fmt(lat['p95'], 8)} {_fmt(lat['p99'], 8)} {_fmt(lat['max'], 8)} "
            f"{_fmt(result['throughput'], 7, 1)}  {note}"
        )
    return lines


def phases_table(document: dict[str, Any]) -> list[str]:
    lines = []
    for result in document["results"]:
        if result["status"] != "ok" or not result["phases"]:
            continue
        order = result["phase_order"] or list(result["phases"])
        inline = [f"{name} {result['phases'][name]['p50']:.2f}" for name in order
                  if result["phases"].get(name, {}).get("n")]
        side = [f"{name} {summary['p50']:.2f}" for name, summary in result["phases"].items()
                if name not in order and summary.get("n")]
        text = " | ".join(inline) + (f"   (apart: {' | '.join(side)})" if side else "")
        lines.append(f"  {result['id']}: {text}")
    if lines:
        lines.insert(0, "phases, p50 ms each (in order; 'apart' = outside the run's latency)")
    return lines


def report_text(document: dict[str, Any], changes: list[Change] | None = None,
                machine_notes: list[str] | None = None) -> str:
    settings = document["settings"]
    lines = [f"isol8rt bench, {document['created']}, {'quick' if settings.get('quick') else 'full'} "
             f"({document['wall_s']:.0f} s)", "machine: " + machine_line(document["machine"])]
    warning = busy_warning(document["machine"])
    if warning:
        lines.append(warning)
    lines += ["", *results_table(document)]
    phases = phases_table(document)
    if phases:
        lines += ["", *phases]
    if document["ratios"]:
        lines += ["", "ratios"]
        lines += [f"  {ratio['label']}: {ratio['value']:.2f}x" for ratio in document["ratios"]]
    lines += ["", "targets"]
    lines += ["  " + format_target(entry) for entry in document["targets"]]
    if changes is not None:
        lines += ["", "compared with the earlier run"]
        lines += [f"  note: machines differ: {note}" for note in machine_notes or []]
        lines += ["  " + change.line() for change in changes] or ["  no change beyond the thresholds"]
    return "\n".join(lines)
