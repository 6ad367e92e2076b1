"""`isol8rt config`: every setting in force, and where each came from."""

from __future__ import annotations

import sys

import msgspec

from ..config import effective
from ._config import load


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "config",
        help="show the settings in force and where each came from",
        description="Show every setting in force: the file's (isol8rt.config.json in this directory, else "
        "~/.isol8rt/config.json, else the reference system's isol8.config.json or ~/.isol8/config.json), "
        "and the built-in defaults for what it leaves out; each with where it came from.",
    )
    parser.add_argument("--json", action="store_true", help="print them as JSON: {source, config, sources}")
    parser.add_argument("--file", metavar="PATH", help="read this configuration file instead")
    parser.set_defaults(handler=_handle)


def _handle(args) -> int:
    loaded = load(args.file)
    view, sources = effective(loaded)
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(
            {"source": loaded.path, "config": view, "sources": sources}), indent=2).decode() + "\n")
        return 0
    print(f"source: {loaded.path or 'built-in defaults (no configuration file found)'}")
    width = max(len(key) for key in sources)
    for key, origin in sources.items():
        value: object = view
        for part in key.split("."):
            value = value[part]  # type: ignore[index]
        text = msgspec.json.encode(value).decode()
        print(f"  {key:<{width}}  {text:<24} {'default' if origin == 'default' else 'file'}")
    return 0
