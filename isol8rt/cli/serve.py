"""`isol8rt serve`: the HTTP server (the reference's REST API, a WebSocket, API keys).

The limits given here are the server's ceiling: clients may ask for less in their ``options``, never more.
The configuration file is read as ``isol8rt run`` reads it (its defaults, network rules, security, audit,
remote code, pool, ``maxConcurrent`` and ``cleanup``); a flag given overrides the file's value, and
``--allow``/``--deny`` narrow or extend the file's network rules. What neither sets has the server's
defaults (:data:`SERVE_DEFAULTS`: a bigger pool and more runs at once than the library's).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import trio

import msgspec

from ..config import LoadedConfig, merge_network, options_from_config, session_idle_s
from ..engine.spec import parse_size
from ..errors import InvalidRequest
from ..runtimes import RUNTIME_NAMES
from ..types import AuditConfig, SecurityConfig
from ._config import load
from . import SUMMARIES

DEFAULT_PORT = 3000
#: The server's own defaults where the config file and the flags say nothing:
#: config key -> (option, value).
SERVE_DEFAULTS = {"poolSize": ("pool_size", 2), "maxConcurrent": ("max_concurrent", 16)}
_MAX_FILE_BYTES = 32 * 1024 * 1024
#: ``--keys-max-stale``'s default: isol8rt.server.keys_pg.DEFAULT_MAX_STALE_S (not imported: building
#: the parser stays cheap; a test checks the two agree).
_KEYS_MAX_STALE_S = 5.0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help=SUMMARIES["serve"],
        description="Serve the isol8 REST API, with the config file's settings (as `isol8rt config` shows them) "
        "and the flags below over them; a default below holds where neither sets a value. The limits are a "
        "ceiling: a client's options may tighten them, never loosen them.",
    )
    net = parser.add_argument_group("listening")
    net.add_argument("-p", "--port", type=int, help="port (default: $ISOL8_PORT, then $PORT, then 3000)")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    net.add_argument("--socket", nargs="?", const="", metavar="PATH",
                     help="serve on a Unix socket only you can reach instead (mode 0600 in a 0700 directory; "
                     "default: $ISOL8RT_SOCKET, else $XDG_RUNTIME_DIR/isol8rt/engine.sock, else "
                     "/tmp/isol8rt-UID/engine.sock); no key: the file's permissions are the authentication, and "
                     "every run gets exactly the options it sends or is refused. `isol8rt run` uses it")
    net.add_argument("--idle-exit", type=float, default=0, metavar="S",
                     help="stop once nothing has used the server for S seconds (default 0: never)")
    auth = parser.add_argument_group("authentication")
    auth.add_argument("-k", "--key", help="master API key (default: $ISOL8_API_KEY)")
    auth.add_argument("--no-auth", action="store_true", help="serve WITHOUT authentication: anyone who can "
                      "reach the port can run code (for a trusted loopback only)")
    auth.add_argument("--keys-db", metavar="PATH|URL",
                      help="SQLite file of API keys (default ~/.isol8rt/keys.db), or a postgresql:// URL that "
                           "several nodes share ($ISOL8RT_KEYS_DB)")
    auth.add_argument("--keys-max-stale", type=float, metavar="SECONDS", default=_KEYS_MAX_STALE_S,
                      help="with a postgresql:// key store: a key revoked on any node is refused here within "
                           f"this long (default {_KEYS_MAX_STALE_S:g})")
    auth.add_argument("--no-keys-db", action="store_true", help="disable API key management (/auth/keys)")
    auth.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                      help="let web pages from this origin (https://app.example; '*' for any) call the API "
                      "(repeatable; default: none, so browsers cannot be made to call it)")
    auth.add_argument("--allow-host", action="append", default=None, metavar="HOST",
                      help="a host name the server answers to besides IP addresses and localhost ('*' for "
                      "any; repeatable). Default: any with a key; without (--no-auth) only those, against DNS "
                      "rebinding")
    ceiling = parser.add_argument_group("sandbox ceiling")
    ceiling.add_argument("--memory", metavar="SIZE", help="memory per sandbox (default 512m)")
    ceiling.add_argument("--cpu", type=float, metavar="CORES", help="CPU per sandbox (default 1)")
    ceiling.add_argument("--timeout", type=int, metavar="MS", help="longest run (default 30000)")
    ceiling.add_argument("--pids-limit", type=int, metavar="N", help="processes per sandbox (default 64)")
    ceiling.add_argument("--max-output", type=int, metavar="BYTES", help="cap on stdout and on stderr (default 1 MiB)")
    ceiling.add_argument("--net", choices=("none", "filtered", "host"), help="widest network mode (default none)")
    ceiling.add_argument("--allow", action="append", default=[], metavar="REGEX",
                         help="filtered: hosts runs may reach, added to the file's whitelist (repeatable; none "
                         "anywhere: every host)")
    ceiling.add_argument("--deny", action="append", default=[], metavar="REGEX",
                         help="filtered: hosts runs may never reach, added to the file's blacklist (repeatable; "
                         "deny wins)")
    ceiling.add_argument("--max-file-bytes", type=int, default=_MAX_FILE_BYTES, metavar="BYTES",
                         help="output files a run brings back, all together, by apparent size; also the largest "
                         "file GET/POST /file moves (default 32 MiB)")
    ceiling.add_argument("--seccomp", metavar="MODE",
                         help="the sandboxes' seccomp profile: strict, unconfined, or a profile's path "
                         "(default strict; clients cannot change it)")
    ceiling.add_argument("--oci-runtime", metavar="NAME",
                         help="OCI runtime for the sandboxes, e.g. runsc for gVisor (default: Docker's; clients "
                         "cannot change it)")
    server = parser.add_argument_group("server")
    server.add_argument("--pool-size", type=int, metavar="N", help="warm containers per runtime (default 2)")
    server.add_argument("--max-concurrent", type=int, metavar="N", help="runs at once (default 16)")
    server.add_argument("--prewarm", default="python", metavar="RUNTIMES",
                        help="comma-separated runtimes to warm at start ('' for none; default python)")
    server.add_argument("--session-ttl", type=float, metavar="S",
                        help="close sessions idle this long (default: the config file's "
                        "cleanup.maxContainerAgeMs, 1800 s; never with cleanup.autoPrune false)")
    server.add_argument("--rate-limit", type=float, default=0, metavar="R",
                        help="requests per second per key (default 0: unlimited)")
    server.add_argument("--key-concurrency", type=int, default=16, metavar="N",
                        help="requests in flight per key; more wait in the key's queue (default 16; 0: unlimited)")
    server.add_argument("--queue-depth", type=int, default=64, metavar="N",
                        help="requests one key may have waiting for a turn; more get 429 (default 64)")
    server.add_argument("--queue-wait", type=float, default=120, metavar="S",
                        help="longest wait for a turn, then 429 (default 120 s; 0: no bound)")
    server.add_argument("--key-runs", type=int, metavar="N",
                        help="runs one key may have executing at once; more wait (default: 3/4 of "
                        "--max-concurrent; all of it with --no-auth)")
    server.add_argument("--max-body", type=int, default=32 * 1024 * 1024, metavar="BYTES",
                        help="largest request body (default 32 MiB)")
    budgets = parser.add_argument_group("connections, sessions and engines")
    budgets.add_argument("--max-connections", type=int, default=1024, metavar="N",
                         help="open connections (default 1024; more get 429 and are closed)")
    budgets.add_argument("--max-connections-per-address", type=int, default=64, metavar="N",
                         help="open connections from one client address (default 64)")
    budgets.add_argument("--header-timeout", type=float, default=10, metavar="S",
                         help="time for a request's head, from its first byte (default 10 s; then 408)")
    budgets.add_argument("--body-timeout", type=float, default=60, metavar="S",
                         help="time for a request's body, once its key is checked (default 60 s; then 408)")
    budgets.add_argument("--keepalive", type=float, default=75, metavar="S",
                         help="idle keep-alive connections are closed after this (default 75 s)")
    budgets.add_argument("--send-timeout", type=float, default=30, metavar="S",
                         help="a client that reads nothing of its answer or stream for this long is dropped and "
                         "its run ended (default 30 s)")
    budgets.add_argument("--ws-idle", type=float, default=30, metavar="S",
                         help="a WebSocket that sends no execute message within this is closed (default 30 s)")
    budgets.add_argument("--max-sessions-per-key", type=int, default=16, metavar="N",
                         help="sessions per key, a tenant's keys together (default 16)")
    budgets.add_argument("--session-memory-per-key", default="4g", metavar="SIZE",
                         help="memory limits of one key's sessions added up (default 4g; 0: no limit)")
    budgets.add_argument("--max-sessions", type=int, default=128, metavar="N",
                         help="sessions on the server (default 128)")
    budgets.add_argument("--max-engines", type=int, default=8, metavar="N",
                         help="option sets (engines) kept besides the server's own (default 8)")
    budgets.add_argument("--max-engines-per-key", type=int, default=2, metavar="N",
                         help="option sets one key may hold at once (default 2)")
    budgets.add_argument("--audit", metavar="DIR",
                         help="write the audit log (a JSON line per run, with its key and tenant) in DIR")
    server.add_argument("--node-id", metavar="ID",
                        help="this node's name, on every container it makes: clean-up on a Docker daemon several "
                             "nodes share touches only this node's (default: $ISOL8RT_NODE_ID, else one made and "
                             "kept in the state directory)")
    server.add_argument("--state-dir", metavar="DIR", help="where instance files for orphan clean-up live "
                        "(default ~/.isol8rt/server)")
    server.add_argument("--debug", action="store_true", help="log the server's and engine's steps")
    server.add_argument("--config", metavar="FILE", help="read this configuration file instead of looking for "
                        "isol8rt.config.json (see `isol8rt config`)")
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


def _config(args, loaded: LoadedConfig | None = None):
    from ..server import ServerConfig
    from ..server.keys import default_path
    from ..server.keys_pg import DEFAULT_REFRESH_S

    if loaded is None:
        loaded = load(getattr(args, "config", None))
    prewarm = [name for name in args.prewarm.split(",") if name]
    for name in prewarm:
        if name not in RUNTIME_NAMES:
            raise SystemExit(f"isol8rt: --prewarm: unknown runtime {name!r} (choose from {', '.join(RUNTIME_NAMES)})")
    # The file's settings first (with the server's own defaults where it has none), then the flags given.
    options = options_from_config(loaded.config)
    for key, (name, value) in SERVE_DEFAULTS.items():
        if key not in loaded.present:
            setattr(options, name, value)
    flags = {"memory_limit": args.memory, "cpu_limit": args.cpu, "timeout_ms": args.timeout,
             "pids_limit": args.pids_limit, "max_output_size": args.max_output, "network": args.net,
             "pool_size": args.pool_size, "max_concurrent": args.max_concurrent}
    for name, value in flags.items():
        if value is not None:
            setattr(options, name, value)
    options.debug = args.debug
    options.max_file_bytes = args.max_file_bytes
    if args.seccomp is not None:
        custom = args.seccomp not in ("strict", "unconfined")
        options.security = msgspec.structs.replace(options.security, seccomp="custom" if custom else args.seccomp,
                                                   profile_path=args.seccomp if custom else None)
    if args.oci_runtime is not None:
        options.security = msgspec.structs.replace(options.security, oci_runtime=args.oci_runtime)
    if args.audit:
        # The file's audit choices (what to include, retention) stay; the flag turns it on, in DIR.
        options.audit = msgspec.structs.replace(options.audit or AuditConfig(), enabled=True, destination=args.audit)
    try:
        session_memory = 0 if args.session_memory_per_key in ("0", "") else parse_size(
            "--session-memory-per-key", args.session_memory_per_key)
    except InvalidRequest as exc:
        raise SystemExit(f"isol8rt: {exc}") from None
    if args.allow or args.deny:
        if options.network != "filtered":
            raise SystemExit("isol8rt: --allow and --deny need --net filtered (or defaults.network filtered in "
                             "the config file)")
    if options.network == "filtered":
        options.network_filter = merge_network(options.network_filter, args.allow, args.deny)
    session_ttl = args.session_ttl if args.session_ttl is not None else session_idle_s(loaded.config)
    config = ServerConfig(
        host=args.host, port=resolve_port(args.port), api_key=args.key or os.environ.get("ISOL8_API_KEY") or None,
        open_access=args.no_auth, options=options, prewarm=prewarm, max_body=args.max_body,
        rate_limit=args.rate_limit, key_concurrency=args.key_concurrency, key_runs=args.key_runs,
        queue_depth=args.queue_depth, queue_wait_s=args.queue_wait,
        session_ttl_s=session_ttl,
        keys_db=None if args.no_keys_db else _keys_location(args.keys_db or os.environ.get("ISOL8RT_KEYS_DB")),
        keys_max_stale_s=args.keys_max_stale, keys_refresh_s=min(DEFAULT_REFRESH_S, args.keys_max_stale / 2),
        max_connections=args.max_connections, max_connections_per_address=args.max_connections_per_address,
        header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout, keepalive_s=args.keepalive,
        send_timeout_s=args.send_timeout, ws_idle_s=args.ws_idle, max_sessions_per_key=args.max_sessions_per_key,
        session_memory_per_key=session_memory, max_sessions=args.max_sessions, max_engines=args.max_engines,
        max_engines_per_key=args.max_engines_per_key, allowed_origins=list(args.allow_origin),
        allowed_hosts=args.allow_host, handle_signals=True,
    )
    if args.state_dir:
        config.state_dir = Path(args.state_dir)
    if not args.keys_max_stale > 0:  # bad input: one line, exit 2 (also NaN)
        print("isol8rt: --keys-max-stale: must be a positive number of seconds", file=sys.stderr)
        raise SystemExit(2)
    if args.node_id is not None:
        from ..node import check

        try:
            config.node_id = check(args.node_id, "--node-id")
        except ValueError as exc:  # bad input: one line, exit 2
            print(f"isol8rt: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    return config


def _keys_location(value: str | None) -> Path | str:
    """A SQLite file, or a PostgreSQL URL (checked here, so a mistyped one is one line, not a traceback)."""
    from ..server.keys import default_path
    from ..server.keys_pg import check_driver, connect_params, is_url

    if not value:
        return default_path()
    if not is_url(value):
        return Path(value)
    try:
        connect_params(value)
        check_driver()
    except ValueError as exc:  # bad input: one line, exit 2
        print(f"isol8rt: --keys-db: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return value

def _socket_config(args, config):
    """A local engine: on the socket, without keys (its permissions are the authentication), running each
    request with exactly its options (see :mod:`isol8rt.local`)."""
    from ..local.paths import default_socket

    if args.port is not None or args.key or args.no_auth or args.host != "127.0.0.1":
        raise InvalidRequest("--socket serves on a Unix socket only: leave out --port, --host, --key and --no-auth")
    config.socket_path = Path(args.socket) if args.socket else default_socket()
    config.api_key, config.open_access, config.keys_db = None, True, None
    config.exact_options = True
    return config


def _handle(args) -> int:
    from ..server.keys_pg import KeyStoreUnavailable

    config = _config(args)
    config.idle_exit_s = args.idle_exit
    if args.socket is not None:
        return _serve_socket(_socket_config(args, config), args.debug)
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
    except KeyStoreUnavailable as exc:  # the shared key store's database did not answer at start
        print(f"isol8rt: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"isol8rt: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _serve_socket(config, debug: bool) -> int:
    from ..local.paths import NotPrivate
    from ..server.unix import EngineRunning

    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="isol8rt: %(name)s: %(message)s")
    try:
        trio.run(_serve, config)
    except NotPrivate as exc:
        print(f"isol8rt: {exc}", file=sys.stderr)
        return 2
    except EngineRunning as exc:
        print(f"isol8rt: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"isol8rt: cannot listen on {config.socket_path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


class _Announce:
    """Stands in for a nursery's task status: says where the server listens once it does (no nursery, so
    a failure to start reaches the CLI as itself, not wrapped in an exception group)."""

    def __init__(self, config) -> None:
        self.config = config

    def started(self, port: int | None) -> None:
        where = (f"unix:{self.config.socket_path}" if self.config.socket_path is not None
                 else f"http://{self.config.host}:{port}")
        print(f"isol8rt: serving on {where}", file=sys.stderr, flush=True)


async def _serve(config) -> None:
    from ..server import Server

    await Server(config).run(task_status=_Announce(config))
