"""isol8rt.tools: definitions made from ExecutionRequest (shapes per provider, the schema valid and in step
with the type), arguments decoded as the server decodes a request, and tool calls answered in each
provider's shape, against a stand-in sandbox. The examples on real containers: test_examples.py."""

from __future__ import annotations

import json

import msgspec
import pytest

from isol8rt import ExecutionRequest, ExecutionResult, InvalidRequest, SandboxError, tools
from isol8rt.cli import main as cli_main

jsonschema = pytest.importorskip("jsonschema")


class FakeSandbox:
    def __init__(self, error: Exception | None = None, **flags: bool) -> None:
        self.requests: list[ExecutionRequest] = []
        self.error = error
        self.flags = flags

    def execute(self, request: ExecutionRequest, /) -> ExecutionResult:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return ExecutionResult(stdout="out\n", stderr="", exit_code=0, duration_ms=1.0, truncated=False,
                               execution_id="x", runtime=request.runtime, timestamp="t", **self.flags)


def wire_names() -> list[str]:
    return [field.encode_name for field in msgspec.structs.fields(ExecutionRequest)]


def test_every_request_field_is_described_by_its_wire_name():
    assert sorted(tools.FIELD_DESCRIPTIONS) == sorted(wire_names())
    assert set(tools.DEFAULT_FIELDS) <= set(wire_names())


@pytest.mark.parametrize("fields", [tools.DEFAULT_FIELDS, wire_names()])
def test_the_schema_is_valid_self_contained_and_takes_what_the_request_type_takes(fields):
    schema = tools.parameters_schema(fields)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "$ref" not in json.dumps(schema) and "$defs" not in schema  # read on its own by the provider
    assert list(schema["properties"]) == list(fields) and schema["required"] == ["code"]
    assert all(prop["description"] for prop in schema["properties"].values())
    validator = jsonschema.Draft202012Validator(schema)
    good = {"code": "print(1)", "runtime": "node", "timeoutMs": 500, "files": {"a.txt": "A"}, "env": {"X": "1"}}
    validator.validate(good)
    tools.request_from_arguments(good, fields)  # what the schema admits, the request type decodes
    assert not validator.is_valid({"code": "x", "runtime": "cobol"})
    assert not validator.is_valid({"code": "x", "surprise": 1})
    assert not validator.is_valid({"runtime": "python"})


def test_provider_shapes():
    [openai] = tools.openai_tools()
    assert openai["type"] == "function" and openai["function"]["name"] == tools.TOOL_NAME
    assert openai["function"]["parameters"] == tools.parameters_schema()
    [responses] = tools.openai_tools(api="responses")
    assert responses == {"type": "function", **openai["function"]}
    [anthropic] = tools.anthropic_tools()
    assert set(anthropic) == {"name", "description", "input_schema"}
    assert anthropic["input_schema"] == tools.parameters_schema()
    assert tools.anthropic_tools(["code", "installPackages"])[0]["input_schema"]["properties"].keys() == \
        {"code", "installPackages"}
    with pytest.raises(InvalidRequest, match="bogus"):
        tools.openai_tools(["code", "bogus"])


def test_arguments_are_decoded_by_their_wire_names_and_checked():
    request = tools.request_from_arguments('{"code": "x", "timeoutMs": 250, "stdin": null, "runtime": "bash"}')
    assert (request.code, request.timeout_ms, request.stdin, request.runtime) == ("x", 250, None, "bash")
    for bad, why in (("{not json", "not JSON"), ("[1]", "JSON object"), ({"runtime": "python"}, "code: required"),
                     ({"code": "x", "codeUrl": "http://a"}, "unknown argument: codeUrl"),
                     ({"code": "x", "timeoutMs": "soon"}, "timeoutMs")):
        with pytest.raises(InvalidRequest, match=why):
            tools.request_from_arguments(bad)


def test_openai_tool_calls_are_answered_as_tool_messages():
    sandbox = FakeSandbox(timed_out=True)
    call = {"id": "call_1", "type": "function",
            "function": {"name": "execute_code", "arguments": '{"code": "print(1)"}'}}
    message = tools.openai_tool_result(sandbox, call)
    assert (message["role"], message["tool_call_id"]) == ("tool", "call_1")
    assert json.loads(message["content"]) == {"stdout": "out\n", "stderr": "", "exitCode": 0, "timedOut": True}
    assert sandbox.requests[0].code == "print(1)"
    other = tools.openai_tool_result(sandbox, {"id": "c2", "function": {"name": "rm_rf", "arguments": "{}"}})
    assert "unknown tool" in json.loads(other["content"])["error"]


def test_anthropic_tool_use_is_answered_with_tool_result_blocks():
    block = {"type": "tool_use", "id": "toolu_1", "name": "execute_code", "input": {"code": "1", "runtime": "deno"}}
    answer = tools.anthropic_tool_result(FakeSandbox(), block)
    assert answer == {"type": "tool_result", "tool_use_id": "toolu_1",
                      "content": json.dumps({"stdout": "out\n", "stderr": "", "exitCode": 0})}
    failed = tools.anthropic_tool_result(FakeSandbox(SandboxError("the container died")), block)
    assert failed["is_error"] is True and json.loads(failed["content"]) == {"error": "the container died"}
    bad = tools.anthropic_tool_result(FakeSandbox(), {**block, "input": {"code": 3}})
    assert bad["is_error"] is True and "code" in json.loads(bad["content"])["error"]


@pytest.mark.parametrize("fmt, check", [
    ("openai", lambda out: out == tools.openai_tools()),
    ("openai-responses", lambda out: out == tools.openai_tools(api="responses")),
    ("anthropic", lambda out: out == tools.anthropic_tools()),
    ("schema", lambda out: out == tools.parameters_schema()),
])
def test_the_cli_prints_the_definitions(fmt, check, capsys):
    assert cli_main(["tools", "--format", fmt]) == 0
    assert check(json.loads(capsys.readouterr().out))


def test_the_cli_takes_fields_and_refuses_unknown_ones(capsys):
    assert cli_main(["tools", "--format", "schema", "--field", "code", "--field", "cmd"]) == 0
    assert list(json.loads(capsys.readouterr().out)["properties"]) == ["code", "cmd"]
    assert cli_main(["tools", "--field", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
