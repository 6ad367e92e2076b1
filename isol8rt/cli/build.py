"""`isol8rt build`: a named custom image with packages and set-up scripts baked in."""

from __future__ import annotations

import sys

import trio

from ..errors import InvalidRequest
from ..runtimes import RUNTIME_NAMES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "build",
        help="build a custom image (packages, set-up scripts) to run code in",
        description="Build isol8rt-custom:NAME on top of a runtime's image: packages installed as `setup` "
        "bakes them, then set-up scripts run as root. Run code in it with `isol8rt run --image "
        "isol8rt-custom:NAME`. Building the same thing again reuses the image.",
    )
    parser.add_argument("--base", required=True, choices=RUNTIME_NAMES, help="the runtime to start from")
    parser.add_argument("--tag", required=True, metavar="NAME", help="the image's name: isol8rt-custom:NAME")
    parser.add_argument("--install", action="append", default=[], metavar="PACKAGE",
                        help="a package to bake in (repeatable; commas allowed)")
    parser.add_argument("--setup", action="append", default=[], metavar="SCRIPT",
                        help="a shell script to run at build time, inline or @file (repeatable, in order)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the image is up to date")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors and the tag")
    parser.set_defaults(handler=_handle)


def read_scripts(values: list[str]) -> list[str]:
    """Inline scripts, or ``@path`` for one read from a file."""
    scripts = []
    for value in values:
        if value.startswith("@"):
            try:
                with open(value[1:], encoding="utf-8") as file:
                    scripts.append(file.read())
            except OSError as exc:
                raise InvalidRequest(f"--setup {value}: cannot read it: {exc.strerror}") from None
        else:
            scripts.append(value)
    return scripts


def _handle(args) -> int:
    packages = [package.strip() for item in args.install for package in item.split(",") if package.strip()]
    scripts = read_scripts(args.setup)
    return trio.run(_build, args, packages, scripts)


async def _build(args, packages: list[str], scripts: list[str]) -> int:
    from ..docker import DockerClient
    from ..images.custom import build_custom

    progress = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    async with DockerClient() as client:
        image, built = await build_custom(client, args.tag, args.base, packages, scripts, force=args.force,
                                          progress=progress)
    if not args.quiet:
        print(f"{image}: {'built' if built else 'up to date'}", file=sys.stderr)
    print(image)
    return 0
