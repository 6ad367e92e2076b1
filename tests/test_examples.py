"""The examples run as their README-style commands say, on the real engine, offline: the agent loop with its
scripted stand-in model, the persistent-session analysis, and streaming to a terminal."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

import isol8rt

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "OPENAI_API_KEY"}  # always offline
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.docker
def test_agent_tool_calling_script():
    done = run_example("agent_tool_calling.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "The 50th Fibonacci number is 12586269025.\n"


@pytest.mark.docker
def test_agent_loop_feeds_results_and_errors_back_to_the_model():
    agent = load("agent_tool_calling")

    def two_calls(messages):
        reply = agent.tool_call("call_a", "print(sum(range(10)))")
        reply["tool_calls"] += agent.tool_call("call_b", "raise SystemExit('nope')")["tool_calls"]
        return reply

    def bad_arguments(messages):
        reply = agent.tool_call("call_c", "")
        reply["tool_calls"][0]["function"]["arguments"] = "{not json"
        return reply

    def answer(messages):
        return {"role": "assistant", "content": "done"}

    model = agent.ScriptedModel([two_calls, bad_arguments, answer])
    with isol8rt.Sandbox(pool_size=1) as sandbox:
        assert agent.chat(model, sandbox, "go") == "done"
    last = model.seen[-1]
    tool_messages = {m["tool_call_id"]: json.loads(m["content"]) for m in last if m["role"] == "tool"}
    assert tool_messages["call_a"] == {"stdout": "45\n", "stderr": "", "exitCode": 0}
    assert tool_messages["call_b"]["exitCode"] == 1 and "nope" in tool_messages["call_b"]["stderr"]
    assert "error" in tool_messages["call_c"]
    # The conversation keeps the Chat Completions shape: assistant tool_calls, then one tool message each.
    assert [m["role"] for m in last] == ["system", "user", "assistant", "tool", "tool", "assistant", "tool"]


@pytest.mark.docker
def test_multi_turn_analysis():
    done = run_example("multi_turn_analysis.py")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "200 rows, columns: region, product, amount" in out
    assert out.count("--- turn") == 3 and "(exit 0," in out
    assert "--- report from the sandbox: {'regions': 4, 'best':" in out


@pytest.mark.docker
def test_stream_to_terminal_streams_as_the_program_runs(tmp_path):
    program = tmp_path / "slow.sh"
    program.write_text("echo first; echo warn >&2; sleep 1.5; echo second; exit 7\n")
    process = subprocess.Popen([sys.executable, str(EXAMPLES / "stream_to_terminal.py"), str(program)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        first_at = time.monotonic()
        second = process.stdout.readline()
        gap = time.monotonic() - first_at
        process.wait(timeout=60)
    finally:
        process.kill()
    assert (first, second) == ("first\n", "second\n")
    assert gap > 1.0, "the first line came only with the end of the run"
    assert process.returncode == 7
    assert "warn" in process.stderr.read()


@pytest.mark.parametrize("name", ["agent_tool_calling.py", "multi_turn_analysis.py", "stream_to_terminal.py"])
def test_every_example_says_how_to_run_it(name):
    text = (EXAMPLES / name).read_text()
    assert f"python examples/{name}" in text


@pytest.mark.docker
def test_openai_tool_call_example_answers_each_call():
    done = run_example("openai_tool_call.py")
    assert done.returncode == 0, done.stderr
    messages = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(m["role"], m["tool_call_id"]) for m in messages] == [("tool", "call_fib"), ("tool", "call_wc")]
    assert [json.loads(m["content"]) for m in messages] == [
        {"stdout": "12586269025\n", "stderr": "", "exitCode": 0}, {"stdout": "3\n", "stderr": "", "exitCode": 0}]


@pytest.mark.docker
def test_anthropic_tool_use_example_answers_each_block(tmp_path):
    done = run_example("anthropic_tool_use.py")
    assert done.returncode == 0, done.stderr
    message = json.loads(done.stdout)
    assert message["role"] == "user"
    good, bad = message["content"]
    assert (good["tool_use_id"], json.loads(good["content"])["stdout"]) == ("toolu_sum", "10\n")
    assert bad["tool_use_id"] == "toolu_bad" and bad["is_error"] is True
    # A response from a file, as a real model's would come.
    reply = tmp_path / "response.json"
    reply.write_text(json.dumps({"content": [{"type": "tool_use", "id": "t1", "name": "execute_code",
                                              "input": {"code": "echo $((6 * 7))", "runtime": "bash"}}]}))
    done = run_example("anthropic_tool_use.py", str(reply), "--show-tools")
    assert done.returncode == 0, done.stderr
    assert '"input_schema"' in done.stdout and '"stdout\\": \\"42\\\\n\\"' in done.stdout
