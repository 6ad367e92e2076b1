"""`isol8rt run`: run a program (inline, a file, or stdin) in a sandbox and stream its output."""

from __future__ import annotations

import os
import shlex
import sys

from ..config import Isol8Config, merge_network, options_from_config, session_idle_s
from ..errors import InvalidRequest
from ..runtimes import EXTENSIONS, RUNTIME_NAMES
from ..types import ExecutionRequest, Isol8Options
from ._config import load
from . import SUMMARIES
from ._output import Figures, print_event, print_result, whole_result

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
        help=SUMMARIES["run"],
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
    source.add_argument("--files", metavar="DIR", help="copy DIR's files into /sandbox before running")
    source.add_argument("--setup", action="append", default=[], metavar="SCRIPT",
                        help="a bash script to run before the program: a file's path, @FILE, or the script's "
                        "text (repeatable, in order; the program does not run if one fails)")
    code_url = parser.add_argument_group("remote code (needs remoteCode.enabled in isol8rt.config.json)")
    code_url.add_argument("--url", metavar="URL", help="run the program at URL")
    code_url.add_argument("--github", metavar="OWNER/REPO/REF/PATH", help="run a file from GitHub")
    code_url.add_argument("--gist", metavar="GIST_ID/FILE", help="run a file from a gist")
    code_url.add_argument("--hash", metavar="SHA256", help="refuse the fetched program unless its sha256 is this")
    code_url.add_argument("--allow-insecure-code-url", action="store_true", help="allow an http:// URL")
    lifetime = parser.add_argument_group("lifetime")
    lifetime.add_argument("--persistent", action="store_true", help="run in a session that keeps files and "
                          "variables between invocations (the session 'default' unless --session)")
    lifetime.add_argument("--session", metavar="NAME", help="run in the named session (implies --persistent); "
                          "see `isol8rt session list|stop`")
    lifetime.add_argument("--persist", action="store_true", help="keep the container after the run, for "
                          "inspection (its id is printed)")
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="FILE", help="also write the program's stdout to FILE")
    output.add_argument("--no-stream", action="store_true", help="print output when the run ends, not as it comes")
    output.add_argument("--max-output", type=int, metavar="BYTES", help="cap on stdout and on stderr (default 1 MiB)")
    output.add_argument("--display", action="store_true", help="persistent Python and Node sessions: print the "
                        "value of the code's last expression, as a notebook shows it")
    output.add_argument("--figures", metavar="DIR", help="save the figures the run draws (matplotlib, in the "
                        "data image) in DIR as figure-1.png, figure-2.png, ...")
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
    parser.add_argument("--config", metavar="FILE", help="read this configuration file instead of looking for "
                        "isol8rt.config.json (see `isol8rt config`)")
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
    remote = [x for x in (args.url, args.github, args.gist) if x is not None]
    if sum(x is not None for x in (args.eval, args.file, args.cmd)) + len(remote) > 1:
        raise InvalidRequest("give one of -e/--eval, a file, --cmd, --url, --github or --gist")
    if remote:
        if stdin_data is None and piped:
            stdin_data = sys.stdin.read()
        return None, runtime or _runtime_of(remote[0]) or "python", stdin_data
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


def _extension_of(url: str) -> str | None:
    extension = os.path.splitext(url.split("?", 1)[0])[1]
    return extension if extension.lower() in EXTENSIONS else None


def _runtime_of(url: str) -> str | None:
    return EXTENSIONS.get(os.path.splitext(url.split("?", 1)[0])[1].lower())


def _code_url(args) -> str | None:
    if not (args.github or args.gist):
        return args.url
    from ..remote_code import gist_url, github_url  # imports trio: only when asked for

    return github_url(args.github) if args.github else gist_url(args.gist)


def _directory_files(directory: str) -> dict[str, bytes]:
    if not os.path.isdir(directory):
        raise InvalidRequest(f"--files {directory}: not a directory")
    files = {}
    for root, dirnames, names in os.walk(directory):
        dirnames.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue  # a link could point anywhere on this machine: not sent
            with open(path, "rb") as file:
                files[os.path.relpath(path, directory)] = file.read()
    return files


def _setup_script(values: list[str]) -> str | None:
    if not values:
        return None
    from .build import read_scripts  # imports trio: only when asked for

    scripts = read_scripts(values)
    # Each script in its own bash, in order; the first that fails stops the run before the program.
    return "set -e\n" + "".join(f"bash -e -c {shlex.quote(script)}\n" for script in scripts) if scripts else None


def _options(args, config: Isol8Config | None = None) -> Isol8Options:
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
    # The config file's defaults first; the command line's flags over them.
    options = options_from_config(config if config is not None else load(args.config).config)
    for key, value in fields.items():
        if value is not None:
            setattr(options, key, value)
    if (args.allow or args.deny) and options.network != "filtered":
        if args.net is not None:
            raise InvalidRequest(f"--allow and --deny apply to --net filtered, not --net {args.net}")
        options.network = "filtered"
    allow = list(args.allow)
    if args.install and args.net is None and options.network == "none":
        # Packages need their registry, and nothing else: filtered to it rather than no network or all of it.
        options.network = "filtered"
        allow = allow or list(REGISTRY_HOSTS.get(args.runtime or "python", ()))
    if options.network == "filtered":
        # The flags narrow or extend the file's rules; its allowPrivate and connectPorts always stay.
        options.network_filter = merge_network(options.network_filter, allow, args.deny)
    if args.log_network:
        options.log_network = True
    if args.writable:
        options.readonly_root_fs = False
    options.secrets = _pairs("--secret", args.secret)
    options.persist = args.persist
    # One run, then gone: no warm pool to fill and tear down again.
    options.pool_strategy = "secure"
    options.pool_size = 0
    return options


def _handle(args) -> int:
    config = load(args.config).config
    if args.out:
        _check_writable(args.out)
    if args.figures and not os.path.isdir(args.figures):
        raise InvalidRequest(f"--figures {args.figures}: no such directory")
    if args.display and session_name(args) is None:
        raise InvalidRequest("--display: shows a session's last expression: add --persistent or --session NAME")
    code, runtime, stdin_data = _read_program(args)
    file_extension = None
    if args.file is not None and runtime == EXTENSIONS.get(os.path.splitext(args.file)[1].lower()):
        file_extension = os.path.splitext(args.file)[1]
    code_url = _code_url(args)
    request = ExecutionRequest(
        runtime=runtime,
        code=code,
        cmd=args.cmd,
        code_url=code_url,
        code_hash=args.hash,
        allow_insecure_code_url=args.allow_insecure_code_url,
        stdin=stdin_data,
        env=_pairs("--env", args.env),
        install_packages=list(args.install),
        workdir=args.workdir,
        file_extension=file_extension if file_extension else (_extension_of(code_url) if code_url else None),
        files=_directory_files(args.files) if args.files else {},
        setup_script=_setup_script(args.setup),
        display_last_expression=args.display,
    )
    options = _options(args, config)
    # Sessions, --persist, --debug and --host are this process's own (see local_engine's policy).
    if not (args.host or session_name(args) or args.persist or args.debug):
        from .local_engine import run_near

        exit_code = run_near(request, options, args)
        if exit_code is not None:
            return exit_code
    # No local engine took it: a cold run, here (trio imported only now: it costs more than a warm run).
    import logging

    import trio

    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="isol8rt: %(name)s: %(message)s")
    return trio.run(_run, request, options, args, config)


def _check_writable(path: str) -> None:
    """--out's file can be written: said now, in one line, not after the run."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InvalidRequest(f"--out {path}: is a directory")
    if not os.path.isdir(directory):
        raise InvalidRequest(f"--out {path}: no such directory {directory}")
    if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise InvalidRequest(f"--out {path}: not writable")


async def _run(request: ExecutionRequest, options: Isol8Options, args, config: Isol8Config | None = None) -> int:
    out_file = open(args.out, "w", encoding="utf-8") if args.out else None  # noqa: SIM115
    figures = Figures(args.figures)
    instance = None
    try:
        # A remote session is named when the client is made; a local one per call.
        session = None if args.host else session_name(args)
        engine = _engine(options, args, config or Isol8Config())
        if not args.host:
            instance = await _track(engine.engine_id, config or Isol8Config())
        async with engine:
            if whole_result(args):
                return print_result(await engine.execute(request, **({"session_id": session} if session else {})),
                                    args, out_file, figures)
            exit_code = 1
            async for event in engine.execute_stream(request, **({"session_id": session} if session else {})):
                exit_code = print_event(event, out_file, exit_code, figures)
            return exit_code
    finally:
        if out_file is not None:
            out_file.close()
        if instance is not None:
            instance.remove()


async def _track(engine_id: str, config: Isol8Config):
    """Record this run's engine so that, if this process is killed, a later run removes its containers;
    with cleanup.autoPrune, first remove those of earlier runs that were killed (see :mod:`.orphans`)."""
    from ..docker import DockerClient, DockerError
    from .orphans import InstanceFile, dead_runs, default_state_dir, sweep

    directory = default_state_dir()
    if config.cleanup.auto_prune and dead_runs(directory):
        try:
            async with DockerClient() as client:
                removed = await sweep(directory, client)
            if removed:
                print(f"isol8rt: removed {removed} container(s) left by killed runs (cleanup.autoPrune)",
                      file=sys.stderr)
        except (DockerError, OSError) as exc:  # the engine says it better if Docker is down; never block a run
            import logging

            logging.getLogger("isol8rt.cli").debug("could not remove killed runs' containers: %s", exc)
    try:
        instance = InstanceFile(directory)
        instance.add_engine(engine_id)
    except OSError:
        return None  # a home without room or rights: the run goes on, untracked
    return instance


def _engine(options: Isol8Options, args, config: Isol8Config):
    """The local engine, or with --host a server's (RemoteIsol8 has the same methods)."""
    if args.host:
        from ..client import RemoteIsol8

        return RemoteIsol8(args.host, args.key or os.environ.get("ISOL8_API_KEY"), session_id=session_name(args),
                           options=options, keep_session=True)
    from ..engine import DockerIsol8

    # A session's container outlives this command, found again by name by the next one, and ends by itself
    # once unused for cleanup.maxContainerAgeMs (never, with autoPrune off: 0 tells its agent so).
    idle_s = session_idle_s(config)
    return DockerIsol8(options, detached_sessions=session_name(args) is not None,
                       session_idle_timeout_s=0.0 if idle_s == float("inf") else idle_s,
                       max_container_age_s=config.cleanup.max_container_age_ms / 1000)


def session_name(args) -> str | None:
    """The detached session a run belongs to: --session NAME, or 'default' with --persistent."""
    if args.session:
        return f"cli-{args.session}"
    return "cli-default" if args.persistent else None
