"""``isol8rt setup``: make sure Docker runs, then build the images that are missing or out of date."""

from __future__ import annotations

import sys
import time

import trio

from ..daemon import ensure_daemon
from ..docker import DockerClient
from ..images import BuildFailed, ImageReport, normalize_packages, selected_runtimes, setup
from ..images.presets import PRESETS, preset
from ..runtimes import RUNTIME_NAMES
from ._config import load
from . import SUMMARIES

_BAKE_HELP = {
    "python": "PyPI packages to bake into a custom Python image, e.g. numpy,pandas",
    "node": "npm packages to bake into a custom Node image (in /node_modules), e.g. lodash",
    "bun": "npm packages to bake into a custom Bun image (in /node_modules), e.g. zod",
    "deno": "npm:, jsr: or https:// modules to cache in a custom Deno image, e.g. npm:zod@3",
    "bash": "Debian packages to add to a custom Bash image, e.g. jq,curl",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "setup",
        help=SUMMARIES["setup"],
        description="Start Docker if it is not running (root on Debian only), then build the images "
        "isol8rt runs code in, rebuilding only those whose recipe or sources changed.",
    )
    parser.add_argument(
        "--runtimes",
        metavar="LIST",
        help=f"comma-separated runtimes to build (default: all of {','.join(RUNTIME_NAMES)})",
    )
    parser.add_argument("--force", action="store_true", help="rebuild every image from scratch, without the layer cache")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument("--oci-runtime", metavar="NAME",
                        help="also make this OCI runtime usable by the local Docker daemon (crun: installs "
                        "Debian's package and registers it; Docker's default runtime is not changed)")
    for runtime in RUNTIME_NAMES:
        parser.add_argument(f"--{runtime}", metavar="PACKAGES", help=_BAKE_HELP[runtime])
    parser.add_argument("--preset", action="append", default=[], metavar="NAME",
                        help=f"also build a preset image ({', '.join(PRESETS)}: numpy, pandas, matplotlib, scipy "
                        "and more, pinned) that requests asking for its packages run in; `isol8rt build "
                        "--preset NAME` builds it alone")
    parser.set_defaults(handler=run)


def run(args) -> int:
    runtimes = args.runtimes or RUNTIME_NAMES
    bake = {runtime: getattr(args, runtime) for runtime in RUNTIME_NAMES if getattr(args, runtime) is not None}
    # The config file's `dependencies` are baked too, for runtimes the command line says nothing about.
    dependencies = load().config.dependencies
    for runtime in RUNTIME_NAMES:
        if runtime not in bake and getattr(dependencies, runtime):
            bake[runtime] = list(getattr(dependencies, runtime))
    presets = [name.strip() for item in args.preset for name in item.split(",") if name.strip()]
    # Refuse bad names before Docker is even started.
    selected_runtimes(runtimes, [*bake, *(preset(name).runtime for name in presets)])
    for runtime, packages in bake.items():
        normalize_packages(runtime, packages)
    progress = _quiet if args.quiet else _print
    started = time.monotonic()
    try:
        reports = trio.run(_setup, runtimes, args.force, bake, presets, progress, args.oci_runtime)
    except BuildFailed as exc:
        print("\n".join(f"  | {line}" for line in exc.log), file=sys.stderr)
        raise
    if not args.quiet:
        print(_summary(reports, time.monotonic() - started))
    return 0


async def _setup(runtimes, force, bake, presets, progress, oci_runtime=None) -> list[ImageReport]:
    await ensure_daemon(progress=progress)
    async with DockerClient() as client:
        reports = await setup(client, runtimes=runtimes, force=force, bake=bake, presets=presets, progress=progress)
    if oci_runtime is not None:
        from ..oci_runtime import register as register_oci_runtime

        await register_oci_runtime(oci_runtime, reports[-1].image, progress=progress)
    return reports


def _summary(reports: list[ImageReport], seconds: float) -> str:
    built = sum(report.status != "up to date" for report in reports)
    width = max(len(report.image) for report in reports)
    lines = [f"{len(reports)} images, {built} built, {len(reports) - built} up to date, in {seconds:.1f}s:"]
    for report in reports:
        status = report.status if report.status == "up to date" else f"{report.status} in {report.seconds:.1f}s"
        lines.append(f"  {report.image:<{width}}  {status:<22} {report.size / 1e6:8.1f} MB")
    return "\n".join(lines)


def _print(line: str) -> None:
    print(line, flush=True)


def _quiet(line: str) -> None:
    pass
