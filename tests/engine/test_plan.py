"""plan_execution, the pure step from a request and the engine's options to what the agent is asked:
every refusal names its field, and every accepted request becomes exactly the runs it should (no I/O,
no container)."""

from __future__ import annotations

import pytest

from isol8rt.agent import protocol
from isol8rt.engine.plan import (
    BASE_ENV,
    MAX_CODE_BYTES,
    MAX_TIMEOUT_MS,
    PROXY_ENV,
    plan_execution,
    upload_limit_bytes,
)
from isol8rt.engine.rich import DISPLAY_ENV, RICH_MAX_BYTES, RICH_OUTPUTS
from isol8rt.errors import InvalidRequest
from isol8rt.types import ExecutionRequest, FileBlob, Isol8Options, NetworkFilter

OPTIONS = Isol8Options()
FILTERED = Isol8Options(network="filtered")


def refused(request: ExecutionRequest, options: Isol8Options = OPTIONS, **flags) -> str:
    with pytest.raises(InvalidRequest) as caught:
        plan_execution(request, options, **flags)
    return str(caught.value)


# --------------------------------------------------------------------------------------------------
# refusals, one per branch


@pytest.mark.parametrize(("request_", "options", "message"), [
    (ExecutionRequest(runtime="ruby", code="1"), OPTIONS, "runtime: 'ruby' is not one of python, node, bun, deno, bash"),
    (ExecutionRequest(code_url="https://x/y.py"), OPTIONS, "codeUrl: the engine fetches the code before planning"),
    (ExecutionRequest(), OPTIONS, "give exactly one of code and cmd"),
    (ExecutionRequest(code="1", cmd="true"), OPTIONS, "give exactly one of code and cmd"),
    (ExecutionRequest(code="1", timeout_ms=0), OPTIONS, f"timeoutMs: 0 must be between 1 and {MAX_TIMEOUT_MS}"),
    (ExecutionRequest(code="1", timeout_ms=MAX_TIMEOUT_MS + 1), OPTIONS, "timeoutMs: "),
    (ExecutionRequest(code="1", timeout_ms=1.5), OPTIONS, "timeoutMs: 1.5 must be"),  # type: ignore[arg-type]
    (ExecutionRequest(code="1"), Isol8Options(timeout_ms=-1), "timeoutMs: -1 must be"),  # the engine's default too
    (ExecutionRequest(code="1", env={"1BAD": "x"}), OPTIONS, "env: '1BAD' is not a valid environment variable name"),
    (ExecutionRequest(code="1", env={"A=B": "x"}), OPTIONS, "env: 'A=B' is not a valid"),
    (ExecutionRequest(code="1", env={"OK": "a\x00b"}), OPTIONS, "env: the value of OK must be a string without NUL"),
    (ExecutionRequest(code="1", env={"OK": 1}), OPTIONS, "env: the value of OK must be a string"),  # type: ignore[dict-item]
    (ExecutionRequest(code="1", workdir="a\x00"), OPTIONS, "workdir: contains a NUL byte"),
    (ExecutionRequest(code="1", workdir="../etc"), OPTIONS, "workdir: '../etc' resolves to /etc, outside /sandbox"),
    (ExecutionRequest(code="1", workdir="/tmp"), OPTIONS, "workdir: '/tmp' resolves to /tmp, outside /sandbox"),
    (ExecutionRequest(code="1", files={"../x": "1"}), OPTIONS, "files: path '../x' contains '..'"),
    (ExecutionRequest(code="1", files={"/etc/passwd": "1"}), OPTIONS, "files: path '/etc/passwd' is outside /sandbox"),
    (ExecutionRequest(code="1", files={"": "1"}), OPTIONS, "files: invalid path ''"),
    (ExecutionRequest(code="1", files={"a": 5}), OPTIONS, "files['a']: file content must be str, bytes or a FileBlob, not int"),  # type: ignore[dict-item]
    (ExecutionRequest(code="1", files={"a": FileBlob()}), OPTIONS, "files['a']: file content object needs 'base64' or 'data'"),
    (ExecutionRequest(code="1", files={"a": FileBlob(base64="!!")}), OPTIONS, "files['a']: "),
    (ExecutionRequest(code="1", output_paths=["/sandbox/."]), OPTIONS, "outputPaths: path '.' names the sandbox directory itself"),
    (ExecutionRequest(code="1", output_paths=["/proc/self/environ"]), OPTIONS, "outputPaths: path '/proc/self/environ' is outside"),
    (ExecutionRequest(code="1", files={"big": "x" * 2048}), Isol8Options(sandbox_size="1k"), "files: 2048 bytes, more than fit in this sandbox (1024 bytes"),
    (ExecutionRequest(code="1", max_output_size=0), OPTIONS, "maxOutputSize: 0 must be a positive number of bytes"),
    (ExecutionRequest(code="1", max_output_size="1k"), OPTIONS, "maxOutputSize: '1k' must be"),  # type: ignore[arg-type]
    (ExecutionRequest(code="1", network_filter=NetworkFilter()), OPTIONS, "networkFilter: applies only to an engine whose network is 'filtered'"),
    (ExecutionRequest(code="1", network_filter=NetworkFilter(whitelist=["("])), FILTERED, "networkFilter.whitelist: '(' is not a valid regex"),
    (ExecutionRequest(code="1", network_filter=NetworkFilter(allow_private=["10.0.0.0/33"])), FILTERED, "networkFilter.allowPrivate: '10.0.0.0/33' is not a network"),
    (ExecutionRequest(code="1", network_filter=NetworkFilter(connect_ports=[0])), FILTERED, "networkFilter.connectPorts: 0 is not a port"),
    (ExecutionRequest(cmd="echo \x00"), OPTIONS, "cmd: contains a NUL byte"),
    (ExecutionRequest(code="1", file_extension=".py/x"), OPTIONS, "fileExtension: '.py/x' is not a file extension"),
    (ExecutionRequest(code="1", file_extension="." + "a" * 17), OPTIONS, "fileExtension: "),
    (ExecutionRequest(code="x" * (MAX_CODE_BYTES + 1)), OPTIONS, f"code: {MAX_CODE_BYTES + 1} bytes is more than the {MAX_CODE_BYTES}-byte limit"),
    (ExecutionRequest(code="1", install_packages=["--index-url=http://evil"]), OPTIONS, "installPackages: '--index-url=http://evil' is not a package name"),
    (ExecutionRequest(code="1", install_packages=["a; rm -rf /"]), OPTIONS, "installPackages: 'a; rm -rf /' is not"),
    (ExecutionRequest(code="1", install_packages=["a" * 201]), OPTIONS, "installPackages: "),
    (ExecutionRequest(runtime="bash", code="1", install_packages=["jq"]), OPTIONS, "installPackages: the bash runtime installs nothing at run time; bake"),
    (ExecutionRequest(code="1"), Isol8Options(sandbox_size="lots"), "sandboxSize: 'lots' is not a size like 512m or 1g"),
    (ExecutionRequest(code="1"), Isol8Options(memory_limit="0"), "memoryLimit: '0' must be more than zero"),
])
def test_each_refusal_names_its_field(request_, options, message):
    assert refused(request_, options).startswith(message)


def test_multibyte_code_is_measured_in_bytes():
    code = "é" * (MAX_CODE_BYTES // 2 + 1)  # fewer characters than the limit, more bytes
    assert refused(ExecutionRequest(code=code)).startswith(f"code: {2 * len(code)} bytes")


def test_the_upload_limit_keeps_memory_for_the_processes():
    assert upload_limit_bytes(Isol8Options(memory_limit="512m", sandbox_size="1g")) == 448 * 1024 * 1024
    assert upload_limit_bytes(Isol8Options(memory_limit="1g", sandbox_size="100m")) == 100 * 1024 * 1024
    assert upload_limit_bytes(Isol8Options(memory_limit="32m")) == 0


# --------------------------------------------------------------------------------------------------
# what an accepted request becomes


def test_a_program_runs_from_its_file_with_the_prestart_argv():
    plan = plan_execution(ExecutionRequest(code="print(1)"), OPTIONS)
    assert (plan.runtime.name, plan.setup, plan.packages) == ("python", [], [])
    code = plan.code
    assert (code.argv, code.code, code.code_path, code.cwd) == (
        ["python3", "/sandbox/main.py"], b"print(1)", "/sandbox/main.py", "/sandbox")
    assert (code.timeout_ms, code.max_output, code.session) == (OPTIONS.timeout_ms, OPTIONS.max_output_size, None)
    assert code.env == BASE_ENV


def test_a_command_runs_in_a_shell():
    plan = plan_execution(ExecutionRequest(cmd="ls -l | wc", runtime="node"), OPTIONS)
    assert (plan.code.argv, plan.code.code, plan.code.code_path) == (["/bin/sh", "-c", "ls -l | wc"], None, None)


def test_environment_layers_secrets_and_proxy():
    options = Isol8Options(network="filtered", secrets={"TOKEN": "s3cret", "HOME": "/secret-home"})
    env = plan_execution(ExecutionRequest(code="1", env={"HOME": "/mine"}), options).code.env
    assert env == {**BASE_ENV, **PROXY_ENV, "TOKEN": "s3cret", "HOME": "/mine"}  # the request's own win


def test_fields_carried_over():
    request = ExecutionRequest(code="1", timeout_ms=50, stdin="in", workdir="sub/dir", file_extension="pyw",
                               max_output_size=10, files={"a": "text", "b": FileBlob(base64="AAE="),
                                                          "/sandbox/c": FileBlob(type="Buffer", data=[2])},
                               output_paths=["out.txt"])
    code = plan_execution(request, OPTIONS).code
    assert (code.timeout_ms, code.stdin, code.cwd, code.code_path, code.max_output) == (
        50, b"in", "/sandbox/sub/dir", "/sandbox/main.pyw", 10)
    assert code.files == [("a", b"text"), ("b", b"\x00\x01"), ("/sandbox/c", b"\x02")]
    assert code.output_paths == ["out.txt", RICH_OUTPUTS]  # a Python run also brings back its figures
    assert plan_execution(ExecutionRequest(code="1", max_output_size=10**12), OPTIONS).code.max_output == \
        OPTIONS.max_output_size  # a request lowers the cap, never raises it


def test_messages_put_the_files_in_chunks_before_the_run():
    big = b"x" * (protocol.CHUNK_SIZE + 1)
    code = plan_execution(ExecutionRequest(code="1", files={"a": big.decode()}), OPTIONS).code
    messages = code.messages(7, stdin_open=True)
    assert [type(m).__name__ for m in messages] == ["PutFile", "PutFile", "Run"]
    assert [(m.offset, m.last, m.ack) for m in messages[:2]] == [(0, False, False), (protocol.CHUNK_SIZE, True, False)]
    assert {m.id for m in messages} == {7} and messages[-1].stdin_open


def test_sessions_run_python_and_node_in_the_live_interpreter_and_bash_with_its_state():
    python = plan_execution(ExecutionRequest(code="x = 1"), OPTIONS, session=True).code
    assert (python.session, python.code_path, python.code) == ("python", None, b"x = 1")
    node = plan_execution(ExecutionRequest(code="1", runtime="node"), OPTIONS, session=True).code
    assert node.session == "node"
    bash = plan_execution(ExecutionRequest(code="cd /tmp", runtime="bash", env={"A": "b c"}), OPTIONS,
                          session=True).code
    assert bash.session is None and bash.argv[:2] == ["bash", "-c"]
    wrapper = bash.argv[2]
    assert "export A='b c'\n" in wrapper and 'cd "$(cat' in wrapper and wrapper.endswith(". /sandbox/main.sh\n")
    pinned = plan_execution(ExecutionRequest(code="pwd", runtime="bash", workdir="w"), OPTIONS, session=True).code
    assert 'cd "$(cat' not in pinned.argv[2]  # a workdir of its own: the previous run's is not restored
    deno = plan_execution(ExecutionRequest(code="1", runtime="deno"), OPTIONS, session=True).code
    assert deno.session is None and deno.argv[0] == "deno"  # no live interpreter: a fresh process each run


def test_packages_are_installed_first_unless_baked():
    request = ExecutionRequest(code="1", install_packages=["requests", "numpy", "requests"], setup_script="echo hi",
                               network_filter=NetworkFilter(whitelist=["pypi"]), timeout_ms=1000)
    plan = plan_execution(request, FILTERED)
    assert plan.packages == ["numpy", "requests"]
    install, script = plan.setup
    # The install's time counts against the request's timeout: the engine gives the program what is left.
    assert install.argv[-3:] == ["--", "numpy", "requests"] and install.timeout_ms == 1000
    assert script.argv == ["/bin/bash", "-c", "echo hi"] and script.timeout_ms == 1000
    assert install.network_policy == script.network_policy == plan.code.network_policy == protocol.NetworkPolicy(
        allow=["pypi"])
    baked = plan_execution(request, FILTERED, baked=True)
    assert baked.packages == ["numpy", "requests"] and [s.argv[0] for s in baked.setup] == ["/bin/bash"]


@pytest.mark.parametrize(("runtime", "installed"), [
    ("node", ["npm", "install", "--no-save", "--prefix", "/sandbox", "--", "left-pad"]),
    ("bun", ["bun", "add", "--cwd", "/sandbox", "left-pad"]),
    ("deno", ["deno", "cache", "--", "npm:left-pad"]),
])
def test_each_installer(runtime, installed):
    plan = plan_execution(ExecutionRequest(code="1", runtime=runtime, install_packages=["left-pad"]), OPTIONS)
    assert plan.setup[0].argv == installed


def test_network_logs_only_with_filtered_networking():
    assert plan_execution(ExecutionRequest(code="1"), Isol8Options(network="filtered", log_network=True)).code.log_network
    assert not plan_execution(ExecutionRequest(code="1"), Isol8Options(log_network=True)).code.log_network


def test_display_asks_a_session_driver_by_env_and_brings_back_the_rich_outputs():
    request = ExecutionRequest(code="1 + 1", runtime="node", display_last_expression=True)
    plan = plan_execution(request, OPTIONS, session=True)
    assert plan.code.env[DISPLAY_ENV] == "1" and plan.code.output_paths == [RICH_OUTPUTS] and plan.rich
    plain = plan_execution(ExecutionRequest(code="1", runtime="node"), OPTIONS, session=True)
    assert DISPLAY_ENV not in plain.code.env and plain.code.output_paths == [] and not plain.rich


@pytest.mark.parametrize("request_, session", [
    (ExecutionRequest(code="1", display_last_expression=True), False),
    (ExecutionRequest(code="echo", runtime="bash", display_last_expression=True), True),
    (ExecutionRequest(cmd="ls", display_last_expression=True), True),
])
def test_display_needs_a_python_or_node_session(request_, session):
    with pytest.raises(InvalidRequest, match="displayLastExpression"):
        plan_execution(request_, OPTIONS, session=session)


def test_rich_outputs_alone_bring_back_a_bounded_amount():
    assert plan_execution(ExecutionRequest(code="1"), OPTIONS).code.max_file_bytes == RICH_MAX_BYTES
    with_files = plan_execution(ExecutionRequest(code="1", output_paths=["big.bin"]), OPTIONS).code
    assert with_files.max_file_bytes > RICH_MAX_BYTES  # the caller's own files keep the whole budget


def test_a_caller_asking_for_the_rich_outputs_file_gets_it_as_a_file():
    plan = plan_execution(ExecutionRequest(code="1", output_paths=[RICH_OUTPUTS]), OPTIONS)
    assert plan.code.output_paths == [RICH_OUTPUTS] and not plan.rich
