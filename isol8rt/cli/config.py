"""`isol8rt config`: every setting in force, and where each came from."""

from __future__ import annotations

import os
import sys

import msgspec

from ..config import LoadedConfig, effective
from ._config import load
from .serve import SERVE_DEFAULTS, resolve_port
from . import SUMMARIES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "config",
        help=SUMMARIES["config"],
        description="Show every setting in force: the file's (isol8rt.config.json in this directory, else "
        "~/.isol8rt/config.json, else the reference system's isol8.config.json or ~/.isol8/config.json), "
        "and the built-in defaults for what it leaves out; each with where it came from. The serve "
        "section is what `isol8rt serve` uses when no flag says otherwise.",
    )
    parser.add_argument("--json", action="store_true",
                        help="print them as JSON: {source, config, serve, sources}")
    parser.add_argument("--file", metavar="PATH", help="read this configuration file instead")
    parser.set_defaults(handler=_handle)


def serve_view(loaded: LoadedConfig, environ=os.environ) -> tuple[dict, dict[str, str]]:
    """What ``isol8rt serve`` takes from outside its flags: the port and key from the environment, its
    own pool and concurrency defaults where the file sets none."""
    view: dict = {"port": resolve_port(None, environ)}
    sources = {"serve.port": next((f"env {name}" for name in ("ISOL8_PORT", "PORT") if environ.get(name)),
                                  "default")}
    for key, (name, value) in SERVE_DEFAULTS.items():
        if key in loaded.present:
            view[key] = msgspec.to_builtins(getattr(loaded.config, name))
            sources[f"serve.{key}"] = f"file {loaded.path}"
        else:
            view[key] = value
            sources[f"serve.{key}"] = "default"
    if environ.get("ISOL8_API_KEY"):
        view["apiKey"] = "(set)"  # never the key itself
        sources["serve.apiKey"] = "env ISOL8_API_KEY"
    return view, sources


def _handle(args) -> int:
    loaded = load(args.file)
    view, sources = effective(loaded)
    serve, serve_sources = serve_view(loaded)
    sources.update(serve_sources)
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(
            {"source": loaded.path, "config": view, "serve": serve, "sources": sources}), indent=2).decode() + "\n")
        return 0
    where = f"{loaded.path} (--file)" if args.file else loaded.path
    print(f"source: {where or 'built-in defaults (no configuration file found)'}")
    width = max(len(key) for key in sources)
    for key, origin in sources.items():
        value: object = {**view, "serve": serve}
        for part in key.split("."):
            value = value[part]  # type: ignore[index]
        text = msgspec.json.encode(value).decode()
        print(f"  {key:<{width}}  {text:<24} {'file' if origin.startswith('file ') else origin}")
    return 0
