"""Ready tool definitions for LLM tool calling (OpenAI, Anthropic), made from :class:`~isol8rt.ExecutionRequest`,
and the other half of the loop: a model's tool call run in a sandbox, its result in the provider's shape.

    tools = isol8rt.tools.openai_tools()            # -> Chat Completions' tools=[...]
    tools = isol8rt.tools.anthropic_tools()         # -> Messages API's tools=[...]

    with isol8rt.Sandbox() as sandbox:              # local, or Sandbox(remote="http://...", api_key=...)
        message = isol8rt.tools.openai_tool_result(sandbox, call)    # call: one of message.tool_calls
        block = isol8rt.tools.anthropic_tool_result(sandbox, block)  # block: a "tool_use" content block

The parameters' schema is msgspec's JSON Schema of the request type itself, so a field the engine gains is
a field the model can be offered, with the request's own wire names (``timeoutMs``, ``installPackages``)
and checks: the arguments a model sends are decoded into an ExecutionRequest exactly as the server decodes
a request body. Only the fields in :data:`DEFAULT_FIELDS` are offered unless asked otherwise; the others
(remote code URLs, metadata, a per-run network policy, output caps) are the caller's business, not the
model's. ``isol8rt tools --format openai|anthropic|schema`` prints the definitions.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Literal, Protocol

import msgspec

from .errors import InvalidRequest, Isol8Error
from .types import ExecutionRequest, ExecutionResult

__all__ = [
    "DEFAULT_FIELDS",
    "DESCRIPTION",
    "TOOL_NAME",
    "anthropic_tool_result",
    "anthropic_tools",
    "openai_tool_result",
    "openai_tools",
    "parameters_schema",
    "request_from_arguments",
    "result_for_model",
    "run_tool",
]

TOOL_NAME = "execute_code"

DESCRIPTION = (
    "Run a program (Python, Node.js, Bun, Deno or Bash) in an isolated, locked-down container and get its "
    "stdout, stderr and exit code. No network access. Every call starts from a clean sandbox; files go in "
    "/sandbox, the working directory. Print what you need to see.")

#: What a model is offered by default, by the request's wire names; ``code`` is required.
DEFAULT_FIELDS = ("code", "runtime", "stdin", "files", "env", "timeoutMs", "workdir")

#: What the model reads about each field (the request type's own names; a test keeps them in step).
FIELD_DESCRIPTIONS = {
    "code": "The program's source code.",
    "runtime": "Which language runs the code.",
    "cmd": "A shell command line to run instead of code (sh -c in the runtime's image).",
    "stdin": "Text for the program's standard input.",
    "files": "Files to create before the run: path (relative to /sandbox) -> text content.",
    "env": "Environment variables for the program.",
    "timeoutMs": "Wall-clock limit in milliseconds (the sandbox's own limit caps it).",
    "installPackages": "Packages to install first (pip for python, npm for node/bun/deno).",
    "workdir": "Working directory, inside /sandbox.",
    "fileExtension": "The program file's extension, when the runtime's default will not do (e.g. .mjs).",
    "outputPaths": "Files under /sandbox to return after the run.",
    "setupScript": "A bash script run before the program (its output is not the program's).",
    "codeUrl": "A URL to fetch the program from instead of code.",
    "codeHash": "The expected sha256 of the program fetched from codeUrl.",
    "allowInsecureCodeUrl": "Allow fetching codeUrl over plain http.",
    "metadata": "Free-form labels recorded with the run.",
    "networkFilter": "This run's own network policy (filtered networking only).",
    "maxOutputSize": "A lower output cap for this run, in bytes.",
    "displayLastExpression": "Persistent Python/Node sessions: return the last expression's value, as a notebook.",
}

Provider = Literal["openai", "anthropic"]


class _Executes(Protocol):
    """What runs a tool call: an :class:`isol8rt.Sandbox` (local or ``remote=``)."""

    def execute(self, request: ExecutionRequest, /) -> ExecutionResult: ...


# ------------------------------------------------------------------------------------------ definitions


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with its ``$ref``s replaced by what they name (tool definitions are read on their own),
    each ``X | None`` made plain ``X`` (leaving a field out is how a model says none) and null defaults
    dropped."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _inline(defs[node["$ref"].rsplit("/", 1)[1]], defs)
    out = {key: _inline(value, defs) for key, value in node.items() if key != "title"}
    alternatives = out.get("anyOf")
    if isinstance(alternatives, list):
        kept = [alt for alt in alternatives if alt != {"type": "null"}]
        if len(kept) == 1:
            del out["anyOf"]
            out = {**kept[0], **out}
        else:
            out["anyOf"] = kept
    if out.get("default", 0) is None:
        del out["default"]
    return out


def parameters_schema(fields: Iterable[str] = DEFAULT_FIELDS) -> dict[str, Any]:
    """The JSON Schema of the tool's arguments: :class:`~isol8rt.ExecutionRequest`'s, for ``fields`` (wire
    names), each described, ``code`` required when offered, nothing else allowed."""
    fields = list(fields)
    _, defs = msgspec.json.schema_components([ExecutionRequest])
    request = _inline(defs["ExecutionRequest"], defs)
    unknown = [name for name in fields if name not in request["properties"]]
    if unknown:
        raise InvalidRequest(f"fields: not fields of ExecutionRequest: {', '.join(unknown)} "
                             f"(known: {', '.join(request['properties'])})")
    properties = {}
    for name in fields:
        prop = dict(request["properties"][name])
        prop["description"] = FIELD_DESCRIPTIONS.get(name, name)
        properties[name] = prop
    return {"type": "object", "properties": properties, "required": [name for name in ("code",) if name in fields],
            "additionalProperties": False}


def openai_tools(fields: Iterable[str] = DEFAULT_FIELDS, *, api: Literal["chat", "responses"] = "chat",
                 name: str = TOOL_NAME, description: str = DESCRIPTION) -> list[dict[str, Any]]:
    """The ``tools`` list for OpenAI function calling: Chat Completions' shape by default, the Responses
    API's (the function's fields one level up) with ``api="responses"``."""
    function = {"name": name, "description": description, "parameters": parameters_schema(fields)}
    if api == "responses":
        return [{"type": "function", **function}]
    if api != "chat":
        raise InvalidRequest(f"api: {api!r} must be 'chat' or 'responses'")
    return [{"type": "function", "function": function}]


def anthropic_tools(fields: Iterable[str] = DEFAULT_FIELDS, *, name: str = TOOL_NAME,
                    description: str = DESCRIPTION) -> list[dict[str, Any]]:
    """The ``tools`` list for Anthropic's Messages API."""
    return [{"name": name, "description": description, "input_schema": parameters_schema(fields)}]


# ------------------------------------------------------------------------------------------ calls


def request_from_arguments(arguments: str | bytes | dict[str, Any],
                           fields: Iterable[str] = DEFAULT_FIELDS) -> ExecutionRequest:
    """The request a tool call's arguments stand for: a JSON text (OpenAI's ``function.arguments``) or an
    object (Anthropic's ``input``). Fields outside ``fields`` are refused, nulls count as left out (models
    send them for optional parameters); InvalidRequest names what is wrong."""
    if isinstance(arguments, (str, bytes)):
        try:
            arguments = json.loads(arguments)
        except ValueError as exc:
            raise InvalidRequest(f"arguments are not JSON: {exc}") from None
    if not isinstance(arguments, dict):
        raise InvalidRequest("arguments must be a JSON object")
    offered = list(fields)
    extra = sorted(key for key in arguments if key not in offered)
    if extra:
        raise InvalidRequest(f"unknown argument{'s' if len(extra) > 1 else ''}: {', '.join(extra)} "
                             f"(expected some of: {', '.join(offered)})")
    given = {key: value for key, value in arguments.items() if value is not None}
    if "code" in offered and not isinstance(given.get("code"), str):
        raise InvalidRequest("code: required, the program's source text")
    try:
        return msgspec.convert(given, ExecutionRequest)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid arguments: {exc}") from None


def result_for_model(result: ExecutionResult) -> dict[str, Any]:
    """What a model reads of a run: its output and how it ended, nothing of the bookkeeping."""
    answer: dict[str, Any] = {"stdout": result.stdout, "stderr": result.stderr, "exitCode": result.exit_code}
    for flag, value in (("timedOut", result.timed_out), ("oomKilled", result.oom_killed),
                        ("truncated", result.truncated)):
        if value:
            answer[flag] = True
    return answer


def run_tool(sandbox: _Executes, name: str, arguments: str | bytes | dict[str, Any],
             fields: Iterable[str] = DEFAULT_FIELDS) -> tuple[str, bool]:
    """Carry out one call of the tool: (the JSON text for the model, whether it is an error). A bad call
    or a sandbox failure is an error the model can read and act on, not an exception; a program that fails
    is a result (its exit code says so)."""
    if name != TOOL_NAME:
        return json.dumps({"error": f"unknown tool {name!r} (this one is {TOOL_NAME!r})"}), True
    try:
        result = sandbox.execute(request_from_arguments(arguments, fields))
    except (Isol8Error, FileNotFoundError) as exc:
        return json.dumps({"error": str(exc)}), True
    return json.dumps(result_for_model(result)), False


def openai_tool_result(sandbox: _Executes, call: dict[str, Any],
                       fields: Iterable[str] = DEFAULT_FIELDS) -> dict[str, Any]:
    """The ``{"role": "tool", ...}`` message answering one of an assistant message's ``tool_calls``."""
    function = call.get("function") or {}
    content, _ = run_tool(sandbox, function.get("name", ""), function.get("arguments", "{}"), fields)
    return {"role": "tool", "tool_call_id": call.get("id"), "content": content}


def anthropic_tool_result(sandbox: _Executes, block: dict[str, Any],
                          fields: Iterable[str] = DEFAULT_FIELDS) -> dict[str, Any]:
    """The ``tool_result`` content block answering a ``tool_use`` block (it goes in a user message)."""
    content, is_error = run_tool(sandbox, block.get("name", ""), block.get("input") or {}, fields)
    answer: dict[str, Any] = {"type": "tool_result", "tool_use_id": block.get("id"), "content": content}
    if is_error:
        answer["is_error"] = True
    return answer


def definitions(provider: Provider | Literal["schema"], fields: Iterable[str] = DEFAULT_FIELDS) -> Any:
    """The definitions for ``provider`` (``schema``: the parameters' JSON Schema alone), as the CLI prints."""
    if provider == "openai":
        return openai_tools(fields)
    if provider == "anthropic":
        return anthropic_tools(fields)
    if provider == "schema":
        return parameters_schema(fields)
    raise InvalidRequest(f"format: {provider!r} must be openai, anthropic or schema")
