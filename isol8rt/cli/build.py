"""`isol8rt build`: a named custom image with packages and set-up scripts baked in."""

from __future__ import annotations

import os
import sys

import trio

from ..errors import InvalidRequest
from ..runtimes import RUNTIME_NAMES
from . import SUMMARIES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "build",
        help=SUMMARIES["build"],
        description="Build isol8rt-custom:NAME on top of a runtime's image: packages installed as `setup` "
        "bakes them, then set-up scripts run as root. Run code in it with `isol8rt run --image "
        "isol8rt-custom:NAME`. Building the same thing again reuses the image.",
    )
    parser.add_argument("--base", choices=RUNTIME_NAMES, help="the runtime to start from")
    parser.add_argument("--tag", metavar="NAME", help="the image's name: isol8rt-custom:NAME")
    parser.add_argument("--preset", metavar="NAME", help="instead of --base and --tag: build only this preset "
                        "image (e.g. data) on the runtime's image as it is, and report its size and build time")
    parser.add_argument("--install", action="append", default=[], metavar="PACKAGE",
                        help="a package to bake in (repeatable; commas allowed)")
    parser.add_argument("--setup", action="append", default=[], metavar="SCRIPT",
                        help="a shell script to run at build time: a file's path, @FILE, or the script's text "
                        "(repeatable, in order)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the image is up to date")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors and the tag")
    parser.set_defaults(handler=_handle)


def read_scripts(values: list[str], flag: str = "--setup") -> list[str]:
    """Each value's script (see :func:`script_text`)."""
    return [script_text(flag, value) for value in values]


#: Endings that make a word a script's file name rather than a command.
_SCRIPT_SUFFIXES = (".sh", ".bash")


def script_text(flag: str, value: str) -> str:
    """A script given on the command line. In this order: ``@FILE`` is FILE's content (it must exist); a
    value naming an existing file is that file's content (the reference system's ``--setup ./setup.sh``);
    a value that looks like a path (one word with a ``/`` in it, or ending in .sh/.bash) but names no file
    is an error, not a command to run; anything else is the script's text itself."""
    if value.startswith("@"):
        return _read(flag, value, value[1:])
    if "\n" not in value and os.path.exists(value):
        return _read(flag, value, value)
    if looks_like_path(value):
        raise InvalidRequest(f"{flag} {value}: no such file (to run a path inside the sandbox instead, "
                             f"write it as a command: 'sh {value}')")
    return value


def looks_like_path(value: str) -> bool:
    return bool(value) and not any(c.isspace() for c in value) and (
        "/" in value or value.endswith(_SCRIPT_SUFFIXES))


def _read(flag: str, value: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise InvalidRequest(f"{flag} {value}: cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidRequest(f"{flag} {value}: not UTF-8 text (a script file is expected)") from None


def _handle(args) -> int:
    if args.preset is not None:
        if args.base or args.tag or args.install or args.setup:
            raise InvalidRequest("--preset: a preset is a fixed recipe; drop --base, --tag, --install and --setup")
        return trio.run(_build_preset, args)
    if not args.base or not args.tag:
        raise InvalidRequest("give --base and --tag (or --preset NAME)")
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


async def _build_preset(args) -> int:
    from ..docker import DockerClient
    from ..images.presets import build_preset, preset

    preset(args.preset)  # an unknown name is refused before Docker is asked anything
    progress = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    async with DockerClient() as client:
        built = await build_preset(client, args.preset, force=args.force, progress=progress)
    if not args.quiet:
        when = f"built in {built.seconds:.1f}s" if built.status == "built" else "up to date"
        print(f"{built.image}: {when}, {built.size / 1e6:.1f} MB", file=sys.stderr)
    print(built.image)
    return 0
