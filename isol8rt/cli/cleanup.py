"""`isol8rt cleanup`: remove every container isol8rt made (and with --images, its images)."""

from __future__ import annotations

import sys

import trio
from . import SUMMARIES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cleanup",
        help=SUMMARIES["cleanup"],
        description="Remove every container isol8rt made, found by label, whichever engine made it.",
    )
    parser.add_argument("--images", action="store_true", help="also remove isol8rt's images")
    parser.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(handler=_handle)


def _handle(args) -> int:
    if not args.force:
        what = "containers and images" if args.images else "containers"
        if not sys.stdin.isatty():
            print(f"isol8rt: cleanup would remove every isol8rt {what}; add --force to confirm", file=sys.stderr)
            return 2
        answer = input(f"Remove every isol8rt {what}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 1
    return trio.run(_cleanup, args.images)


async def _cleanup(images: bool) -> int:
    from ..engine import DockerIsol8

    report = await DockerIsol8.cleanup()
    print(f"containers: {report['removed']} removed, {report['failed']} failed")
    failed = report["failed"]
    if images:
        image_report = await DockerIsol8.cleanup_images()
        print(f"images: {image_report['removed']} removed, {image_report['failed']} failed")
        failed += image_report["failed"]
    for error in report["errors"]:
        print(f"  {error}", file=sys.stderr)
    return 1 if failed else 0
