"""`isol8rt config`: the configuration in force, and where each part of it came from."""

from __future__ import annotations

import sys

import msgspec

from ..config import load_config, resolved as resolved_view


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "config",
        help="show the resolved configuration",
        description="Show the configuration in force: isol8rt.config.json in this directory, else "
        "~/.isol8rt/config.json, else the defaults; and for each top-level key, where it came from.",
    )
    parser.add_argument("--json", action="store_true", help="print the resolved configuration as JSON")
    parser.add_argument("--file", metavar="PATH", help="read this configuration file instead")
    parser.set_defaults(handler=_handle)


def _handle(args) -> int:
    loaded = load_config(args.file)
    resolved = resolved_view(loaded.config)
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(
            {"source": loaded.path, "config": resolved}), indent=2).decode() + "\n")
        return 0
    print(f"source: {loaded.path or 'built-in defaults (no isol8rt.config.json found)'}")
    fields = {field.name: field.encode_name for field in msgspec.structs.fields(type(loaded.config))}
    for name, origin in loaded.sources.items():
        key = fields[name]
        if key == "$schema" and resolved.get(key) is None:
            continue
        value = msgspec.json.encode(resolved.get(key)).decode()
        print(f"  {key:<14} {origin:<8} {value}")
    return 0
