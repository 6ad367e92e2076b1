"""The ``isol8rt`` command line: argument parsing only; every behaviour lives in the library.

Each sub-command is a module here exposing ``register(subparsers)``, which adds its parser and sets
``handler`` (a function taking the parsed arguments and returning the process exit code).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

from .._version import __version__
from ..errors import Isol8Error

#: Each command and the line `isol8rt --help` shows for it. A command's module (its name with "_" for
#: "-") is imported only when that command runs or shows its own help: most import trio and the
#: engine, which a call that needs another command should not pay for.
SUMMARIES = {
    "run": "run code in a sandbox",
    "session": "list or stop the sessions `run --persistent/--session` keep",
    "setup": "build the sandbox images (only what changed), optionally with packages baked in",
    "build": "build a custom image (packages, set-up scripts) to run code in",
    "list-custom": "list the custom images built with `isol8rt build`",
    "cleanup": "remove isol8rt's containers (and images)",
    "config": "show the settings in force and where each came from",
    "profile": "inspect seccomp profiles",
    "serve": "run the HTTP server",
    "engine": "start, stop or look at the local engine `run` uses when it answers",
    "mcp": "serve the Model Context Protocol on stdio",
    "tools": "print tool definitions for LLM tool calling (OpenAI, Anthropic)",
    "bench": "measure latency and throughput (source checkouts only)",
}


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, minus one import: it asks ``shutil`` for the terminal's width as soon as
    an argument is added, and importing shutil (with bz2, lzma, fnmatch) costs a warm ``run`` a tenth of
    its time. The same width, worked out as ``shutil.get_terminal_size`` does."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, _columns() - 2 if width is None else width)


@functools.cache
def _columns() -> int:
    # Asked once per process: argparse makes a formatter for every argument added, and the terminal's
    # width does not change while a command line is parsed.
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class _Parser(argparse.ArgumentParser):
    """Every parser of the command line (the commands' too: sub-parsers are made of the same class)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def build_parser(command: str | None = None, *, lazy: bool = False) -> argparse.ArgumentParser:
    """The whole parser; with ``lazy``, only ``command``'s own parser is built (its module imported), and
    every other command is a name and a summary line, enough for the top-level help and for errors."""
    parser = _Parser(
        prog="isol8rt",
        description="Run untrusted code in locked-down Docker containers.",
    )
    parser.add_argument("--version", action="version", version=f"isol8rt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, summary in SUMMARIES.items():
        if lazy and name != command:
            subparsers.add_parser(name, help=summary)
            continue
        module = __import__(f"{__name__}.{name.replace('-', '_')}", fromlist=["register"])
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == ["--version"]:
        # What argparse's version action prints, without importing every command (and trio) first.
        print(f"isol8rt {__version__}")
        return 0
    arguments = sys.argv[1:] if argv is None else argv
    parser = build_parser(arguments[0] if arguments else None, lazy=True)
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except Isol8Error as exc:
        # Every failure the library expects is one line that says what to do; tracebacks are for bugs.
        print(f"isol8rt: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        # Commands that talk to Docker directly (setup, build, list-custom): where the daemon is, or
        # what it answered, in one line too. Looked up, not imported: --version needs no Docker client.
        docker = sys.modules.get("isol8rt.docker")
        if docker is None or not isinstance(exc, docker.DockerError):
            raise
        print(f"isol8rt: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`isol8rt config | head`): not an error worth a traceback.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keep interpreter shutdown from flushing again
        except OSError:
            pass
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
