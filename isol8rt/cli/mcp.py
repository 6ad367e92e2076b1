"""`isol8rt mcp`: a Model Context Protocol server on stdio, for agents (Claude Desktop, IDEs, SDK clients)."""

from __future__ import annotations

import argparse
import logging
import sys

import trio

from ..errors import InvalidRequest
from ..runtimes import RUNTIME_NAMES
from . import SUMMARIES


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "mcp",
        help=SUMMARIES["mcp"],
        description="Serve MCP (JSON-RPC 2.0, one message per line) on stdin/stdout: tools execute_code and, "
        "with --persistent, write_file, read_file and reset_session. Options come from the configuration "
        "file (see `isol8rt config`), then these flags.",
    )
    parser.add_argument("--config", metavar="PATH", help="configuration file (default: as `isol8rt config` finds it)")
    parser.add_argument("--persistent", action="store_true",
                        help="keep one session: files and Python/Node state carry over between calls")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--timeout", type=int, metavar="MS", help="default and longest run (default 30000)")
    limits.add_argument("--memory", metavar="SIZE", help="memory limit, e.g. 512m, 1g (default 512m)")
    limits.add_argument("--cpu", type=float, metavar="CORES", help="CPU limit in cores (default 1.0)")
    limits.add_argument("--pids-limit", type=int, metavar="N", help="process limit (default 64)")
    limits.add_argument("--max-output", type=int, metavar="BYTES",
                        help="cap on stdout and on stderr (default 100000: a model reads it)")
    limits.add_argument("--image", metavar="IMAGE", help="use this image instead of the runtime's")
    net = parser.add_argument_group("network")
    net.add_argument("--net", choices=("none", "host", "filtered"), help="network mode (default none)")
    net.add_argument("--allow", action="append", default=[], metavar="REGEX",
                     help="filtered mode: allow hosts matching REGEX (repeatable)")
    net.add_argument("--deny", action="append", default=[], metavar="REGEX",
                     help="filtered mode: deny hosts matching REGEX (repeatable; deny wins)")
    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--secret", action="append", default=[], metavar="KEY=VALUE",
                         help="secret environment variable, masked as *** in output (repeatable)")
    runtime.add_argument("--pool-size", type=int, metavar="N", help="warm containers per runtime (default 1)")
    runtime.add_argument("--prewarm", default="python", metavar="RUNTIMES",
                         help="comma-separated runtimes to warm in the background ('' for none; default python)")
    runtime.add_argument("--debug", action="store_true", help="log the server's and engine's steps to stderr")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from ..mcp import Overrides, build_options, serve_stdio

    secrets = {}
    for item in args.secret:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"--secret {item!r}: expected KEY=VALUE")
        secrets[key] = value
    prewarm = [name.strip() for name in args.prewarm.split(",") if name.strip()]
    for name in prewarm:
        if name not in RUNTIME_NAMES:
            raise InvalidRequest(f"--prewarm: unknown runtime {name!r} (one of {', '.join(RUNTIME_NAMES)})")
    options = build_options(Overrides(
        config=args.config, persistent=args.persistent, timeout_ms=args.timeout, memory=args.memory, cpu=args.cpu,
        pids_limit=args.pids_limit, max_output=args.max_output, net=args.net, allow=args.allow, deny=args.deny,
        image=args.image, secrets=secrets, pool_size=args.pool_size, debug=args.debug))
    # stdout is the protocol's: every log line goes to stderr.
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, stream=sys.stderr,
                        format="isol8rt: %(name)s: %(message)s")
    trio.run(lambda: serve_stdio(options, persistent=args.persistent, prewarm=prewarm))
    return 0
