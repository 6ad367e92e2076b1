"""`isol8rt serve`: the HTTP server (the reference's REST API, a WebSocket, API keys).

The limits given here are the server's ceiling: clients may ask for less in their ``options``, never more.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import trio

from ..runtimes import RUNTIME_NAMES
from ..types import Isol8Options, NetworkFilter

DEFAULT_PORT = 3000


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the HTTP server",
        description="Serve the isol8 REST API. The limits below are a ceiling: a client's options may tighten "
        "them, never loosen them.",
    )
    net = parser.add_argument_group("listening")
    net.add_argument("-p", "--port", type=int, help="port (default: $ISOL8_PORT, then $PORT, then 3000)")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    auth = parser.add_argument_group("authentication")
    auth.add_argument("-k", "--key", help="master API key (default: $ISOL8_API_KEY)")
    auth.add_argument("--no-auth", action="store_true", help="serve WITHOUT authentication: anyone who can "
                      "reach the port can run code (for a trusted loopback only)")
    auth.add_argument("--keys-db", metavar="PATH", help="SQLite file of API keys (default ~/.isol8rt/keys.db)")
    auth.add_argument("--no-keys-db", action="store_true", help="disable API key management (/auth/keys)")
    ceiling = parser.add_argument_group("sandbox ceiling")
    ceiling.add_argument("--memory", default="512m", metavar="SIZE", help="memory per sandbox (default 512m)")
    ceiling.add_argument("--cpu", type=float, default=1.0, metavar="CORES", help="CPU per sandbox (default 1)")
    ceiling.add_argument("--timeout", type=int, default=30_000, metavar="MS", help="longest run (default 30000)")
    ceiling.add_argument("--pids-limit", type=int, default=64, metavar="N", help="processes per sandbox (default 64)")
    ceiling.add_argument("--max-output", type=int, default=1024 * 1024, metavar="BYTES",
                         help="cap on stdout and on stderr (default 1 MiB)")
    ceiling.add_argument("--net", choices=("none", "filtered", "host"), default="none",
                         help="widest network mode (default none)")
    ceiling.add_argument("--allow", action="append", default=[], metavar="REGEX",
                         help="filtered: hosts runs may reach (repeatable; none given: every host)")
    ceiling.add_argument("--deny", action="append", default=[], metavar="REGEX",
                         help="filtered: hosts runs may never reach (repeatable; deny wins)")
    server = parser.add_argument_group("server")
    server.add_argument("--pool-size", type=int, default=2, metavar="N", help="warm containers per runtime (default 2)")
    server.add_argument("--max-concurrent", type=int, default=16, metavar="N", help="runs at once (default 16)")
    server.add_argument("--prewarm", default="python", metavar="RUNTIMES",
                        help="comma-separated runtimes to warm at start ('' for none; default python)")
    server.add_argument("--session-ttl", type=float, default=1800, metavar="S",
                        help="close sessions idle this long (default 1800 s)")
    server.add_argument("--rate-limit", type=float, default=0, metavar="R",
                        help="requests per second per key (default 0: unlimited)")
    server.add_argument("--key-concurrency", type=int, default=16, metavar="N",
                        help="requests in flight per key (default 16; 0: unlimited)")
    server.add_argument("--max-body", type=int, default=32 * 1024 * 1024, metavar="BYTES",
                        help="largest request body (default 32 MiB)")
    server.add_argument("--state-dir", metavar="DIR", help="where instance files for orphan clean-up live "
                        "(default ~/.isol8rt/server)")
    server.add_argument("--debug", action="store_true", help="log the server's and engine's steps")
    parser.set_defaults(handler=_handle)


def resolve_port(flag: int | None, environ=os.environ) -> int:
    """--port, then $ISOL8_PORT, then $PORT, then 3000."""
    if flag is not None:
        return flag
    for name in ("ISOL8_PORT", "PORT"):
        value = environ.get(name)
        if value:
            try:
                return int(value)
            except ValueError:
                raise SystemExit(f"isol8rt: ${name} is {value!r}, not a port number") from None
    return DEFAULT_PORT


def _config(args):
    from ..server import ServerConfig
    from ..server.keys import default_path

    prewarm = [name for name in args.prewarm.split(",") if name]
    for name in prewarm:
        if name not in RUNTIME_NAMES:
            raise SystemExit(f"isol8rt: --prewarm: unknown runtime {name!r} (choose from {', '.join(RUNTIME_NAMES)})")
    options = Isol8Options(
        memory_limit=args.memory, cpu_limit=args.cpu, timeout_ms=args.timeout, pids_limit=args.pids_limit,
        max_output_size=args.max_output, network=args.net, pool_size=args.pool_size,
        max_concurrent=args.max_concurrent, debug=args.debug,
    )
    if args.allow or args.deny:
        if args.net != "filtered":
            raise SystemExit("isol8rt: --allow and --deny need --net filtered")
        options.network_filter = NetworkFilter(whitelist=list(args.allow), blacklist=list(args.deny))
    config = ServerConfig(
        host=args.host, port=resolve_port(args.port), api_key=args.key or os.environ.get("ISOL8_API_KEY") or None,
        open_access=args.no_auth, options=options, prewarm=prewarm, max_body=args.max_body,
        rate_limit=args.rate_limit, key_concurrency=args.key_concurrency, session_ttl_s=args.session_ttl,
        keys_db=None if args.no_keys_db else Path(args.keys_db) if args.keys_db else default_path(),
        handle_signals=True,
    )
    if args.state_dir:
        config.state_dir = Path(args.state_dir)
    return config


def _handle(args) -> int:
    config = _config(args)
    if not config.api_key and not config.open_access:
        print("isol8rt: serve needs an API key: pass --key or set ISOL8_API_KEY (or --no-auth, for a trusted "
              "loopback only)", file=sys.stderr)
        return 2
    if config.open_access:
        print(f"isol8rt: WARNING: --no-auth: anyone who can reach {config.host}:{config.port} can run code and "
              "manage the server", file=sys.stderr)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="isol8rt: %(name)s: %(message)s")
    try:
        trio.run(_serve, config)
    except OSError as exc:
        print(f"isol8rt: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


class _Announce:
    """Stands in for a nursery's task status: says where the server listens once it does (no nursery, so
    a failure to start reaches the CLI as itself, not wrapped in an exception group)."""

    def __init__(self, host: str) -> None:
        self.host = host

    def started(self, port: int) -> None:
        print(f"isol8rt: serving on http://{self.host}:{port}", file=sys.stderr, flush=True)


async def _serve(config) -> None:
    from ..server import Server

    await Server(config).run(task_status=_Announce(config.host))
