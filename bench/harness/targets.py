"""The performance targets as PASS/FAIL lines, and the ratios between results. Computed from a result
document (``results.build_document``), so an old JSON file can be re-judged. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Target:
    name: str
    unit: str
    limit: float
    #: "<=": the value must not exceed the limit; ">=": it must reach it.
    op: str
    #: From the results by id to (value, detail), or None when a result it needs is missing.
    measure: Callable[[dict[str, dict]], tuple[float, str] | None]
    needs: tuple[str, ...]


def _latency(result_id: str, key: str):
    def measure(results: dict[str, dict]):
        value = results[result_id]["latency"][key]
        return value, f"{result_id} {key}"
    return measure


def _throughput(result_id: str):
    def measure(results: dict[str, dict]):
        return results[result_id]["throughput"], f"{result_id}"
    return measure


def _added_p50(base_id: str, other_id: str):
    def measure(results: dict[str, dict]):
        base, other = results[base_id]["latency"]["p50"], results[other_id]["latency"]["p50"]
        return other - base, f"p50 {other:.2f} vs {base:.2f} ms (interleaved)"
    return measure


def _p50_ratio(base_id: str, other_id: str):
    def measure(results: dict[str, dict]):
        base, other = results[base_id]["latency"]["p50"], results[other_id]["latency"]["p50"]
        return (other / base if base else 0.0), f"p50 {other:.1f} vs {base:.1f} ms"
    return measure


def _throughput_ratio(base_id: str, other_id: str):
    def measure(results: dict[str, dict]):
        base, other = results[base_id]["throughput"], results[other_id]["throughput"]
        return (other / base if base else 0.0), f"{other:.1f}/s vs {base:.1f}/s"
    return measure


def _p50_ratio(base_id: str, other_id: str):
    def measure(results: dict[str, dict]):
        base, other = results[base_id]["latency"]["p50"], results[other_id]["latency"]["p50"]
        return (other / base if base else 0.0), f"p50 {other:.1f} vs {base:.1f} ms (interleaved)"
    return measure


TARGETS: tuple[Target, ...] = (
    Target("warm python hello p50 (execute())", "ms", 5.0, "<=",
           _latency("warm.python.sequential", "p50"), ("warm.python.sequential",)),
    Target("warm python hello p99 (execute())", "ms", 15.0, "<=",
           _latency("warm.python.sequential", "p99"), ("warm.python.sequential",)),
    Target("warm bash hello p50", "ms", 3.0, "<=", _latency("warm.bash.sequential", "p50"),
           ("warm.bash.sequential",)),
    Target("warm node hello p50", "ms", 15.0, "<=", _latency("warm.node.sequential", "p50"),
           ("warm.node.sequential",)),
    Target("python throughput, 4 concurrent callers, fast pool", "runs/s", 150.0, ">=",
           _throughput("sweep.python.c4"), ("sweep.python.c4",)),
    Target("filtered network adds to warm p50 (no request made)", "ms", 2.0, "<=",
           _added_p50("network.python.none", "network.python.filtered"),
           ("network.python.none", "network.python.filtered")),
    Target("server adds to p50 over a library call", "ms", 1.5, "<=",
           _added_p50("server.python.library", "server.python.server"),
           ("server.python.library", "server.python.server")),
    Target("server adds to p50 over a library call, with think time", "ms", 1.5, "<=",
           _added_p50("server.python.library.staggered", "server.python.server.staggered"),
           ("server.python.library.staggered", "server.python.server.staggered")),
    Target("server throughput at concurrency 8, share of the library's", "x", 0.85, ">=",
           _throughput_ratio("server.python.library.c8", "server.python.server.c8"),
           ("server.python.library.c8", "server.python.server.c8")),
    Target("isol8rt run -e \"print(1)\" through a local engine, wall p50", "ms", 150.0, "<=",
           _latency("cli.run.engine", "p50"), ("cli.run.engine",)),
    Target("isol8rt --version, wall p50", "ms", 150.0, "<=", _latency("cli.version", "p50"), ("cli.version",)),
    Target("python throughput, 4 callers, fork server over fresh interpreters", "x", 2.5, ">=",
           _throughput_ratio("fork.python.default.c4", "fork.python.fork.c4"),
           ("fork.python.default.c4", "fork.python.fork.c4")),
    Target("pandas workload p50 with preload, over warm python hello p50", "x", 5.0, "<=",
           _p50_ratio("fork.python.hello", "fork.python.pandas.preload"),
           ("fork.python.hello", "fork.python.pandas.preload")),
)


def evaluate_targets(document: dict[str, Any], targets: tuple[Target, ...] = TARGETS) -> list[dict[str, Any]]:
    """One entry per target: ``{"name", "status": PASS|FAIL|N/A, "value", "limit", "op", "unit", "detail"}``."""
    results = {result["id"]: result for result in document["results"]}
    lines = []
    for target in targets:
        entry = {"name": target.name, "op": target.op, "limit": target.limit, "unit": target.unit,
                 "value": None, "status": "N/A", "detail": ""}
        missing = [rid for rid in target.needs if rid not in results]
        broken = [results[rid] for rid in target.needs if rid in results and results[rid]["status"] != "ok"]
        if missing:
            entry["detail"] = f"not measured ({', '.join(missing)})"
        elif broken:
            entry["detail"] = "; ".join(f"{r['id']}: {r['status']}{': ' + r['note'] if r['note'] else ''}"
                                        for r in broken)
        else:
            try:
                measured = target.measure(results)
            except (KeyError, TypeError, ZeroDivisionError) as exc:
                measured = None
                entry["detail"] = f"cannot compute: {exc!r}"
            if measured is not None and measured[0] is not None:
                value, detail = measured
                ok = value <= target.limit if target.op == "<=" else value >= target.limit
                entry.update(value=round(value, 3), status="PASS" if ok else "FAIL", detail=detail)
        lines.append(entry)
    return lines


def format_target(entry: dict[str, Any]) -> str:
    """``PASS warm python hello p50 (execute()): 4.21 ms <= 5 ms  [detail]``."""
    limit = f"{entry['limit']:g} {entry['unit']}".replace(" x", "x")
    if entry["value"] is None:
        return f"N/A  {entry['name']} (target {entry['op']} {limit}): {entry['detail']}"
    value = f"{entry['value']:.2f} {entry['unit']}".replace(" x", "x")
    return f"{entry['status']} {entry['name']}: {value} {entry['op']} {limit}  [{entry['detail']}]"


#: (id, label, numerator id, denominator id, what): "p50" compares latency p50s, "throughput" throughputs.
RATIO_SPECS: tuple[tuple[str, str, str, str, str], ...] = (
    *((f"exec_over_warm.{rt}", f"docker exec / isol8rt warm ({rt} p50)", f"baseline.{rt}.exec",
       f"warm.{rt}.sequential", "p50") for rt in ("python", "bash", "node", "bun", "deno")),
    *((f"run_over_warm.{rt}", f"docker run --rm / isol8rt warm ({rt} p50)", f"baseline.{rt}.run",
       f"warm.{rt}.sequential", "p50") for rt in ("python", "bash", "node", "bun", "deno")),
    *((f"run_over_cold.{rt}", f"docker run --rm / isol8rt cold ({rt} p50)", f"baseline.{rt}.run", f"cold.{rt}",
       "p50") for rt in ("python", "bash", "node", "bun", "deno")),
    ("server_over_library", "server / library (python p50)", "server.python.server", "server.python.library", "p50"),
    ("server_over_library.staggered", "server / library (python p50, with think time)",
     "server.python.server.staggered", "server.python.library.staggered", "p50"),
    ("server_over_library.c8", "server / library (throughput, 8 callers)", "server.python.server.c8",
     "server.python.library.c8", "throughput"),
    ("filtered_over_none", "filtered / none network (python p50)", "network.python.filtered", "network.python.none",
     "p50"),
    ("session_over_warm", "persistent session / ephemeral warm (python p50)", "session.python",
     "warm.python.sequential", "p50"),
    ("cli_cold_over_docker_run", "isol8rt run cold / docker run --rm (CLI wall p50)", "cli.run.cold",
     "cli.docker_run", "p50"),
    ("cli_engine_over_docker_run", "isol8rt run through a local engine / docker run --rm (CLI wall p50)",
     "cli.run.engine", "cli.docker_run", "p50"),
    ("cli_engine_over_interpreter", "isol8rt run through a local engine / python -c pass (wall p50)",
     "cli.run.engine", "cli.floor.interpreter", "p50"),
    *((f"realistic.{name}_over_hello", f"{name} / python hello, warm on the data image (p50)",
       f"realistic.{name}.warm", "realistic.hello.warm", "p50") for name in ("pandas", "matplotlib", "text")),
    ("realistic.pandas_cold_over_warm", "pandas cold / warm (p50)", "realistic.pandas.cold", "realistic.pandas.warm",
     "p50"),
)


def ratios(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ratio in :data:`RATIO_SPECS` whose two results were measured."""
    results = {result["id"]: result for result in document["results"] if result["status"] == "ok"}
    out = []
    for ratio_id, label, numerator, denominator, what in RATIO_SPECS:
        if numerator not in results or denominator not in results:
            continue
        if what == "p50":
            top, bottom = results[numerator]["latency"].get("p50"), results[denominator]["latency"].get("p50")
        else:
            top, bottom = results[numerator]["throughput"], results[denominator]["throughput"]
        if not top or not bottom:
            continue
        out.append({"id": ratio_id, "label": label, "numerator": numerator, "denominator": denominator,
                    "of": what, "value": round(top / bottom, 3)})
    return out
