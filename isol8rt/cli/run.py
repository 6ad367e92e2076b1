"""`isol8rt run`: run a program (inline, a file, or stdin) in a sandbox and stream its output."""

from __future__ import annotations

import os
import sys

import trio

from ..errors import InvalidRequest
from ..runtimes import EXTENSIONS, RUNTIME_NAMES
from ..types import ExecutionRequest, Isol8Options, NetworkFilter

#: The hosts each runtime's installer downloads from: what `--install` opens in filtered mode.
REGISTRY_HOSTS = {
    "python": (r"^pypi\.org$", r"^files\.pythonhosted\.org$"),
    "node": (r"^registry\.npmjs\.org$",),
    "bun": (r"^registry\.npmjs\.org$",),
    "deno": (r"^registry\.npmjs\.org$", r"^jsr\.io$", r"^deno\.land$"),
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run code in a sandbox",
        description="Run a program in a sandbox: inline (-e), from a file, or from stdin. The program's exit "
        "code becomes this command's exit code.",
    )
    parser.add_argument("file", nargs="?", help="program file; its extension picks the runtime")
    source = parser.add_argument_group("input")
    source.add_argument("-e", "--eval", metavar="CODE", help="run this code")
    source.add_argument("--cmd", metavar="COMMAND", help="run a shell command line instead of a program")
    source.add_argument("-r", "--runtime", choices=RUNTIME_NAMES, help="runtime (default: from the file's "
                        "extension, else python)")
    source.add_argument("--stdin", metavar="DATA", help="data for the program's stdin (default: this "
                        "command's stdin when it is piped and the program comes from -e or a file)")
    source.add_argument("--workdir", metavar="DIR", help="working directory inside /sandbox")
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="FILE", help="also write the program's stdout to FILE")
    output.add_argument("--no-stream", action="store_true", help="print output when the run ends, not as it comes")
    output.add_argument("--max-output", type=int, metavar="BYTES", help="cap on stdout and on stderr (default 1 MiB)")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--timeout", type=int, metavar="MS", help="wall-clock limit in milliseconds (default 30000)")
    limits.add_argument("--memory", metavar="SIZE", help="memory limit, e.g. 512m, 1g (default 512m)")
    limits.add_argument("--cpu", type=float, metavar="CORES", help="CPU limit in cores (default 1.0)")
    limits.add_argument("--pids-limit", type=int, metavar="N", help="process limit (default 64)")
    limits.add_argument("--sandbox-size", metavar="SIZE", help="size of /sandbox (default 512m)")
    limits.add_argument("--tmp-size", metavar="SIZE", help="size of /tmp (default 256m)")
    limits.add_argument("--writable", action="store_true", help="make the root filesystem writable")
    limits.add_argument("--image", metavar="IMAGE", help="use this image instead of the runtime's")
    net = parser.add_argument_group("network")
    net.add_argument("--net", choices=("none", "host", "filtered"), help="network mode (default none; with "
                     "--install, filtered to the runtime's package registry)")
    net.add_argument("--allow", action="append", default=[], metavar="REGEX",
                     help="filtered mode: allow hosts matching REGEX (repeatable; none given: every host)")
    net.add_argument("--deny", action="append", default=[], metavar="REGEX",
                     help="filtered mode: deny hosts matching REGEX (repeatable; deny wins)")
    net.add_argument("--log-network", action="store_true", help="filtered mode: print the requests made")
    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--secret", action="append", default=[], metavar="KEY=VALUE",
                         help="secret environment variable, masked as *** in output (repeatable)")
    runtime.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                         help="environment variable (repeatable)")
    runtime.add_argument("--install", action="append", default=[], metavar="PACKAGE",
                         help="install a package before running (repeatable)")
    runtime.add_argument("--debug", action="store_true", help="log the engine's internal steps")
    remote = parser.add_argument_group("remote")
    remote.add_argument("--host", metavar="URL", help="run on an isol8rt server (http://host:port) instead of here")
    remote.add_argument("--key", metavar="KEY", help="API key for --host (default: $ISOL8_API_KEY)")
    parser.set_defaults(handler=_handle)


def _pairs(flag: str, values: list[str]) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"{flag} {item!r}: expected KEY=VALUE")
        pairs[key] = value
    return pairs


def _read_program(args) -> tuple[str | None, str | None, str | None]:
    """(code, runtime, stdin data) from -e, the file argument, or this command's stdin."""
    runtime = args.runtime
    stdin_data = args.stdin
    piped = not sys.stdin.isatty()
    if sum(x is not None for x in (args.eval, args.file, args.cmd)) > 1:
        raise InvalidRequest("give one of -e/--eval, a file, or --cmd")
    if args.cmd is not None:
        if stdin_data is None and piped:
            stdin_data = sys.stdin.read()
        return None, runtime or "bash", stdin_data
    if args.eval is not None:
        code = args.eval
    elif args.file is not None:
        try:
            with open(args.file, encoding="utf-8") as file:
                code = file.read()
        except OSError as exc:
            raise InvalidRequest(f"cannot read {args.file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise InvalidRequest(f"{args.file} is not UTF-8 text") from None
        if runtime is None:
            extension = os.path.splitext(args.file)[1].lower()
            runtime = EXTENSIONS.get(extension)
            if runtime is None:
                raise InvalidRequest(f"cannot tell the runtime of {args.file} from its extension; use -r")
    elif piped:
        return sys.stdin.read(), runtime or "python", stdin_data
    else:
        raise InvalidRequest("nothing to run: give -e CODE, a file, or pipe a program in")
    if stdin_data is None and piped:
        stdin_data = sys.stdin.read()
    return code, runtime or "python", stdin_data


def _options(args) -> Isol8Options:
    fields = {
        "timeout_ms": args.timeout,
        "memory_limit": args.memory,
        "cpu_limit": args.cpu,
        "pids_limit": args.pids_limit,
        "sandbox_size": args.sandbox_size,
        "tmp_size": args.tmp_size,
        "image": args.image,
        "network": args.net,
        "max_output_size": args.max_output,
        "debug": args.debug or None,
    }
    options = Isol8Options(**{key: value for key, value in fields.items() if value is not None})
    if (args.allow or args.deny) and options.network != "filtered":
        if args.net is not None:
            raise InvalidRequest(f"--allow and --deny apply to --net filtered, not --net {args.net}")
        options.network = "filtered"
    if args.install and args.net is None and options.network == "none":
        # Packages need their registry, and nothing else: filtered to it rather than no network or all of it.
        options.network = "filtered"
        args.allow = args.allow or list(REGISTRY_HOSTS.get(args.runtime or "python", ()))
    if options.network == "filtered":
        options.network_filter = NetworkFilter(whitelist=list(args.allow), blacklist=list(args.deny))
        options.log_network = args.log_network
    options.readonly_root_fs = not args.writable
    options.secrets = _pairs("--secret", args.secret)
    # One run, then gone: no warm pool to fill and tear down again.
    options.pool_strategy = "secure"
    options.pool_size = 0
    return options


def _handle(args) -> int:
    code, runtime, stdin_data = _read_program(args)
    file_extension = None
    if args.file is not None and runtime == EXTENSIONS.get(os.path.splitext(args.file)[1].lower()):
        file_extension = os.path.splitext(args.file)[1]
    request = ExecutionRequest(
        runtime=runtime,
        code=code,
        cmd=args.cmd,
        stdin=stdin_data,
        env=_pairs("--env", args.env),
        install_packages=list(args.install),
        workdir=args.workdir,
        file_extension=file_extension,
    )
    if args.debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="isol8rt: %(name)s: %(message)s")
    return trio.run(_run, request, _options(args), args)


async def _run(request: ExecutionRequest, options: Isol8Options, args) -> int:
    out_file = open(args.out, "w", encoding="utf-8") if args.out else None  # noqa: SIM115
    try:
        async with _engine(options, args) as engine:
            if args.no_stream or args.log_network:
                # The network log comes with the whole result, so --log-network waits for it too.
                result = await engine.execute(request)
                _write(sys.stdout, result.stdout, out_file)
                _write(sys.stderr, result.stderr)
                for entry in result.network_logs or ():
                    target = f"{entry.host}:{entry.port}{entry.path or ''}"
                    _write(sys.stderr, f"isol8rt: network {entry.action} {entry.method} {target}"
                                       f"{f' ({entry.reason})' if entry.reason else ''}\n")
                return result.exit_code
            exit_code = 1
            async for event in engine.execute_stream(request):
                if event.phase == "setup" and event.type in ("stdout", "stderr"):
                    # Installer chatter is not the program's output: keep stdout for the program.
                    _write(sys.stderr, event.data)
                elif event.type == "stdout":
                    _write(sys.stdout, event.data, out_file)
                elif event.type == "stderr":
                    _write(sys.stderr, event.data)
                elif event.type == "exit":
                    exit_code = int(event.data)
                elif event.type == "error":
                    _write(sys.stderr, f"isol8rt: {event.data}\n")
                    exit_code = 1
            return exit_code
    finally:
        if out_file is not None:
            out_file.close()


def _engine(options: Isol8Options, args):
    """The local engine, or with --host a server's (RemoteIsol8 has the same methods)."""
    if args.host:
        from ..client import RemoteIsol8

        return RemoteIsol8(args.host, args.key or os.environ.get("ISOL8_API_KEY"), options=options)
    from ..engine import DockerIsol8

    return DockerIsol8(options)


def _write(stream, text: str, copy=None) -> None:
    stream.write(text)
    stream.flush()
    if copy is not None:
        copy.write(text)

