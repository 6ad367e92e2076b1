"""A client-only machine has no libseccomp: `import isol8rt` and RemoteIsol8 must work there, and a local
engine must say plainly what is missing. Simulated in a subprocess whose libseccomp cannot be found (the
system library hidden from ctypes, as on a laptop without it) or whose pyseccomp cannot be imported."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HIDE = {
    # pyseccomp installed, the C library absent: pyseccomp raises when imported.
    "library": """
        import ctypes.util
        _find = ctypes.util.find_library
        ctypes.util.find_library = lambda name: None if "seccomp" in name else _find(name)
    """,
    # pyseccomp itself absent.
    "package": """
        import sys
        class _Hide:
            def find_spec(self, name, path=None, target=None):
                if name == "pyseccomp":
                    raise ModuleNotFoundError("No module named 'pyseccomp'", name=name)
        sys.meta_path.insert(0, _Hide())
    """,
}

PROGRAM = """
    import http.server, json, sys, threading
    import trio

    import isol8rt
    assert "pyseccomp" not in sys.modules, "import isol8rt loaded pyseccomp"
    isol8rt.RemoteIsol8

    from isol8rt import ExecutionRequest, ExecutionResult
    from isol8rt.wire import api

    class Stub(http.server.BaseHTTPRequestHandler):
        # A server's two answers RemoteIsol8 needs here: /health and /execute.
        def do_GET(self):
            self.answer(api.encode(api.HealthBody(status="ok", version="stub")))

        def do_POST(self):
            body = api.decode_execute(self.rfile.read(int(self.headers["Content-Length"])))
            result = ExecutionResult(stdout="ran " + body.request.code + "\\n", stderr="", exit_code=0,
                                     duration_ms=1.0, truncated=False, execution_id="x",
                                     runtime=body.request.runtime, timestamp="t")
            self.answer(api.encode(result))

        def answer(self, data):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{stub.server_address[1]}"

    async def remote():
        async with isol8rt.RemoteIsol8(url) as engine:
            return (await engine.execute(ExecutionRequest(code="print(1)"))).stdout

    print("remote:", trio.run(remote).strip())
    with isol8rt.Sandbox(remote=url) as sandbox:
        print("sync face:", sandbox.execute("print(2)").stdout.strip())

    try:
        trio.run(isol8rt.DockerIsol8().start)
    except isol8rt.EngineUnavailable as exc:
        print("local:", exc)
    else:
        print("local: started")
"""


@pytest.mark.parametrize("hidden", sorted(HIDE))
def test_a_client_needs_no_libseccomp_and_a_local_engine_says_it_does(hidden):
    code = textwrap.dedent(HIDE[hidden]) + textwrap.dedent(PROGRAM)
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           # The local engine must fail on libseccomp, not on Docker: point it nowhere.
           "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert lines["remote"] == "ran print(1)"
    assert lines["sync face"] == "ran print(2)"
    local = lines["local"]
    assert local.startswith("libseccomp is needed to run sandboxes on this machine"), local
    assert "apt-get install libseccomp2" in local and "RemoteIsol8" in local
