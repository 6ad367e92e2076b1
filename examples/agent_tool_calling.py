"""An agent loop with OpenAI-style function calling: the model asks for code to be run, isol8rt runs it in a
sandbox, the result goes back to the model, until the model answers.

    python examples/agent_tool_calling.py "What is the 50th Fibonacci number?"

With OPENAI_API_KEY set it talks to a Chat Completions endpoint over plain HTTP (no SDK needed;
OPENAI_BASE_URL and OPENAI_MODEL choose where and which model). Without it, a scripted stand-in plays the
model's side of the same protocol, so the example (and its test) runs offline. The messages are the
Chat Completions shapes, as plain dicts.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.request
from typing import Any, Callable, Protocol

import isol8rt

Message = dict[str, Any]

SYSTEM = "You can execute Python code to answer questions. Use the execute_code tool; print what you need."

TOOLS: list[dict[str, Any]] = [{
    "type": "function",
    "function": {
        "name": "execute_code",
        "description": "Execute Python code in a secure sandbox and return its stdout, stderr and exit code",
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "Python code to execute"}},
            "required": ["code"],
        },
    },
}]


class ChatModel(Protocol):
    def complete(self, messages: list[Message], tools: list[dict[str, Any]]) -> Message:
        """The assistant's next message: text in ``content``, or ``tool_calls`` to make."""
        ...


class OpenAIChat:
    """A Chat Completions endpoint (OpenAI's, or any compatible one) over HTTP."""

    def __init__(self, api_key: str, model: str = "gpt-4o", base_url: str = "https://api.openai.com/v1") -> None:
        self.api_key, self.model, self.base_url = api_key, model, base_url.rstrip("/")

    def complete(self, messages: list[Message], tools: list[dict[str, Any]]) -> Message:
        body = json.dumps({"model": self.model, "messages": messages, "tools": tools}).encode()
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers={
            "Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            message: Message = json.load(response)["choices"][0]["message"]
        return message


class ScriptedModel:
    """A stand-in model: each turn is a function of the conversation so far returning the next message."""

    def __init__(self, turns: list[Callable[[list[Message]], Message]]) -> None:
        self.turns = list(turns)
        self.seen: list[list[Message]] = []

    def complete(self, messages: list[Message], tools: list[dict[str, Any]]) -> Message:
        self.seen.append(list(messages))
        return self.turns.pop(0)(messages)


def tool_call(call_id: str, code: str) -> Message:
    """An assistant message asking for one execute_code call."""
    return {"role": "assistant", "content": None, "tool_calls": [{
        "id": call_id, "type": "function",
        "function": {"name": "execute_code", "arguments": json.dumps({"code": code})}}]}


def fibonacci_script() -> ScriptedModel:
    """What a model does with "What is the 50th Fibonacci number?": write code, then read its output."""

    def answer(messages: list[Message]) -> Message:
        result = json.loads(messages[-1]["content"])
        return {"role": "assistant", "content": f"The 50th Fibonacci number is {result['stdout'].strip()}."}

    code = "a, b = 0, 1\nfor _ in range(50):\n    a, b = b, a + b\nprint(a)"
    return ScriptedModel([lambda messages: tool_call("call_1", code), answer])


def run_tool(sandbox: isol8rt.Sandbox, call: dict[str, Any]) -> str:
    """Carry out one tool call; the answer is JSON text for the model, errors included (a model can fix
    its code, or its arguments, when it sees why they failed)."""
    function = call["function"]
    if function["name"] != "execute_code":
        return json.dumps({"error": f"unknown tool {function['name']!r}"})
    try:
        code = json.loads(function["arguments"])["code"]
    except (ValueError, KeyError, TypeError):
        return json.dumps({"error": "arguments must be a JSON object with a 'code' string"})
    try:
        result = sandbox.execute(code=code, runtime="python")
    except isol8rt.Isol8Error as exc:
        return json.dumps({"error": str(exc)})
    return json.dumps({"stdout": result.stdout, "stderr": result.stderr, "exitCode": result.exit_code})


def chat(model: ChatModel, sandbox: isol8rt.Sandbox, question: str, max_turns: int = 8) -> str:
    messages: list[Message] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    for _ in range(max_turns):
        reply = model.complete(messages, TOOLS)
        messages.append(reply)
        calls = reply.get("tool_calls") or []
        if not calls:
            return str(reply.get("content") or "")
        for call in calls:
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": run_tool(sandbox, call)})
    raise RuntimeError(f"no answer after {max_turns} turns")


def main() -> None:
    parser = argparse.ArgumentParser(description="Ask a model a question it may answer by running code.")
    parser.add_argument("question", nargs="?", default="What is the 50th Fibonacci number?")
    args = parser.parse_args()
    api_key = os.environ.get("OPENAI_API_KEY")
    model: ChatModel
    if api_key:
        model = OpenAIChat(api_key, os.environ.get("OPENAI_MODEL", "gpt-4o"),
                           os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"))
    else:
        model = fibonacci_script()
    with isol8rt.Sandbox(network="none", memory_limit="512m", timeout_ms=15_000) as sandbox:
        print(chat(model, sandbox, args.question))


if __name__ == "__main__":
    main()
