"""`isol8rt tools`: print the tool definitions agents call isol8rt by (OpenAI, Anthropic, or the bare JSON
Schema of the arguments), made from the request type by :mod:`isol8rt.tools`."""

from __future__ import annotations

import argparse
import json
from . import SUMMARIES


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "tools",
        help=SUMMARIES["tools"],
        description="Print the execute_code tool's definition for a provider's tool calling, as JSON: "
        "`openai` (Chat Completions' tools list), `openai-responses` (the Responses API's), `anthropic` "
        "(the Messages API's) or `schema` (the arguments' JSON Schema alone). Made from ExecutionRequest.",
    )
    parser.add_argument("--format", choices=("openai", "openai-responses", "anthropic", "schema"),
                        default="openai", help="which shape (default openai)")
    parser.add_argument("--field", action="append", metavar="NAME",
                        help="offer this request field (wire name, e.g. installPackages; repeatable; "
                        "default: code, runtime, stdin, files, env, timeoutMs, workdir)")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from .. import tools

    fields = args.field or tools.DEFAULT_FIELDS
    if args.format == "openai-responses":
        definitions = tools.openai_tools(fields, api="responses")
    else:
        definitions = tools.definitions(args.format, fields)
    print(json.dumps(definitions, indent=2))
    return 0
