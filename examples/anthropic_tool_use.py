"""Anthropic-style tool use with isol8rt's ready definitions: what to offer the model, and how to answer
the ``tool_use`` blocks it sends.

    python examples/anthropic_tool_use.py               # a built-in assistant message with two tool_use blocks
    python examples/anthropic_tool_use.py reply.json    # a Messages API response (or its content) from a file
    python examples/anthropic_tool_use.py --remote http://127.0.0.1:3000 --key KEY   # run on a server instead

Offer ``isol8rt.tools.anthropic_tools()`` as ``tools=`` in a Messages request; when the response stops for
``tool_use``, answer every ``tool_use`` block with ``isol8rt.tools.anthropic_tool_result(sandbox, block)``
and send them back in one user message. No model is called here (no network, no API key): the response is
given, as the model would emit it, and the user message that answers it is printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import isol8rt
from isol8rt.tools import anthropic_tool_result, anthropic_tools

#: A Messages API response as the model returns it when it uses the tool (input is an object).
SAMPLE_RESPONSE: dict[str, Any] = {
    "role": "assistant",
    "stop_reason": "tool_use",
    "content": [
        {"type": "text", "text": "Let me compute that."},
        {"type": "tool_use", "id": "toolu_sum", "name": "execute_code",
         "input": {"code": "console.log([1, 2, 3, 4].reduce((a, b) => a + b))", "runtime": "node"}},
        {"type": "tool_use", "id": "toolu_bad", "name": "execute_code", "input": {"runtime": "python"}},
    ],
}


def answer(sandbox: isol8rt.Sandbox, response: dict[str, Any]) -> dict[str, Any]:
    """The user message answering every tool_use block of ``response`` (a bad call gets is_error, with
    the reason, so the model can correct itself)."""
    blocks = [anthropic_tool_result(sandbox, block) for block in response.get("content", [])
              if block.get("type") == "tool_use"]
    return {"role": "user", "content": blocks}


def main() -> None:
    parser = argparse.ArgumentParser(description="Answer an Anthropic response's tool_use blocks with isol8rt.")
    parser.add_argument("response", nargs="?", help="JSON file with the response (default: a built-in one)")
    parser.add_argument("--remote", help="an isol8rt server's URL (default: a local engine)")
    parser.add_argument("--key", help="the server's API key")
    parser.add_argument("--show-tools", action="store_true", help="print the tools=[...] to offer the model first")
    args = parser.parse_args()
    if args.show_tools:
        print(json.dumps(anthropic_tools(), indent=2))
    response = SAMPLE_RESPONSE if args.response is None else json.load(open(args.response))
    options: dict[str, Any] = {"remote": args.remote, "api_key": args.key} if args.remote else {"network": "none"}
    with isol8rt.Sandbox(timeout_ms=15_000, **options) as sandbox:
        json.dump(answer(sandbox, response), sys.stdout)
        print()


if __name__ == "__main__":
    main()
