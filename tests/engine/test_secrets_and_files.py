"""Environment, secrets (masked, and nowhere but the run's own environment), and files in and out."""

from __future__ import annotations

import base64

import msgspec

from isol8rt import ExecutionRequest, ExecutionResult
from isol8rt.docker import DockerClient

SECRET = "sk-live-0123456789abcdef"


async def test_env_reaches_the_program(engine):
    result = await engine.execute(ExecutionRequest(code="import os; print(os.environ['GREETING'])",
                                                   env={"GREETING": "hello"}))
    assert result.stdout == "hello\n"


async def test_secrets_are_masked_on_both_streams(make_engine):
    async with make_engine(secrets={"API_KEY": SECRET}) as engine:
        code = "import os, sys\nk = os.environ['API_KEY']\nprint('key', k)\nprint('err', k, file=sys.stderr)"
        result = await engine.execute(ExecutionRequest(code=code))
    assert result.stdout == "key ***\n" and result.stderr == "err ***\n"
    assert SECRET not in result.stdout + result.stderr


async def test_secret_split_across_chunks_is_masked_in_streaming(make_engine):
    async with make_engine(secrets={"API_KEY": SECRET}) as engine:
        # Half the secret, a flush and a pause (a separate chunk), then the rest.
        code = ("import os, sys, time\nk = os.environ['API_KEY']\n"
                "sys.stdout.write(k[:10]); sys.stdout.flush(); time.sleep(0.2)\n"
                "sys.stdout.write(k[10:] + '\\n'); sys.stdout.flush()")
        events = [event async for event in engine.execute_stream(ExecutionRequest(code=code))]
    text = "".join(event.data for event in events if event.type == "stdout")
    assert text == "***\n"
    assert all(SECRET[:10] not in event.data for event in events)


async def test_secrets_are_not_in_the_container_config_or_pid_1(make_engine):
    async with make_engine(secrets={"API_KEY": SECRET}) as engine:
        code = ("import os\n"
                "try:\n    print('pid1', SECRET_ENV := open('/proc/1/environ','rb').read())\n"
                "except OSError as exc:\n    print('pid1 denied', exc.errno)\n"
                "print('cmdline', open('/proc/self/cmdline','rb').read())")
        result = await engine.execute(ExecutionRequest(code=code))
        async with DockerClient() as client:
            inspect = await client.inspect_container(result.container_id)
    assert SECRET not in result.stdout, result.stdout
    assert "pid1 denied 13" in result.stdout  # root's environ is not readable by the sandbox user
    assert SECRET not in msgspec.json.encode(inspect).decode()


async def test_files_in_and_output_paths_out_binary_safe(engine):
    every_byte = bytes(range(256))
    big = bytes(range(256)) * (5 * 1024 * 1024 // 256)  # 5 MiB
    code = ("data = open('in/every.bin', 'rb').read()\n"
            "open('out.bin', 'wb').write(data[::-1])\n"
            "print(len(open('big.bin', 'rb').read()))\n"
            "import shutil; shutil.copy('big.bin', 'big-copy.bin')")
    result = await engine.execute(ExecutionRequest(
        code=code, files={"in/every.bin": every_byte, "big.bin": big, "note.txt": "text"},
        output_paths=["out.bin", "big-copy.bin"]))
    assert result.stdout == f"{len(big)}\n", result.stderr
    assert result.files["out.bin"] == every_byte[::-1]
    assert result.files["big-copy.bin"] == big
    # On the wire, files are base64.
    wire = msgspec.json.decode(msgspec.json.encode(result))
    assert base64.b64decode(wire["files"]["out.bin"]) == every_byte[::-1]
    assert msgspec.json.decode(msgspec.json.encode(result), type=ExecutionResult).files["out.bin"] == every_byte[::-1]


async def test_output_path_symlink_out_of_sandbox_is_refused(engine):
    code = "import os\nos.symlink('/etc/passwd', 'passwd')\nos.symlink('/proc/1/environ', 'env')"
    result = await engine.execute(ExecutionRequest(code=code, output_paths=["passwd", "env", "missing"]))
    assert not result.files
    assert "outside" in result.file_errors["passwd"] and "outside" in result.file_errors["env"]
    assert "no such file" in result.file_errors["missing"]
