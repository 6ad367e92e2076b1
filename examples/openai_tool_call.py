"""OpenAI-style tool calling with isol8rt's ready definitions: what to offer the model, and how to answer
the tool calls it makes.

    python examples/openai_tool_call.py                 # a built-in assistant message with two tool calls
    python examples/openai_tool_call.py reply.json      # an assistant message (or a whole completion) from a file
    python examples/openai_tool_call.py --remote http://127.0.0.1:3000 --key KEY   # run on a server instead

Offer ``isol8rt.tools.openai_tools()`` as ``tools=`` in a Chat Completions request; when the reply's message
has ``tool_calls``, answer each with ``isol8rt.tools.openai_tool_result(sandbox, call)`` and send those
messages back. No model is called here (no network, no API key): the assistant message is given, as a model
would emit it, and the tool messages that answer it are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import isol8rt
from isol8rt.tools import openai_tool_result, openai_tools

#: An assistant message as Chat Completions returns it when the model calls the tool (arguments are JSON text).
SAMPLE_REPLY: dict[str, Any] = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "call_fib", "type": "function", "function": {
            "name": "execute_code",
            "arguments": json.dumps({"code": "a, b = 0, 1\nfor _ in range(50):\n    a, b = b, a + b\nprint(a)"})}},
        {"id": "call_wc", "type": "function", "function": {
            "name": "execute_code",
            "arguments": json.dumps({"runtime": "bash", "code": "wc -w < words.txt",
                                     "files": {"words.txt": "one two three\n"}})}},
    ],
}


def assistant_message(data: dict[str, Any]) -> dict[str, Any]:
    """The assistant message in a completion (``choices[0].message``), or the message itself."""
    if "choices" in data:
        return dict(data["choices"][0]["message"])
    return data


def answer(sandbox: isol8rt.Sandbox, message: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``role: tool`` messages answering each of the message's tool calls, in order."""
    return [openai_tool_result(sandbox, call) for call in message.get("tool_calls") or []]


def main() -> None:
    parser = argparse.ArgumentParser(description="Answer an OpenAI assistant message's tool calls with isol8rt.")
    parser.add_argument("reply", nargs="?", help="JSON file with the assistant message (default: a built-in one)")
    parser.add_argument("--remote", help="an isol8rt server's URL (default: a local engine)")
    parser.add_argument("--key", help="the server's API key")
    parser.add_argument("--show-tools", action="store_true", help="print the tools=[...] to offer the model first")
    args = parser.parse_args()
    if args.show_tools:
        print(json.dumps(openai_tools(), indent=2))
    message = SAMPLE_REPLY if args.reply is None else assistant_message(json.load(open(args.reply)))
    options: dict[str, Any] = {"remote": args.remote, "api_key": args.key} if args.remote else {"network": "none"}
    with isol8rt.Sandbox(timeout_ms=15_000, **options) as sandbox:
        for tool_message in answer(sandbox, message):
            json.dump(tool_message, sys.stdout)
            print()


if __name__ == "__main__":
    main()
