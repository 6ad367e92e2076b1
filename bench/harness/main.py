"""From the parsed ``isol8rt bench`` arguments to a run, its report, JSON, chart and comparison."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import trio

from .chart import chart_svg
from .compare import compare, machine_differences
from .report import report_text
from .results import SchemaError, validate_document
from .settings import SECTIONS, Settings, quick
from .workloads import parse_size


class UsageError(ValueError):
    pass


def _names(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise UsageError(f"{what}: unknown {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return names


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a comma-separated list of numbers") from None
    if not values or min(values) < 1:
        raise UsageError(f"{what}: give positive numbers")
    return values


def _sizes(text: str, what: str) -> list[int]:
    try:
        return [parse_size(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}") from None


def settings_from(args) -> Settings:
    """The settings that the arguments ask for (``--quick`` first, then each flag on top)."""
    from isol8rt.runtimes import RUNTIME_NAMES

    settings = quick() if args.quick else Settings()
    changes: dict = {}
    if args.only:
        changes["sections"] = _names(args.only, SECTIONS, "--only")
    if args.skip:
        skipped = set(_names(args.skip, SECTIONS, "--skip"))
        changes["sections"] = [name for name in changes.get("sections", settings.sections) if name not in skipped]
    if args.runtimes:
        changes["runtimes"] = _names(args.runtimes, RUNTIME_NAMES, "--runtimes")
    if args.cold_runtimes:
        changes["cold_runtimes"] = _names(args.cold_runtimes, RUNTIME_NAMES, "--cold-runtimes")
    if args.oci_runtimes:
        names = [name.strip() for name in args.oci_runtimes.split(",") if name.strip()]
        bad = [name for name in names if not name.replace("-", "").replace("_", "").replace(".", "").isalnum()]
        if bad or not names:
            raise UsageError(f"--oci-runtimes: {args.oci_runtimes!r} is not a comma-separated list of runtime names")
        changes["oci_runtimes"] = names
    for flag, name in (("runs", "runs"), ("warmup", "warmup"), ("cold_runs", "cold_runs"),
                       ("pool_size", "pool_size")):
        value = getattr(args, flag)
        if value is not None:
            if value < (0 if flag == "warmup" else 1):
                raise UsageError(f"--{flag.replace('_', '-')}: {value} is too small")
            changes[name] = value
    if args.runs is not None:
        # One -n for every latency row, so a tiny smoke run stays tiny.
        changes.update(network_runs=args.runs, server_runs=args.runs, session_runs=args.runs,
                       size_runs=min(settings.size_runs, args.runs), exec_runs=min(settings.exec_runs, args.runs),
                       docker_run_runs=min(settings.docker_run_runs, args.runs),
                       cli_runs=min(settings.cli_runs, args.runs),
                       cli_cold_runs=min(settings.cli_cold_runs, args.runs))
    if args.cold_runs is not None:
        changes["cli_cold_runs"] = min(changes.get("cli_cold_runs", settings.cli_cold_runs), args.cold_runs)
    if args.concurrency:
        changes["concurrency"] = _ints(args.concurrency, "--concurrency")
    if getattr(args, "preload_image", None):
        changes["preload_image"] = args.preload_image
    if args.seconds is not None:
        if args.seconds <= 0:
            raise UsageError("--seconds: must be more than 0")
        changes.update(sweep_seconds=args.seconds, server_seconds=max(args.seconds, 0.2), fork_seconds=args.seconds,
                       sweep_warmup_s=min(settings.sweep_warmup_s, args.seconds))
    if args.think_ms is not None:
        changes["think_ms"] = args.think_ms
    if args.sizes:
        changes["output_sizes"] = _sizes(args.sizes, "--sizes")
    if getattr(args, "data_image", None):
        changes["data_image"] = args.data_image
    if args.file_sizes:
        changes["file_sizes"] = _sizes(args.file_sizes, "--file-sizes")
    return replace(settings, **changes)


def load(path: str) -> dict:
    try:
        return validate_document(json.loads(Path(path).read_text()))
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, SchemaError) as exc:
        raise UsageError(f"{path}: not an isol8rt bench result: {exc}") from None


def command_of(args) -> str:
    """The command line that asked for this run, rebuilt from its arguments (recorded in the result)."""
    parts = ["isol8rt", "bench"]
    for name, value in sorted(vars(args).items()):
        if name in ("handler", "command") or value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        parts += [flag] if value is True else [flag, str(value)]
    return shlex.join(parts)


def main(args) -> int:
    from isol8rt.errors import EngineUnavailable
    from isol8rt.docker import DaemonNotRunning

    from .runner import run

    try:
        old = load(args.compare) if args.compare else None
        if args.from_json:
            document = load(args.from_json)
        else:
            settings = settings_from(args)
            try:
                document = trio.run(lambda: run(settings, command=command_of(args), quiet=args.quiet))
            except DaemonNotRunning as exc:
                raise EngineUnavailable(str(exc)) from None
    except UsageError as exc:
        print(f"isol8rt: bench: {exc}", file=sys.stderr)
        return 2
    changes = compare(old, document) if old is not None else None
    print(report_text(document, changes, machine_differences(old, document) if old is not None else None))
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=1) + "\n")
        print(f"\nresults: {args.json}")
    if args.svg:
        Path(args.svg).write_text(chart_svg(document))
        print(f"chart: {args.svg}")
    failed = any(t["status"] == "FAIL" for t in document["targets"])
    regressed = any(c.kind == "regression" for c in changes or [])
    return 1 if args.strict and (failed or regressed) else 0
